package secret

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// writeKey writes a key file with mode 0600 and returns its path.
func writeKey(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// newAgeIdentity returns a fresh identity and the path of its file.
func newAgeIdentity(t *testing.T) (*age.X25519Identity, string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id, writeKey(t, "identity.txt", "# test identity\n"+id.String()+"\n")
}

// newPGPKeyring returns an armored secret keyring and public keyring of a
// key made by the openpgp package (no gpg needed).
func newPGPKeyring(t testing.TB) (secret, public []byte) {
	t.Helper()
	e, err := openpgp.NewEntity("confit test", "", "test@confit.invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	var s, p bytes.Buffer
	w, _ := armor.Encode(&s, openpgp.PrivateKeyType, nil)
	if err := e.SerializePrivate(w, nil); err != nil {
		t.Fatal(err)
	}
	w.Close()
	w, _ = armor.Encode(&p, openpgp.PublicKeyType, nil)
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return s.Bytes(), p.Bytes()
}

// gpgHome is a GNUPGHOME with one key, made by gpg itself, without a
// passphrase, for user uid.
type gpgHome struct {
	dir string
	uid string
}

// newGPGHome generates a key with gpg in a temporary GNUPGHOME. It skips
// the test when gpg is not installed (make test installs it: see
// scripts/test-deps.sh).
func newGPGHome(t *testing.T, uid string) *gpgHome {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Skip("gpg not installed (make test installs gnupg)")
	}
	// A short path: gpg-agent's socket lives in it.
	dir, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	h := &gpgHome{dir: dir, uid: uid}
	t.Cleanup(func() {
		// Stops the agent of this home only.
		c := exec.Command("gpgconf", "--kill", "gpg-agent")
		c.Env = h.env()
		_ = c.Run()
		os.RemoveAll(dir)
	})
	h.run(t, nil, "--batch", "--passphrase", "", "--quick-generate-key", uid, "default", "default", "never")
	return h
}

func (h *gpgHome) env() []string { return append(os.Environ(), "GNUPGHOME="+h.dir) }

// run runs gpg with args and stdin, and returns its output.
func (h *gpgHome) run(t *testing.T, stdin []byte, args ...string) []byte {
	t.Helper()
	c := exec.Command("gpg", append([]string{"--homedir", h.dir, "--quiet"}, args...)...)
	return h.output(t, c, stdin, "gpg "+strings.Join(args, " "))
}

// sh runs a shell pipeline with this GNUPGHOME and returns its output.
func (h *gpgHome) sh(t *testing.T, stdin []byte, script string) []byte {
	t.Helper()
	return h.output(t, exec.Command("sh", "-c", script), stdin, fmt.Sprintf("sh -c %q", script))
}

// output runs c with this GNUPGHOME and stdin, and returns its output;
// it fails t, naming what ran, with the error and stderr.
func (h *gpgHome) output(t *testing.T, c *exec.Cmd, stdin []byte, what string) []byte {
	t.Helper()
	c.Env = h.env()
	c.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", what, err, stderr.String())
	}
	return out
}

func ageIdentityForFuzz() (*age.X25519Identity, error) { return age.GenerateX25519Identity() }

// loadFuzzKeys writes an identity and a keyring into dir and loads them.
func loadFuzzKeys(dir, identity string, keyring []byte) (*Keys, error) {
	id, kr := filepath.Join(dir, "id"), filepath.Join(dir, "kr.asc")
	if err := os.WriteFile(id, []byte(identity+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(kr, keyring, 0o600); err != nil {
		return nil, err
	}
	return Load(Files{AgeIdentities: []string{id}, Keyring: kr})
}
