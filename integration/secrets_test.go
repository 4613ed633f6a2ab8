package integration

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/confit-dev/confit/internal/testserver"
)

// canary stands for a secret in the store; it must not show in any output.
const canary = "s3cr3t-CANARY-7f3a"

// canaryTemplates use the canary wrongly: each calls a function that fails
// on the value, or an action whose error would print it.
var canaryTemplates = map[string]string{
	"atoi":           `{{atoi (getv "/secret")}}`,
	"atoi-var":       `{{$v := getv "/secret"}}{{atoi $v}}`,
	"parseBool":      `{{parseBool (getv "/secret")}}`,
	"json":           `{{json (getv "/secret")}}`,
	"jsonArray":      `{{jsonArray (getv "/secret")}}`,
	"mustFromJson":   `{{mustFromJson (getv "/secret")}}`,
	"getvs":          `{{range getvs "/sec*"}}{{atoi .}}{{end}}`,
	"gets":           `{{range gets "/sec*"}}{{parseBool .Value}}{{end}}`,
	"mustToDate":     `{{mustToDate "2006-01-02" (getv "/secret")}}`,
	"mustDateModify": `{{mustDateModify (getv "/secret") now}}`,
	"semverCompare":  `{{semverCompare (getv "/secret") "1.0.0"}}`,
	"urlParse":       `{{urlParse (printf "%s%%zz" (getv "/secret"))}}`,
	"regexFind":      `{{regexFind (printf "(%s" (getv "/secret")) "x"}}`,
	"range":          `{{range getv "/secret"}}{{end}}`,
	"fail":           `{{fail (getv "/secret")}}`,
}

// canaryConfdir writes a confdir with one resource per canaryTemplates
// entry, all reading /secret under prefix /app, plus a resource "noop"
// whose 0600 destination holds an older secret and would get the canary.
// It returns the confdir and the noop destination.
func canaryConfdir(t *testing.T) (confdir, secretDest string) {
	t.Helper()
	confdir, out := t.TempDir(), t.TempDir()
	files := map[string]string{}
	for name, text := range canaryTemplates {
		files["conf.d/"+name+".toml"] = resourceTOML(name+".tmpl", filepath.Join(out, name+".conf"), "/app", "/secret")
		files["templates/"+name+".tmpl"] = text + "\n"
	}
	secretDest = filepath.Join(out, "secret.conf")
	files["conf.d/secret.toml"] = fmt.Sprintf("[template]\nsrc = \"secret.tmpl\"\ndest = %q\nprefix = \"/app\"\nkeys = [\"/secret\"]\nmode = \"0600\"\n", secretDest)
	files["templates/secret.tmpl"] = "password={{getv \"/secret\"}}\n"
	writeFiles(t, confdir, files)
	if err := os.WriteFile(secretDest, []byte("password=old-"+canary+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return confdir, secretDest
}

// TestSecretsStayOutOfOutput puts a canary value in etcd and renders it
// through every template function that can fail on a value, with the real
// binary: one-shot and -noop (text and JSON logs, stdout and stderr) and
// -watch (its log and /health). The canary shows nowhere; the errors name
// the key. -noop prints the content of the 0600 destination only with
// -noop-show-secrets.
func TestSecretsStayOutOfOutput(t *testing.T) {
	s := testserver.Etcd(t, testserver.EtcdOptions{})
	admin := etcdAdmin(t, s, "", "")
	mustPut(t, admin, "/app/secret", canary)
	confdir, secretDest := canaryConfdir(t)
	store := []string{"-backend", "etcd", "-node", s.Endpoint(), "-confdir", confdir}

	total := 0
	for _, format := range []string{"text", "json"} {
		for _, mode := range [][]string{{"-onetime"}, {"-onetime", "-noop"}} {
			// A run without -noop writes the canary; -noop must see a change.
			if err := os.WriteFile(secretDest, []byte("password=old-"+canary+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			args := append(append(append([]string{}, mode...), "-log-format", format, "-log-level", "debug"), store...)
			var stdout, stderr bytes.Buffer
			cmd := confitCmd(t, args...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err == nil {
				t.Fatalf("confit %s: exit 0, want 1 (the resources fail)", strings.Join(args, " "))
			}
			output := stdout.String() + stderr.String()
			n := strings.Count(output, canary)
			total += n
			if n > 0 {
				t.Errorf("confit %s: the canary shows %d times:\n%s", strings.Join(args, " "), n, output)
			}
			if want := "value of /secret (18 bytes) is not an integer"; !strings.Contains(output, want) {
				t.Errorf("confit %s: no %q in\n%s", strings.Join(args, " "), want, output)
			}
			if slices.Contains(mode, "-noop") && !strings.Contains(stdout.String(), secretDest+": 1 line removed, 1 line added (content not shown") {
				t.Errorf("confit %s: no summary of %s in stdout:\n%s", strings.Join(args, " "), secretDest, stdout.String())
			}
			if got := readFile(t, secretDest); slices.Contains(mode, "-noop") && got != "password=old-"+canary+"\n" {
				t.Errorf("-noop changed %s: %q", secretDest, got)
			}
		}
	}

	// The summary hides the content only by choice: asked, -noop shows it.
	out, _ := confitCmd(t, append([]string{"-onetime", "-noop", "-noop-show-secrets"}, store...)...).CombinedOutput()
	if !strings.Contains(string(out), "+password="+canary) {
		t.Errorf("-noop -noop-show-secrets does not show the diff:\n%s", out)
	}

	// -watch: every resource fails; its log and /health hold no canary.
	d := startConfitDaemon(t, append(store, "-log-format", "json")...)
	var body string
	waitFor(t, "/health lists every failing resource", func() (bool, string) {
		code, b, err := d.health()
		body = b
		return err == nil && code == 503 && strings.Count(b, "\n")+1 >= len(canaryTemplates), fmt.Sprintf("%d %q %v", code, b, err)
	})
	if n := strings.Count(body, canary); n > 0 {
		total += n
		t.Errorf("/health shows the canary %d times:\n%s", n, body)
	}
	log := d.log.String()
	if n := strings.Count(log, canary); n > 0 {
		total += n
		t.Errorf("the -watch log shows the canary %d times:\n%s", n, log)
	}
	lines := strings.Split(body, "\n")
	sort.Strings(lines)
	t.Logf("canary occurrences in all output: %d; /health:\n%s", total, strings.Join(lines, "\n"))
}
