package secret

import "testing"

// BenchmarkDecrypt measures one value's decryption, as each render of a
// template reading it pays: age (X25519) and crypt (the openpgp
// package's default key), the first time (uncached) and after.
func BenchmarkDecrypt(b *testing.B) {
	id, err := ageIdentityForFuzz()
	if err != nil {
		b.Fatal(err)
	}
	sec, pub := newPGPKeyring(b)
	keys, err := loadFuzzKeys(b.TempDir(), id.String(), sec)
	if err != nil {
		b.Fatal(err)
	}
	ageV, err := Encrypt("/app/db/password", []byte("hunter2"), []string{id.Recipient().String()})
	if err != nil {
		b.Fatal(err)
	}
	cryptV, err := EncryptCrypt([]byte("hunter2"), pub)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, v string }{{"age", ageV}, {"crypt", cryptV}} {
		b.Run(bc.name+"/uncached", func(b *testing.B) {
			b.ReportAllocs()
			ks := keys.cur.Load()
			for b.Loop() {
				if _, _, err := ks.decrypt(bc.v); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bc.name+"/cached", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := keys.Decrypt(bc.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
