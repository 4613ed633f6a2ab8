package template

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/confit-dev/confit/secret"
	"github.com/confit-dev/confit/secret/secrettest"
)

const cryptCanary = "cryptCanary-Pl41nText-4b1c"

func TestCryptFuncs(t *testing.T) {
	keys, rcpt := secrettest.AgeKeys(t)
	_, otherRcpt := secrettest.AgeKeys(t)
	// The store as a resource with prefix /app sees it.
	store := NewStore(map[string]string{
		"/db/password": secrettest.Seal(t, "/app/db/password", cryptCanary, rcpt),
		"/db/user":     secrettest.Seal(t, "/app/db/user", "admin", rcpt),
		"/plain":       secrettest.Seal(t, "", "unbound-value", rcpt),
		"/users/b":     secrettest.Seal(t, "/app/users/b", "alice", rcpt),
		"/users/a":     secrettest.Seal(t, "/app/users/a", "bob", rcpt),
		"/swapped":     secrettest.Seal(t, "/app/db/password", cryptCanary, rcpt),
		"/other":       secrettest.Seal(t, "/app/other", cryptCanary, otherRcpt),
		"/number":      secrettest.Seal(t, "/app/number", cryptCanary, rcpt),
		"/cleartext":   "not-encrypted-" + cryptCanary,
	}).WithPrefix("/app")
	for _, tc := range []struct {
		name, text, want, wantErr string
		reads                     []string
	}{
		{name: "cgetv", text: `{{cgetv "/db/password"}}`, want: cryptCanary, reads: []string{"/db/password"}},
		{name: "cgetv default", text: `{{cgetv "/nope" "dflt"}}`, want: "dflt"},
		{name: "cgetv missing", text: `{{cgetv "/nope"}}`, wantErr: "key does not exist: /nope"},
		{name: "cget", text: `{{with cget "/db/user"}}{{.Key}}={{.Value}}{{end}}`, want: "/db/user=admin"},
		{name: "cgets", text: `{{range cgets "/users/*"}}{{.Key}}={{.Value}} {{end}}`, want: "/users/a=bob /users/b=alice "},
		{name: "cgetvs sorted by plaintext", text: `{{range cgetvs "/users/*"}}{{.}} {{end}}`, want: "alice bob "},
		{name: "unbound age value", text: `{{cgetv "/plain"}}`, want: "unbound-value"},
		{name: "decrypt", text: `{{decrypt (getv "/db/user")}}`, want: "admin"},
		{name: "decrypt unbound", text: `{{getv "/plain" | decrypt}}`, want: "unbound-value"},
		{name: "swapped ciphertext", text: `{{cgetv "/swapped"}}`,
			wantErr: "error calling cgetv: value of /swapped (", reads: []string{"/swapped"}},
		{name: "swapped ciphertext names both keys", text: `{{cgetv "/swapped"}}`,
			wantErr: "is bound to store key /app/db/password, not /app/swapped"},
		{name: "swapped via decrypt", text: `{{decrypt (getv "/swapped")}}`,
			wantErr: "is bound to store key /app/db/password, which does not hold it"},
		{name: "wrong key", text: `{{cgetv "/other"}}`,
			wantErr: "value of /other (", reads: []string{"/other"}},
		{name: "wrong key says why", text: `{{cgetv "/other"}}`,
			wantErr: "does not decrypt: age: no -age-identity opens it"},
		{name: "cgets fails on one", text: `{{range cgets "/*"}}{{end}}`, wantErr: "error calling cgets: value of /cleartext"},
		{name: "not encrypted", text: `{{cgetv "/cleartext"}}`, wantErr: "does not decrypt: not an encrypted value"},
		{name: "atoi of a plaintext", text: `{{atoi (cgetv "/number")}}`, wantErr: "value of /number (26 bytes) is not an integer"},
		{name: "fail with a plaintext", text: `{{fail (cgetv "/number")}}`, wantErr: "[decrypted value of /number redacted, 26 bytes]"},
		{name: "printf into an error", text: `{{urlParse (printf "%s%%zz" (cgetv "/number"))}}`, wantErr: "[decrypted value of /number redacted"},
	} {
		for _, text := range []bool{false, true} {
			t.Run(tc.name, func(t *testing.T) {
				tm, err := Parse("t", tc.text, Options{Decrypter: keys, TextTemplate: text})
				if err != nil {
					t.Fatal(err)
				}
				if !tm.Decrypts() {
					t.Error("Decrypts() = false")
				}
				out, reads, err := tm.Execute(store)
				if tc.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
						t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
					}
					for _, leak := range []string{cryptCanary, store.vals[0][:24]} {
						if strings.Contains(err.Error(), leak) {
							t.Errorf("error %q holds %q", err, leak)
						}
					}
				} else if err != nil || string(out) != tc.want {
					t.Fatalf("Execute = %q, %v; want %q", out, err, tc.want)
				}
				for _, k := range tc.reads {
					if !strings.Contains(strings.Join(reads.Keys, " "), k) {
						t.Errorf("Reads.Keys = %v, want %s among them", reads.Keys, k)
					}
				}
			})
		}
	}
}

// TestCryptFixtureFuncs renders the values crypt's own code wrote
// (secret/testdata/crypt, see secret's TestCryptFixture) through cget,
// cgetv, cgets and cgetvs, as a resource with prefix /app reads them.
func TestCryptFixtureFuncs(t *testing.T) {
	const dir = "../secret/testdata/crypt"
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// git checks files out 0644; secret.Load refuses a key others may read.
	kr := filepath.Join(t.TempDir(), "secring.asc")
	if err := os.WriteFile(kr, []byte(read("secring.asc")), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := secret.Load(secret.Files{Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	store := NewStore(map[string]string{
		"/db/password":     read("confd016.secconf"),
		"/config/app.json": read("viper.secconf"),
	}).WithPrefix("/app")
	const pw, app = "crypt-fixture-Pw-2c9e", `{"user":"app","password":"viper-fixture-Pw-81d4"}` + "\n"
	for _, tc := range []struct{ name, text, want string }{
		{name: "cgetv", text: `{{cgetv "/db/password"}}`, want: pw},
		{name: "cget", text: `{{with cget "/config/app.json"}}{{.Key}} {{.Value}}{{end}}`, want: "/config/app.json " + app},
		{name: "cgets", text: `{{range cgets "/*/*"}}{{.Key}}={{.Value}};{{end}}`, want: "/config/app.json=" + app + ";/db/password=" + pw + ";"},
		{name: "cgetvs", text: `{{range cgetvs "/*/*"}}{{.}};{{end}}`, want: pw + ";" + app + ";"},
		{name: "json of cgetv", text: `{{(json (cgetv "/config/app.json")).password}}`, want: "viper-fixture-Pw-81d4"},
	} {
		for _, text := range []bool{false, true} {
			t.Run(tc.name, func(t *testing.T) {
				tm, err := Parse("t", tc.text, Options{Decrypter: keys, TextTemplate: text})
				if err != nil {
					t.Fatal(err)
				}
				out, _, err := tm.Execute(store)
				if err != nil || string(out) != tc.want {
					t.Fatalf("Execute = %q, %v; want %q", out, err, tc.want)
				}
			})
		}
	}
}

func TestCryptNeedsKeys(t *testing.T) {
	_, err := Parse("t", "\n{{cgetv \"/x\"}}", Options{})
	if err == nil || !strings.Contains(err.Error(), "template: t:2: cgetv decrypts values: give confit a key (-secret-keyring") {
		t.Fatalf("Parse without a Decrypter: %v", err)
	}
	tm, err := Parse("t", `{{getv "/x"}}`, Options{})
	if err != nil || tm.Decrypts() {
		t.Fatalf("Parse = %v, Decrypts %v; want no error, false", err, tm.Decrypts())
	}
}
