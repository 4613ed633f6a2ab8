package template

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Decrypter opens the encrypted values of the store for the functions
// cget, cgets, cgetv, cgetvs and decrypt (Options.Decrypter): confit's is
// package secret's Keys.
type Decrypter interface {
	// Decrypt returns the plaintext of value and the store key the value
	// is bound to ("" when it is bound to none). Its error never holds
	// the value nor the plaintext. Safe for concurrent use.
	Decrypt(value string) (plain, boundKey string, err error)
}

// cryptFuncNames are the functions that decrypt: confd 0.16's cget,
// cgets, cgetv, cgetvs, and confit's decrypt.
var cryptFuncNames = []string{"cget", "cgets", "cgetv", "cgetvs", "decrypt"}

// cryptFunc returns the decrypting function called name bound to r, and
// whether name is one (cryptFuncNames).
func cryptFunc(r *recorder, name string) (any, bool) {
	switch name {
	case "cget":
		return r.cget, true
	case "cgets":
		return r.cgets, true
	case "cgetv":
		return r.cgetv, true
	case "cgetvs":
		return r.cgetvs, true
	case "decrypt":
		return r.decrypt, true
	}
	return nil, false
}

// WithPrefix returns a Store with the same keys and values whose keys are
// relative to prefix in the backend's key space (a resource's prefix):
// decrypt checks a value's key binding against path.Join(prefix, key).
func (s *Store) WithPrefix(prefix string) *Store {
	c := *s
	c.prefix = prefix
	return &c
}

// Decrypts reports whether the template calls a function that decrypts
// (cget, cgets, cgetv, cgetvs, decrypt): its output may hold secrets.
func (t *Template) Decrypts() bool { return t.decrypts }

// needsDecrypter fails a call of the decrypting function fn when opts
// give no Decrypter: without keys, every render of it would fail.
func needsDecrypter(fn string, opts Options) error {
	if _, over := opts.Funcs[fn]; over || opts.Decrypter != nil || !slices.Contains(cryptFuncNames, fn) {
		return nil
	}
	return fmt.Errorf("%s decrypts values: give confit a key (-secret-keyring for crypt's OpenPGP values, -age-identity for age)", fn)
}

// decrypts reports whether the functions used include one that decrypts
// (and that opts.Funcs does not override).
func decrypts(used []string, opts Options) bool {
	for _, fn := range used {
		if _, over := opts.Funcs[fn]; !over && slices.Contains(cryptFuncNames, fn) {
			return true
		}
	}
	return false
}

// decrypted is a plaintext one render decrypted, kept so that an error of
// the render never shows it (redact).
type decrypted struct {
	key, plain string
}

// open decrypts the value of the store key key (as the template names
// it, relative to the store's prefix), checking the key it is bound to.
func (r *recorder) open(fn, key, value string) (string, error) {
	if r.dec == nil {
		return "", valueError(fn, value, "is not decrypted: confit has no key (-secret-keyring, -age-identity)")
	}
	plain, bound, err := r.dec.Decrypt(value)
	if err != nil {
		ve := valueError(fn, value, "does not decrypt: "+err.Error())
		ve.Key = key
		return "", ve
	}
	if bound != "" {
		if want := path.Join("/", r.store.prefix, key); bound != want {
			ve := valueError(fn, value, fmt.Sprintf("is bound to store key %s, not %s: a ciphertext copied from another key is refused", bound, want))
			ve.Key = key
			return "", ve
		}
	}
	r.plain = append(r.plain, decrypted{key: key, plain: plain})
	return plain, nil
}

// cget is get with the value decrypted.
func (r *recorder) cget(key string) (KVPair, error) {
	kv, err := r.get(key)
	if err != nil {
		return kv, err
	}
	kv.Value, err = r.open("cget", kv.Key, kv.Value)
	return kv, err
}

// cgets is gets with each value decrypted; one that fails fails the call.
func (r *recorder) cgets(pattern string) ([]KVPair, error) {
	return r.openAll("cgets", pattern)
}

// openAll is gets with each value decrypted (fn names the template
// function in errors); one that fails fails the call.
func (r *recorder) openAll(fn, pattern string) ([]KVPair, error) {
	kvs, err := r.gets(pattern)
	if err != nil {
		return nil, err
	}
	for i := range kvs {
		if kvs[i].Value, err = r.open(fn, kvs[i].Key, kvs[i].Value); err != nil {
			return nil, err
		}
	}
	return kvs, nil
}

// cgetv is getv with the value decrypted. confd's cgetv takes no default;
// confit's takes one, as getv does, returned as it is (not decrypted).
func (r *recorder) cgetv(key string, def ...string) (string, error) {
	kv, err := r.get(key)
	if err != nil {
		if len(def) > 0 {
			return def[0], nil
		}
		return "", err
	}
	return r.open("cgetv", kv.Key, kv.Value)
}

// cgetvs is getvs with the values decrypted, sorted by plaintext (confd
// 0.16 sorted the ciphertexts).
func (r *recorder) cgetvs(pattern string) ([]string, error) {
	kvs, err := r.openAll("cgetvs", pattern)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		out[i] = kv.Value
	}
	sort.Strings(out)
	return out, nil
}

// decrypt decrypts a value, in either format. A value bound to a key must
// be that key's value in the store (a ciphertext copied elsewhere is
// refused); the render then reads that key.
func (r *recorder) decrypt(value string) (string, error) {
	if r.dec == nil {
		return "", valueError("decrypt", value, "is not decrypted: confit has no key (-secret-keyring, -age-identity)")
	}
	plain, bound, err := r.dec.Decrypt(value)
	key := ""
	if k, ok := keyOf(r.store, r, value); ok {
		key = k
	}
	if err != nil {
		ve := valueError("decrypt", value, "does not decrypt: "+err.Error())
		ve.Key = key
		return "", ve
	}
	if bound != "" {
		rel, ok := relKey(bound, r.store.prefix)
		i, found := 0, false
		if ok {
			i, found = r.lookup(rel)
		}
		if !found || r.store.vals[i] != value {
			ve := valueError("decrypt", value, fmt.Sprintf("is bound to store key %s, which does not hold it: a ciphertext copied from another key is refused", bound))
			ve.Key = key
			return "", ve
		}
		key = rel
	}
	r.plain = append(r.plain, decrypted{key: key, plain: plain})
	return plain, nil
}

// relKey is key relative to prefix, false when key is not under it.
func relKey(key, prefix string) (string, bool) {
	if prefix == "" || prefix == "/" {
		return key, true
	}
	if key == prefix {
		return "/", true
	}
	if rest, ok := strings.CutPrefix(key, prefix+"/"); ok {
		return "/" + rest, true
	}
	return "", false
}

// decryptedKey sets *key to the key of the plaintext v the render
// decrypted, if it did.
func decryptedKey(r *recorder, v string, key *string) bool {
	for _, d := range r.plain {
		if d.plain == v {
			*key = d.key
			return true
		}
	}
	return false
}

// redactDecrypted replaces in msg every plaintext the render decrypted
// (minRedact bytes or more), as it is and as %q prints it, by "[decrypted
// value of KEY redacted, N bytes]".
func redactDecrypted(msg string, r *recorder) string {
	for _, d := range r.plain {
		if len(d.plain) < minRedact {
			continue
		}
		forms := []string{d.plain}
		if q := strconv.Quote(d.plain); q[1:len(q)-1] != d.plain {
			forms = append(forms, q[1:len(q)-1])
		}
		for _, f := range forms {
			if strings.Contains(msg, f) {
				msg = strings.ReplaceAll(msg, f, fmt.Sprintf("[decrypted value of %s redacted, %d bytes]", d.key, len(d.plain)))
			}
		}
	}
	return msg
}

// forgetPlain drops the plaintexts of the last render.
func (r *recorder) forgetPlain() {
	clear(r.plain)
	r.plain = r.plain[:0]
}
