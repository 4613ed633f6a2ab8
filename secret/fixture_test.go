package secret

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// The fixture of testdata/crypt: values written by crypt's own code, not
// by confit nor gpg (README "Encrypted values" says how they were made).
// secring.asc and pubring.asc are a throwaway gpg key (RSA 3072, no
// passphrase) that protects nothing else.
const (
	// fixtureDir holds the key and the values.
	fixtureDir = "testdata/crypt"
	// confd016Plain is the plaintext of confd016.secconf, written with
	// github.com/xordataexchange/crypt at b2862e3d0a77, the revision
	// confd 0.16's Gopkg.lock pins, for the store key /app/db/password.
	confd016Plain = "crypt-fixture-Pw-2c9e"
	// viperPlain is the plaintext of viper.secconf, written with
	// github.com/sagikazarmark/crypt v0.31.0, the crypt viper's remote
	// provider uses, for the store key /config/app.json.
	viperPlain = `{"user":"app","password":"viper-fixture-Pw-81d4"}` + "\n"
)

// fixtureKeys loads the fixture's secret keyring. git checks files out
// 0644, which Load refuses, so it loads a 0600 copy.
func fixtureKeys(t *testing.T) *Keys {
	t.Helper()
	sec, err := os.ReadFile(filepath.Join(fixtureDir, "secring.asc"))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := Load(Files{Keyring: writeKey(t, "secring.asc", string(sec))})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestCryptFixture decrypts values crypt's own secconf.Encode wrote (as
// `crypt set` and viper's crypt write them) through Keys.Decrypt, the
// Decrypter cget, cgets, cgetv and cgetvs call.
func TestCryptFixture(t *testing.T) {
	keys := fixtureKeys(t)
	for _, tc := range []struct {
		name, file, want string
	}{
		{name: "confd 0.16's crypt", file: "confd016.secconf", want: confd016Plain},
		{name: "viper's crypt", file: "viper.secconf", want: viperPlain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := os.ReadFile(filepath.Join(fixtureDir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			format, msg := Sniff(string(v))
			if format != Crypt {
				t.Fatalf("Sniff = %v, want crypt", format)
			}
			// crypt passes no FileHints, so its literal data is marked
			// text ('t'); gpg and EncryptCrypt mark theirs binary. Both
			// values' gzip holds a CR byte, which gpg --decrypt drops
			// from text data: the bytes must come out as they went in.
			md, err := openpgp.ReadMessage(bytes.NewReader(msg), keys.cur.Load().keyring, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if md.LiteralData.IsBinary {
				t.Error("literal data marked binary: not a value crypt wrote")
			}
			plain, bound, err := keys.Decrypt(string(v))
			if err != nil || plain != tc.want || bound != "" {
				t.Errorf("Decrypt = %q, bound %q, %v; want %q, unbound", plain, bound, err, tc.want)
			}
		})
	}
}
