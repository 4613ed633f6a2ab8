package integration

// End-to-end: encrypted values (crypt's OpenPGP format made by gpg, and
// age values made by `confit encrypt`) read by the confit binary through
// every backend, and rotated under a watching daemon.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/confit-dev/confit/internal/testserver"
)

// cryptCanary stands for the secrets; it must show in no output.
const cryptCanary = "Cr7-canary-e2e"

// cryptKeys are an age identity file and, when gpg is installed, an
// armored secret keyring and the gpg home that made it.
type cryptKeys struct {
	identity, recipient string
	keyring, gpgHome    string
}

// newCryptKeys makes the keys; without gpg (make test installs it) the
// crypt-format cases are left out, and the test says so.
func newCryptKeys(t *testing.T) *cryptKeys {
	t.Helper()
	dir := t.TempDir()
	k := &cryptKeys{identity: filepath.Join(dir, "age.txt")}
	out, err := confitCmd(t, "secret", "keygen").Output()
	if err != nil {
		t.Fatalf("confit secret keygen: %v", err)
	}
	if err := os.WriteFile(k.identity, out, 0o600); err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	k.recipient = strings.TrimPrefix(first, "# public key: ")
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Log("gpg not installed: crypt-format values left out (make test installs gnupg)")
		return k
	}
	// A short home: gpg-agent's socket lives in it.
	if k.gpgHome, err = os.MkdirTemp("", "confit-gpg"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = exec.Command("gpgconf", "--homedir", k.gpgHome, "--kill", "gpg-agent").Run()
		os.RemoveAll(k.gpgHome)
	})
	k.gpg(t, nil, "--passphrase", "", "--quick-generate-key", "e2e <e2e@confit.invalid>", "default", "default", "never")
	k.keyring = filepath.Join(dir, "keyring.asc")
	if err := os.WriteFile(k.keyring, k.gpg(t, nil, "--armor", "--export-secret-keys", "e2e@confit.invalid"), 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

func (k *cryptKeys) gpg(t *testing.T, stdin []byte, args ...string) []byte {
	t.Helper()
	c := exec.Command("gpg", append([]string{"--homedir", k.gpgHome, "--batch", "--quiet"}, args...)...)
	c.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// gpgValue is plain as confd 0.16's docs made it: gzip -c | gpg
// --encrypt | base64.
func (k *cryptKeys) gpgValue(t *testing.T, plain string) string {
	t.Helper()
	c := exec.Command("sh", "-c", "gzip -c | gpg --homedir \"$H\" --batch --quiet --trust-model always -r e2e@confit.invalid --encrypt | base64 -w0")
	c.Env = append(os.Environ(), "H="+k.gpgHome)
	c.Stdin = strings.NewReader(plain)
	out, err := c.Output()
	if err != nil {
		t.Fatalf("gpg encrypt: %v", err)
	}
	return string(out)
}

// ageValue is `printf %s plain | confit encrypt -key key -recipient ...`.
func (k *cryptKeys) ageValue(t *testing.T, key, plain, recipient string) string {
	t.Helper()
	c := confitCmd(t, "encrypt", "-key", key, "-recipient", recipient)
	c.Stdin = strings.NewReader(plain)
	out, err := c.Output()
	if err != nil {
		t.Fatalf("confit encrypt: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func (k *cryptKeys) args() []string {
	a := []string{"-age-identity", k.identity}
	if k.keyring != "" {
		a = append(a, "-secret-keyring", k.keyring)
	}
	return a
}

// TestCryptBackends: the same encrypted values in a YAML file, in the
// environment, in etcd and in Consul render the same file (mode 0600); a
// ciphertext copied to another key and one for another identity fail
// their resources only, naming the key and the reason; the plaintexts
// show in no output, -noop's included.
func TestCryptBackends(t *testing.T) {
	k := newCryptKeys(t)
	other := newCryptKeys(t)
	agePW := k.ageValue(t, "/app/age/pw", cryptCanary+"-age", k.recipient)
	data := map[string]string{
		"/app/age/pw":     agePW,
		"/app/age/copied": agePW,
		"/app/age/other":  k.ageValue(t, "/app/age/other", cryptCanary+"-other", other.recipient),
	}
	tmpl, want := `age={{cgetv "/age/pw"}}`+"\n", "age="+cryptCanary+"-age\n"
	if k.keyring != "" {
		data["/app/pgp/pw"] = k.gpgValue(t, cryptCanary+"-pgp")
		tmpl += `pgp={{cgetv "/pgp/pw"}}{{range cgets "/pgp/*"}} {{.Key}}{{end}}` + "\n"
		want += "pgp=" + cryptCanary + "-pgp /pgp/pw\n"
	}
	confdir := func(t *testing.T, out string) string {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{
			"conf.d/good.toml":      fmt.Sprintf("[template]\nsrc = \"good.tmpl\"\ndest = %q\nprefix = \"/app\"\nkeys = [\"/age/pw\", \"/pgp\"]\n", filepath.Join(out, "good.conf")),
			"templates/good.tmpl":   tmpl,
			"conf.d/copied.toml":    resourceTOML("copied.tmpl", filepath.Join(out, "copied.conf"), "/app", "/age/copied"),
			"templates/copied.tmpl": `{{cgetv "/age/copied"}}`,
			"conf.d/other.toml":     resourceTOML("other.tmpl", filepath.Join(out, "other.conf"), "/app", "/age/other"),
			"templates/other.tmpl":  `{{cgetv "/age/other"}}`,
		})
		return dir
	}

	var yaml strings.Builder
	yaml.WriteString("app:\n  age:\n")
	for _, n := range []string{"pw", "copied", "other"} {
		fmt.Fprintf(&yaml, "    %s: %s\n", n, data["/app/age/"+n])
	}
	if v, ok := data["/app/pgp/pw"]; ok {
		fmt.Fprintf(&yaml, "  pgp:\n    pw: %s\n", v)
	}
	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte(yaml.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var env []string
	for key, v := range data {
		env = append(env, strings.ToUpper(strings.ReplaceAll(strings.TrimPrefix(key, "/"), "/", "_"))+"="+v)
	}

	etcd := testserver.Etcd(t, testserver.EtcdOptions{})
	etcdPutAll(t, etcdAdmin(t, etcd, "", ""), data)
	consul := testserver.Consul(t, testserver.ConsulOptions{Dev: true})
	admin := consulAdmin(t, consul)
	for key, v := range data {
		consulPut(t, admin, key, v)
	}

	for _, tc := range []struct {
		name string
		args []string
		env  []string
	}{
		{"file", []string{"-backend", "file", "-file", values}, nil},
		{"env", []string{"-backend", "env"}, env},
		{"etcd", []string{"-backend", "etcd", "-node", etcd.Endpoint()}, nil},
		{"consul", []string{"-backend", "consul", "-node", consul.Addr()}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			dir := confdir(t, out)
			if err := os.WriteFile(filepath.Join(out, "copied.conf"), []byte("last good\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			run := func(extra ...string) (string, error) {
				cmd := confitCmd(t, append(append(append([]string{"-onetime", "-log-level", "debug", "-confdir", dir}, tc.args...), k.args()...), extra...)...)
				cmd.Env = append(cmd.Env, tc.env...)
				b, err := cmd.CombinedOutput()
				return string(b), err
			}
			// -noop first: nothing written, nothing shown.
			output, err := run("-noop")
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("-noop: %v, want exit 1 (two resources fail)\n%s", err, output)
			}
			if _, err := os.Stat(filepath.Join(out, "good.conf")); err == nil {
				t.Error("-noop wrote good.conf")
			}
			output2, err := run()
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("%v, want exit 1 (two resources fail)\n%s", err, output2)
			}
			if got := readFile(t, filepath.Join(out, "good.conf")); got != want {
				t.Errorf("good.conf = %q, want %q", got, want)
			}
			if fi, err := os.Stat(filepath.Join(out, "good.conf")); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("good.conf: %v, mode %v; want 0600", err, fi.Mode())
			}
			if got := readFile(t, filepath.Join(out, "copied.conf")); got != "last good\n" {
				t.Errorf("copied.conf = %q, want the last good file", got)
			}
			for _, s := range []string{
				"value of /age/copied (", "is bound to store key /app/age/pw, not /app/age/copied",
				"value of /age/other (", "does not decrypt: age: no -age-identity opens it",
			} {
				if !strings.Contains(output2, s) {
					t.Errorf("output lacks %q:\n%s", s, output2)
				}
			}
			if strings.Contains(output+output2, cryptCanary) {
				t.Errorf("a plaintext shows in the output:\n%s\n%s", output, output2)
			}
			for _, v := range data {
				if strings.Contains(output+output2, v[:40]) {
					t.Errorf("a ciphertext shows in the output")
				}
			}
		})
	}
}

// TestCryptWatchRotate: under a watching daemon, a new ciphertext in etcd
// re-renders exactly the resources that read its key: a new plaintext
// rewrites that file only; a new ciphertext of the same plaintext renders
// its resource again and writes nothing.
func TestCryptWatchRotate(t *testing.T) {
	k := newCryptKeys(t)
	s := testserver.Etcd(t, testserver.EtcdOptions{})
	admin := etcdAdmin(t, s, "", "")
	out, confdir := t.TempDir(), t.TempDir()
	dest := map[string]string{}
	files := map[string]string{}
	for _, n := range []string{"a", "b", "plain"} {
		dest[n] = filepath.Join(out, n+".conf")
		files["conf.d/"+n+".toml"] = resourceTOML(n+".tmpl", dest[n], "/r", "/"+n)
		files["templates/"+n+".tmpl"] = fmt.Sprintf(`%s={{cgetv "/%s"}}`, n, n)
	}
	files["templates/plain.tmpl"] = `plain={{getv "/plain"}}`
	writeFiles(t, confdir, files)
	mustPut(t, admin, "/r/a", k.ageValue(t, "/r/a", cryptCanary+"-a1", k.recipient))
	bValue := cryptCanary + "-b"
	if k.keyring != "" {
		mustPut(t, admin, "/r/b", k.gpgValue(t, bValue))
	} else {
		mustPut(t, admin, "/r/b", k.ageValue(t, "/r/b", bValue, k.recipient))
	}
	mustPut(t, admin, "/r/plain", "p")
	d := startConfitDaemon(t, append([]string{"-backend", "etcd", "-node", s.Endpoint(), "-confdir", confdir, "-interval", "0", "-wait", "50ms:1s"}, k.args()...)...)
	waitFile(t, dest["a"], "a="+cryptCanary+"-a1")
	waitFile(t, dest["b"], "b="+bValue)
	waitFile(t, dest["plain"], "plain=p")
	waitFor(t, "three renders", func() (bool, string) {
		n := d.counter(t, "confit_renders_total")
		return n == 3, fmt.Sprint(n)
	})

	// A new plaintext for /r/a: one render, one write.
	mustPut(t, admin, "/r/a", k.ageValue(t, "/r/a", cryptCanary+"-a2", k.recipient))
	waitFile(t, dest["a"], "a="+cryptCanary+"-a2")
	stayUnchanged(t, d, map[string]string{dest["b"]: "b=" + bValue, dest["plain"]: "plain=p"}, time.Second)
	if r, w := d.counter(t, "confit_renders_total"), d.counter(t, "confit_writes_total"); r != 4 || w != 4 {
		t.Errorf("after rotating /r/a: renders %v, writes %v; want 4 and 4 (a alone rendered and written)", r, w)
	}

	// A new ciphertext of the same plaintext for /r/b: b renders, nothing is written.
	if k.keyring != "" {
		mustPut(t, admin, "/r/b", k.gpgValue(t, bValue))
	} else {
		mustPut(t, admin, "/r/b", k.ageValue(t, "/r/b", bValue, k.recipient))
	}
	waitFor(t, "b rendered again", func() (bool, string) {
		n := d.counter(t, "confit_renders_total")
		return n == 5, fmt.Sprint(n)
	})
	stayUnchanged(t, d, map[string]string{dest["a"]: "a=" + cryptCanary + "-a2", dest["b"]: "b=" + bValue, dest["plain"]: "plain=p"}, time.Second)
	if r, w := d.counter(t, "confit_renders_total"), d.counter(t, "confit_writes_total"); r != 5 || w != 4 {
		t.Errorf("after re-encrypting /r/b: renders %v, writes %v; want 5 and 4", r, w)
	}
	if strings.Contains(d.log.String(), cryptCanary) {
		t.Errorf("a plaintext shows in the daemon's log")
	}
}

// TestCryptOmittedBuild builds confit with -tags confit_no_crypt: the
// key flags and confit encrypt exit 2 saying the build lacks them.
func TestCryptOmittedBuild(t *testing.T) {
	root, err := testserver.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "confit-no-crypt")
	build := exec.Command("go", "build", "-tags", "confit_no_crypt", "-o", bin, "./cmd/confit")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, args := range [][]string{
		{"-onetime", "-backend", "env", "-confdir", t.TempDir(), "-config-file", os.DevNull, "-age-identity", "id.txt"},
		{"encrypt", "-key", "/k", "-recipient", "age1x"},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "not in this build of confit (built with -tags confit_no_crypt)") {
			t.Errorf("confit %s: %v\n%s\nwant exit 2 saying it is not in this build", strings.Join(args, " "), err, out)
		}
	}
}
