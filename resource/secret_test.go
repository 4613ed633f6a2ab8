package resource

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/confit-dev/confit/secret/secrettest"
	"github.com/confit-dev/confit/template"
)

// TestSecretMode: a resource whose template decrypts and whose file sets
// no mode gets 0600, new or existing; a mode in the file wins; -noop
// shows no decrypted value.
func TestSecretMode(t *testing.T) {
	keys, rcpt := secrettest.AgeKeys(t)
	const plain = "canary-R3s0urce-e81f"
	v := secrettest.Seal(t, "/app/db/url", plain, rcpt)
	for _, tc := range []struct {
		name     string
		extra    string
		existing os.FileMode
		noop     bool
		want     os.FileMode
	}{
		{name: "new, no mode", want: 0o600},
		{name: "existing 0644, no mode", existing: 0o644, want: 0o600},
		{name: "mode set", extra: "mode = \"0640\"\n", want: 0o640},
		{name: "noop", existing: 0o644, noop: true, want: 0o644},
		{name: "noop, mode 0644 set", extra: "mode = \"0644\"\n", existing: 0o644, noop: true, want: 0o644},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var diff bytes.Buffer
			opts := Options{TemplateOptions: template.Options{Decrypter: keys}, Noop: tc.noop, Diff: &diff}
			f := newFixture(t, tc.extra, opts)
			if err := os.WriteFile(filepath.Join(f.dir, "templates", "app.tmpl"), []byte(`db={{cgetv "/db/url"}}`+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := Load(filepath.Join(f.dir, "conf.d", "app.toml"), func() Options { o := opts; o.ConfDir = f.dir; o.Logger = f.r.log; return o }())
			if err != nil {
				t.Fatal(err)
			}
			if tc.existing != 0 {
				if err := os.WriteFile(f.dest, []byte("db=old\n"), tc.existing); err != nil {
					t.Fatal(err)
				}
				os.Chmod(f.dest, tc.existing)
			}
			if _, err := r.Sync(t.Context(), map[string]string{"/app/db/url": v}); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(f.dest)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tc.want {
				t.Errorf("mode %04o, want %04o", fi.Mode().Perm(), tc.want)
			}
			if !tc.noop && fileText(t, f.dest) != "db="+plain+"\n" {
				t.Errorf("dest = %q", fileText(t, f.dest))
			}
			if strings.Contains(diff.String()+f.logs.String(), plain) {
				t.Errorf("the plaintext shows in the diff or the logs:\n%s%s", diff.String(), f.logs.String())
			}
			if tc.noop && !strings.Contains(diff.String(), "content not shown: ") {
				t.Errorf("noop diff %q, want the content hidden", diff.String())
			}
		})
	}
}
