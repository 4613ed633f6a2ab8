// Package secret decrypts values kept encrypted in a key-value store: the
// crypt format of confd 0.16 and viper (base64 of a binary OpenPGP message
// holding the gzip of the plaintext, read with an armored secret keyring)
// and age (filippo.io/age, read with age identities), optionally with the
// store key the value is bound to inside the envelope.
//
// Keys load key files once (refusing a file group or others may read) and
// again on Reload; Decrypt is safe for concurrent use. Its errors never
// hold the value nor the plaintext: print them as they are.
package secret

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/ProtonMail/go-crypto/openpgp"
)

// MaxPlaintext bounds a decrypted value (and so a gzip bomb), in bytes.
const MaxPlaintext = 16 << 20

// Files names the key files to load.
type Files struct {
	// Keyring is an armored OpenPGP keyring holding unprotected secret
	// keys (confd's -secret-keyring), "" for none.
	Keyring string
	// AgeIdentities are files of age identities (AGE-SECRET-KEY-1...
	// lines, # comments), in the order given.
	AgeIdentities []string
}

// Empty reports whether f names no file.
func (f Files) Empty() bool { return f.Keyring == "" && len(f.AgeIdentities) == 0 }

// Keys holds the keys loaded from Files. It is safe for concurrent use:
// Reload swaps the keys in one step, so a Decrypt sees the old keys or
// the new ones.
type Keys struct {
	files Files
	cur   atomic.Pointer[keySet]
}

type keySet struct {
	keyring openpgp.EntityList // nil without -secret-keyring
	ids     []age.Identity     // nil without -age-identity
	opened  cache              // values these keys opened
}

// Load reads the key files of f. A file that is missing, readable by
// group or others, or holds no usable key is an error naming the file.
func Load(f Files) (*Keys, error) {
	k := &Keys{files: f}
	if err := k.Reload(); err != nil {
		return nil, err
	}
	return k, nil
}

// Reload reads the key files again; on error the keys in use stay.
func (k *Keys) Reload() error {
	ks := &keySet{opened: cache{max: maxCached}}
	if k.files.Keyring != "" {
		kr, err := loadKeyring(k.files.Keyring)
		if err != nil {
			return err
		}
		ks.keyring = kr
	}
	for _, p := range k.files.AgeIdentities {
		ids, err := loadIdentities(p)
		if err != nil {
			return err
		}
		ks.ids = append(ks.ids, ids...)
	}
	k.cur.Store(ks)
	return nil
}

// Format is the format of an encrypted value.
type Format int

// The formats Sniff tells apart.
const (
	// NotEncrypted is a value in neither format.
	NotEncrypted Format = iota
	// Age is an age file, armored or as base64 of its binary form.
	Age
	// Crypt is crypt's format: base64 of a binary OpenPGP message
	// encrypted to a public key.
	Crypt
)

func (f Format) String() string {
	switch f {
	case Age:
		return "age"
	case Crypt:
		return "crypt"
	}
	return "not encrypted"
}

// ageMagic starts every age file's header.
const ageMagic = "age-encryption.org/"

// Sniff returns the format of value and, for age and crypt, the binary
// message it encodes. Surrounding white space and line breaks inside the
// base64 are ignored, as crypt's decoder ignores them.
func Sniff(value string) (Format, []byte) {
	v := strings.TrimSpace(value)
	if strings.HasPrefix(v, armor.Header) {
		b, err := io.ReadAll(io.LimitReader(armor.NewReader(strings.NewReader(v)), 2*MaxPlaintext))
		if err != nil {
			return NotEncrypted, nil
		}
		return Age, b
	}
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\r", "", "\n", "").Replace(v)
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(b) == 0 {
		return NotEncrypted, nil
	}
	if bytes.HasPrefix(b, []byte(ageMagic)) {
		return Age, b
	}
	if isPKESK(b[0]) {
		return Crypt, b
	}
	return NotEncrypted, nil
}

// isPKESK reports whether c is the first byte of an OpenPGP public-key
// encrypted session key packet (tag 1): old format 0x84-0x87, new 0xC1.
func isPKESK(c byte) bool {
	return c&0xFC == 0x84 || c == 0xC1
}

// Error is the error of Decrypt: Reason says why, in words that never
// hold the value or its plaintext; it wraps the library's error, whose
// message may quote bytes of the ciphertext: print this one.
type Error struct {
	Format Format
	Reason string
	err    error
}

func (e *Error) Error() string {
	if e.Format == NotEncrypted {
		return e.Reason
	}
	return e.Format.String() + ": " + e.Reason
}

func (e *Error) Unwrap() error { return e.err }

// ErrNoKey is wrapped by the error of a value no loaded key opens.
var ErrNoKey = errors.New("no key opens the value")

// Decrypt returns the plaintext of value (crypt or age, as Sniff tells)
// and the store key an age value made by Encrypt is bound to ("" for one
// bound to none: crypt's format has no room for it, and age values made
// by other tools carry none). The caller checks the bound key against the
// key it read the value from.
//
// A value opened once is remembered (by its SHA-256, up to maxCached
// values, until Reload): each render reads every value again, and an
// OpenPGP RSA decryption costs milliseconds.
func (k *Keys) Decrypt(value string) (plain, boundKey string, err error) {
	ks := k.cur.Load()
	sum := sha256.Sum256([]byte(value))
	if o, ok := ks.opened.get(sum); ok {
		return o.plain, o.bound, nil
	}
	plain, boundKey, err = ks.decrypt(value)
	if err == nil {
		ks.opened.put(sum, opened{plain, boundKey})
	}
	return plain, boundKey, err
}

// decrypt is Decrypt without the cache.
func (ks *keySet) decrypt(value string) (plain, boundKey string, err error) {
	format, msg := Sniff(value)
	switch format {
	case Age:
		if len(ks.ids) == 0 {
			return "", "", &Error{Format: Age, Reason: "no -age-identity to decrypt with"}
		}
		b, err := openAge(msg, ks.ids)
		if err != nil {
			return "", "", err
		}
		return unbind(b)
	case Crypt:
		if ks.keyring == nil {
			return "", "", &Error{Format: Crypt, Reason: "no -secret-keyring to decrypt with"}
		}
		b, err := openCrypt(msg, ks.keyring)
		if err != nil {
			return "", "", err
		}
		return string(b), "", nil
	}
	return "", "", &Error{Reason: "not an encrypted value (neither age nor crypt's base64 OpenPGP format)"}
}

// readPlain reads r to its end, at most MaxPlaintext bytes.
func readPlain(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxPlaintext+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxPlaintext {
		return nil, fmt.Errorf("plaintext larger than %d bytes", MaxPlaintext)
	}
	return b, nil
}

// maxCached bounds the values a Keys remembers.
const maxCached = 4096

// opened is a decrypted value.
type opened struct{ plain, bound string }

// cache maps the SHA-256 of values to what they decrypt to; full, it
// starts again empty. Safe for concurrent use.
type cache struct {
	mu  sync.Mutex
	max int
	m   map[[sha256.Size]byte]opened
}

func (c *cache) get(sum [sha256.Size]byte) (opened, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o, ok := c.m[sum]
	return o, ok
}

func (c *cache) put(sum [sha256.Size]byte, o opened) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= c.max {
		c.m = make(map[[sha256.Size]byte]opened)
	}
	c.m[sum] = o
}
