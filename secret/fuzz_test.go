package secret

import (
	"encoding/base64"
	"testing"
)

func decodeB64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
func encodeB64(b []byte) string          { return base64.StdEncoding.EncodeToString(b) }

// FuzzDecrypt feeds garbage to the decoder (base64, age headers and
// payloads, OpenPGP packets, gzip) with both kinds of keys loaded: it
// never panics, and a value that fails gives an *Error.
func FuzzDecrypt(f *testing.F) {
	id, err := ageIdentityForFuzz()
	if err != nil {
		f.Fatal(err)
	}
	sec, pub := newPGPKeyring(f)
	dir := f.TempDir()
	keys, err := loadFuzzKeys(dir, id.String(), sec)
	if err != nil {
		f.Fatal(err)
	}
	bound, _ := Encrypt("/app/k", []byte("v"), []string{id.Recipient().String()})
	crypt, _ := EncryptCrypt([]byte("v"), pub)
	f.Add(bound)
	f.Add(crypt)
	f.Add("hQEMA" + crypt[5:])
	f.Add("-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n-----END AGE ENCRYPTED FILE-----\n")
	f.Add("YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOQo=")
	f.Add("")
	f.Fuzz(func(t *testing.T, value string) {
		_, _, err := keys.Decrypt(value)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T %v, want *Error", err, err)
			}
		}
	})
}
