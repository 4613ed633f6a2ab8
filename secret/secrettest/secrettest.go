// Package secrettest gives tests of the packages that use secret their
// keys: a fresh age identity loaded as secret.Keys, and values sealed to
// its recipient.
package secrettest

import (
	"os"
	"path/filepath"
	"testing"

	"filippo.io/age"

	"github.com/confit-dev/confit/secret"
)

// AgeKeys writes a fresh age identity to a file under t.TempDir() (mode
// 0600), loads it, and returns the keys and the identity's recipient.
func AgeKeys(t testing.TB) (*secret.Keys, string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "id")
	if err := os.WriteFile(p, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := secret.Load(secret.Files{AgeIdentities: []string{p}})
	if err != nil {
		t.Fatal(err)
	}
	return keys, id.Recipient().String()
}

// Seal encrypts plain for recipient, bound to key (see secret.Encrypt).
func Seal(t testing.TB, key, plain, recipient string) string {
	t.Helper()
	v, err := secret.Encrypt(key, []byte(plain), []string{recipient})
	if err != nil {
		t.Fatal(err)
	}
	return v
}
