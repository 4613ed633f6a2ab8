package secret

import (
	"bytes"
	"encoding/base64"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
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

// FuzzOpenRaw feeds garbage binary messages, past the base64, to the age
// and OpenPGP readers (headers, stanzas, packets) and the key-binding
// parser: none panics, and each failure is an *Error.
func FuzzOpenRaw(f *testing.F) {
	id, err := ageIdentityForFuzz()
	if err != nil {
		f.Fatal(err)
	}
	sec, pub := newPGPKeyring(f)
	keys, err := loadFuzzKeys(f.TempDir(), id.String(), sec)
	if err != nil {
		f.Fatal(err)
	}
	ks := keys.cur.Load()
	for _, v := range []string{mustEncrypt(f, "/k", id.Recipient().String()), mustEncryptCrypt(f, pub)} {
		raw, _ := decodeB64(v)
		f.Add(raw)
	}
	f.Add([]byte("age-encryption.org/v1\n-> X25519 abc\n--- abc\n"))
	f.Add([]byte{0xc1, 0x0c, 0x03})
	f.Add([]byte(bindHeader + "\"/k\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, err := range []error{
			second(openAge(raw, ks.ids)),
			second(openCrypt(raw, ks.keyring)),
			third(unbind(raw)),
		} {
			if _, ok := err.(*Error); err != nil && !ok {
				t.Fatalf("error %T %v, want *Error", err, err)
			}
		}
	})
}

// FuzzCryptPayload encrypts garbage as the literal data of a well-formed
// OpenPGP message, so that the gzip reader behind the decryption sees it:
// it never panics, and fails with an *Error unless the data is gzip.
func FuzzCryptPayload(f *testing.F) {
	sec, pub := newPGPKeyring(f)
	keys, err := loadFuzzKeys(f.TempDir(), mustIdentity(f), sec)
	if err != nil {
		f.Fatal(err)
	}
	kr := keys.cur.Load().keyring
	to, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(pub))
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff})
	f.Add([]byte("not gzip"))
	f.Fuzz(func(t *testing.T, payload []byte) {
		var msg bytes.Buffer
		w, err := openpgp.Encrypt(&msg, to, nil, &openpgp.FileHints{IsBinary: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(payload)
		w.Close()
		if _, err := openCrypt(msg.Bytes(), kr); err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T %v, want *Error", err, err)
			}
		}
	})
}

func second[T any](_ T, err error) error        { return err }
func third[T, U any](_ T, _ U, err error) error { return err }

func mustEncrypt(f *testing.F, key, recipient string) string {
	v, err := Encrypt(key, []byte("v"), []string{recipient})
	if err != nil {
		f.Fatal(err)
	}
	return v
}

func mustEncryptCrypt(f *testing.F, pub []byte) string {
	v, err := EncryptCrypt([]byte("v"), pub)
	if err != nil {
		f.Fatal(err)
	}
	return v
}

func mustIdentity(f *testing.F) string {
	id, err := ageIdentityForFuzz()
	if err != nil {
		f.Fatal(err)
	}
	return id.String()
}
