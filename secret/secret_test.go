package secret

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/armor"
)

const canary = "canary-Pl41nText-9d2e"

func TestAgeBound(t *testing.T) {
	id, idFile := newAgeIdentity(t)
	keys, err := Load(Files{AgeIdentities: []string{idFile}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, key, plain string
	}{
		{"bound", "/app/db/password", canary},
		{"bound, key with a newline", "/app/odd\nkey", canary}, // quoted in the envelope
		{"bound, empty value", "/app/empty", ""},
		{"bound, value with newlines", "/app/cert", "line1\nline2\n"},
		{"not bound", "", canary},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Encrypt(tc.key, []byte(tc.plain), []string{id.Recipient().String()})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(v, "\n") {
				t.Errorf("value has a line break: %q", v)
			}
			plain, bound, err := keys.Decrypt(v)
			if err != nil {
				t.Fatal(err)
			}
			if plain != tc.plain || bound != tc.key {
				t.Errorf("Decrypt = %q, bound %q; want %q, bound %q", plain, bound, tc.plain, tc.key)
			}
		})
	}
}

// TestAgeArmored reads a value in age's armor, as `age -a` writes it.
func TestAgeArmored(t *testing.T) {
	id, idFile := newAgeIdentity(t)
	keys, err := Load(Files{AgeIdentities: []string{idFile}})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	aw := armor.NewWriter(&buf)
	w, err := age.Encrypt(aw, id.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(canary))
	w.Close()
	aw.Close()
	plain, bound, err := keys.Decrypt(buf.String())
	if err != nil || plain != canary || bound != "" {
		t.Fatalf("Decrypt = %q, %q, %v; want %q unbound", plain, bound, err, canary)
	}
}

// TestDecryptFails checks each failure's message: it says why, and never
// holds the plaintext or the ciphertext.
func TestDecryptFails(t *testing.T) {
	id, idFile := newAgeIdentity(t)
	other, _ := newAgeIdentity(t)
	sec, pub := newPGPKeyring(t)
	_, otherPub := newPGPKeyring(t)
	keys, err := Load(Files{AgeIdentities: []string{idFile}, Keyring: writeKey(t, "kr.asc", string(sec))})
	if err != nil {
		t.Fatal(err)
	}
	ageOnly, err := Load(Files{AgeIdentities: []string{idFile}})
	if err != nil {
		t.Fatal(err)
	}
	good, err := Encrypt("/k", []byte(canary), []string{id.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	toOther, _ := Encrypt("/k", []byte(canary), []string{other.Recipient().String()})
	cryptOther, err := EncryptCrypt([]byte(canary), otherPub)
	if err != nil {
		t.Fatal(err)
	}
	cryptGood, _ := EncryptCrypt([]byte(canary), pub)
	raw, _ := decodeB64(good)
	cut := encodeB64(raw[:len(raw)-5])
	flipped := append([]byte(nil), raw...)
	flipped[len(flipped)-3] ^= 1
	for _, tc := range []struct {
		name  string
		keys  *Keys
		value string
		want  string
		noKey bool
	}{
		{"age to another recipient", keys, toOther, "age: no -age-identity opens it", true},
		{"crypt to another key", keys, cryptOther, "crypt: no key of -secret-keyring opens it", true},
		{"crypt without a keyring", ageOnly, cryptGood, "crypt: no -secret-keyring to decrypt with", false},
		{"plain text", keys, "hunter2-" + canary, "not an encrypted value", false},
		{"age cut short", keys, cut, "age: ciphertext fails its integrity check", false},
		{"age flipped bit", keys, encodeB64(flipped), "age: ciphertext fails its integrity check", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain, _, err := tc.keys.Decrypt(tc.value)
			if err == nil {
				t.Fatalf("Decrypt = %q, want an error", plain)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q, want it to contain %q", msg, tc.want)
			}
			if errors.Is(err, ErrNoKey) != tc.noKey {
				t.Errorf("errors.Is(err, ErrNoKey) = %v, want %v", !tc.noKey, tc.noKey)
			}
			if strings.Contains(msg, canary) || strings.Contains(msg, tc.value[:20]) {
				t.Errorf("error %q holds the plaintext or the ciphertext", msg)
			}
		})
	}
}

func TestCryptRoundTrip(t *testing.T) {
	sec, pub := newPGPKeyring(t)
	keys, err := Load(Files{Keyring: writeKey(t, "kr.asc", string(sec))})
	if err != nil {
		t.Fatal(err)
	}
	v, err := EncryptCrypt([]byte(canary), pub)
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := Sniff(v); f != Crypt {
		t.Errorf("Sniff = %v, want crypt", f)
	}
	// crypt's decoder ignores line breaks in the base64.
	wrapped := v[:40] + "\n" + v[40:] + "\n"
	for _, in := range []string{v, wrapped} {
		plain, bound, err := keys.Decrypt(in)
		if err != nil || plain != canary || bound != "" {
			t.Errorf("Decrypt = %q, %q, %v; want %q", plain, bound, err, canary)
		}
	}
}

func TestLoadRefuses(t *testing.T) {
	_, idFile := newAgeIdentity(t)
	sec, pub := newPGPKeyring(t)
	open := writeKey(t, "open.txt", "")
	if err := os.WriteFile(open, mustRead(t, idFile), 0o640); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o640)
	for _, tc := range []struct {
		name  string
		files Files
		want  string
	}{
		{"identity readable by group", Files{AgeIdentities: []string{open}}, "secret: -age-identity " + open + ": mode 0640 lets group or others read the key"},
		{"missing identity", Files{AgeIdentities: []string{"/nonexistent/id"}}, "secret: -age-identity: open /nonexistent/id: no such file"},
		{"not an identity", Files{AgeIdentities: []string{writeKey(t, "bad", "AGE-SECRET-KEY-1NOTAKEY\n")}}, "secret: -age-identity"},
		{"public keyring", Files{Keyring: writeKey(t, "pub.asc", string(pub))}, "holds no secret key"},
		{"not a keyring", Files{Keyring: writeKey(t, "junk.asc", "junk")}, "not an armored OpenPGP keyring"},
		{"keyring readable by others", Files{Keyring: chmod(t, writeKey(t, "kr.asc", string(sec)), 0o604)}, "mode 0604 lets group or others read the key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.files)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load: %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "AGE-SECRET-KEY") {
				t.Errorf("error %q holds key material", err)
			}
		})
	}
}

// TestReload keeps the old keys when the new files fail, and takes the
// new ones when they load.
func TestReload(t *testing.T) {
	id1, idFile := newAgeIdentity(t)
	keys, err := Load(Files{AgeIdentities: []string{idFile}})
	if err != nil {
		t.Fatal(err)
	}
	v1, _ := Encrypt("/k", []byte("one"), []string{id1.Recipient().String()})
	os.Chmod(idFile, 0o644)
	if err := keys.Reload(); err == nil {
		t.Fatal("Reload accepted a key file others may read")
	}
	if p, _, err := keys.Decrypt(v1); err != nil || p != "one" {
		t.Fatalf("after a failed Reload: %q, %v; want the old keys", p, err)
	}
	id2, _ := age.GenerateX25519Identity()
	os.WriteFile(idFile, []byte(id2.String()+"\n"), 0o600)
	os.Chmod(idFile, 0o600)
	if err := keys.Reload(); err != nil {
		t.Fatal(err)
	}
	v2, _ := Encrypt("/k", []byte("two"), []string{id2.Recipient().String()})
	if p, _, err := keys.Decrypt(v2); err != nil || p != "two" {
		t.Errorf("after Reload: %q, %v; want the new key", p, err)
	}
	if _, _, err := keys.Decrypt(v1); err == nil {
		t.Error("after Reload the old key still opens its values")
	}
}

func chmod(t *testing.T, p string, m os.FileMode) string {
	t.Helper()
	if err := os.Chmod(p, m); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCache: a value is opened once; the cache is bounded and starts
// again when full; a failure is not remembered.
func TestCache(t *testing.T) {
	c := cache{max: 2}
	for i := range 3 {
		c.put([32]byte{byte(i)}, opened{plain: "p"})
	}
	if _, ok := c.get([32]byte{0}); ok || len(c.m) != 1 {
		t.Errorf("full cache: %d entries, first still there: %v; want it started again", len(c.m), ok)
	}
	id, idFile := newAgeIdentity(t)
	keys, err := Load(Files{AgeIdentities: []string{idFile}})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := Encrypt("/k", []byte(canary), []string{id.Recipient().String()})
	for range 2 {
		if p, b, err := keys.Decrypt(v); err != nil || p != canary || b != "/k" {
			t.Fatalf("Decrypt = %q, %q, %v", p, b, err)
		}
	}
	if n := len(keys.cur.Load().opened.m); n != 1 {
		t.Errorf("cache holds %d values, want 1", n)
	}
	keys.Decrypt("not-a-value")
	if n := len(keys.cur.Load().opened.m); n != 1 {
		t.Errorf("after a failure the cache holds %d values, want 1", n)
	}
}
