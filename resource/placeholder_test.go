package resource

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// hostileNames are destination file or directory names that run
// `touch PWNED` if a placeholder holding them is spliced into a command
// unquoted, or inside the user's own single or double quotes.
var hostileNames = []string{
	"a$(touch PWNED).conf",
	"a`touch PWNED`.conf",
	"a;touch PWNED;.conf",
	"a|touch PWNED|.conf",
	"a\ntouch PWNED\n.conf",
	"a'$(touch PWNED)'.conf",
	`a"$(touch PWNED)".conf`,
	`a\"$(touch PWNED)\".conf`,
	"a'`touch PWNED`'.conf",
	"a$HOME.conf",
	"a b  *.conf",
	"~a.conf",
}

// ordinaryNames need no quoting: they are substituted verbatim, as in confd.
var ordinaryNames = []string{"app.conf", "my-app_1.2+x,y:z@h%.conf"}

// placeholderForms are the three ways confd users write a placeholder.
var placeholderForms = map[string]string{
	"bare":   "%s",
	"single": "'%s'",
	"double": `"%s"`,
}

// TestPlaceholdersNeverRunFileNames runs check_cmd and reload_cmd with
// {{.src}} / {{.dest}} bare, in '…' and in "…", for destinations whose
// file name or directory name is hostile or ordinary. Every form must see
// the exact path (test -s / test -f pass) and none may create PWNED.
func TestPlaceholdersNeverRunFileNames(t *testing.T) {
	work := t.TempDir()
	t.Chdir(work) // PWNED, if created, lands here
	type place struct{ name, dir, file string }
	var places []place
	for _, n := range append(append([]string{}, hostileNames...), ordinaryNames...) {
		places = append(places,
			place{"file " + strconv.Quote(n), "", n},
			place{"dir " + strconv.Quote(n), n, "x.conf"})
	}
	pwned := 0
	for _, p := range places {
		for form, pat := range placeholderForms {
			t.Run(p.name+" "+form, func(t *testing.T) {
				root := t.TempDir()
				dest := filepath.Join(root, p.dir, p.file)
				src := strings.ReplaceAll(pat, "%s", "{{.src}}")
				dst := strings.ReplaceAll(pat, "%s", "{{.dest}}")
				toml := "[template]\nsrc = \"app.tmpl\"\ndest = " + strconv.Quote(dest) +
					"\nkeys = [\"/db\"]\n" +
					"check_cmd = " + strconv.Quote("test -s "+src+" && { test -s "+dst+" || test ! -e "+dst+"; }") + "\n" +
					"reload_cmd = " + strconv.Quote("test -f "+dst+" && test -f "+src) + "\n"
				dir := confDir(t, map[string]string{
					"conf.d/app.toml":    toml,
					"templates/app.tmpl": "db={{getv \"/db/url\"}}\n",
				})
				r, err := Load(filepath.Join(dir, "conf.d", "app.toml"), Options{ConfDir: dir})
				if err != nil {
					t.Fatal(err)
				}
				res, err := r.Sync(t.Context(), map[string]string{"/db/url": "pg://x"})
				if _, serr := os.Stat(filepath.Join(work, "PWNED")); serr == nil {
					pwned++
					os.Remove(filepath.Join(work, "PWNED"))
					t.Errorf("a file name was run as a command: PWNED created")
				}
				if err != nil {
					t.Fatalf("sync: %v", err)
				}
				if !res.Written || !res.Reloaded {
					t.Errorf("got %+v, want written and reloaded", res)
				}
				if got := fileText(t, dest); got != "db=pg://x\n" {
					t.Errorf("destination: got %q", got)
				}
			})
		}
	}
	t.Logf("PWNED created in %d of %d cases", pwned, len(places)*len(placeholderForms))
}

// TestPlaceholderOrdinaryVerbatim: a path that needs no quoting is
// substituted as confd substitutes it, byte for byte, in every form.
func TestPlaceholderOrdinaryVerbatim(t *testing.T) {
	tests := []struct {
		name, cmd, src, dest, want string
	}{
		{"bare", "haproxy -c -f {{.src}}", "/etc/haproxy/.haproxy.cfg123", "/etc/haproxy/haproxy.cfg", "haproxy -c -f /etc/haproxy/.haproxy.cfg123"},
		{"double", `haproxy -c -f "{{.src}}"`, "/etc/.a.cfg1", "/etc/a.cfg", `haproxy -c -f "/etc/.a.cfg1"`},
		{"single", `nginx -t -c '{{.src}}' && echo '{{.dest}}'`, "/etc/.n1", "/etc/n", `nginx -t -c '/etc/.n1' && echo '/etc/n'`},
		{"needs quoting bare", "cat {{.dest}}", "/s", "/a b", `cat "${CONFIT_DEST}"`},
		{"needs quoting double", `cat "x{{.dest}}"`, "/s", "/a b", `cat "x${CONFIT_DEST}"`},
		{"needs quoting single", `cat '{{.dest}}'`, "/s", "/a b", `cat ''"${CONFIT_DEST}"''`},
		{"escaped quote stays bare", `echo \"{{.dest}}`, "/s", "/a b", `echo \""${CONFIT_DEST}"`},
		{"command substitution in double", `echo "$(cat {{.dest}})"`, "/s", "/a b", `echo "$(cat "${CONFIT_DEST}")"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseCmdTemplate("check_cmd", tc.cmd)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.expand(tc.src, tc.dest)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// TestStageNameShellSafe: a stage file's name is made of shell-safe bytes.
func TestStageNameShellSafe(t *testing.T) {
	for _, n := range hostileNames {
		p := stagePrefix("/etc/" + n)
		if !shellSafe(p) {
			t.Errorf("stage prefix of %q is %q, not shell-safe", n, p)
		}
	}
	if got, want := stagePrefix("/etc/haproxy/haproxy.cfg"), "/etc/haproxy/.haproxy.cfg"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
