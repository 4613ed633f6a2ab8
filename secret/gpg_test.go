package secret

import (
	"strings"
	"testing"
)

// TestGPG reads values made by `gzip -c | gpg --encrypt | base64` (the
// recipe of confd 0.16's docs) with the keyring gpg exports, and has gpg
// read the values EncryptCrypt writes.
func TestGPG(t *testing.T) {
	h := newGPGHome(t, "confit test <gpg@confit.invalid>")
	sec := h.run(t, nil, "--batch", "--armor", "--export-secret-keys", "gpg@confit.invalid")
	pub := h.run(t, nil, "--batch", "--armor", "--export", "gpg@confit.invalid")
	keys, err := Load(Files{Keyring: writeKey(t, "kr.asc", string(sec))})
	if err != nil {
		t.Fatal(err)
	}
	for _, recipe := range []string{
		"gzip -c | gpg --batch --trust-model always -r gpg@confit.invalid --encrypt | base64 -w0",
		"gzip -c | gpg --batch --trust-model always --compress-level 0 -r gpg@confit.invalid --encrypt | base64",
	} {
		v := h.sh(t, []byte(canary), recipe)
		plain, _, err := keys.Decrypt(string(v))
		if err != nil || plain != canary {
			t.Errorf("%s: Decrypt = %q, %v; want %q", recipe, plain, err, canary)
		}
	}
	v, err := EncryptCrypt([]byte(canary), pub)
	if err != nil {
		t.Fatal(err)
	}
	got := h.sh(t, []byte(v), "base64 -d | gpg --batch --quiet --decrypt | gunzip")
	if string(got) != canary {
		t.Errorf("gpg --decrypt of EncryptCrypt's value = %q, want %q", got, canary)
	}
	// A value gpg made for another key fails, naming the reason.
	other := newGPGHome(t, "other <other@confit.invalid>")
	ov := other.sh(t, []byte(canary), "gzip -c | gpg --batch --trust-model always -r other@confit.invalid --encrypt | base64 -w0")
	if _, _, err := keys.Decrypt(string(ov)); err == nil || !strings.Contains(err.Error(), "no key of -secret-keyring opens it") {
		t.Errorf("value for another key: %v, want no key opens it", err)
	}
}
