package secret

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"filippo.io/age"
)

// bindHeader starts the plaintext of an age value Encrypt binds to a key:
// bindHeader, the key quoted as Go quotes strings, a newline, then the
// value's bytes. age has no associated data, so the key travels inside
// the encryption: a ciphertext copied to another key still decrypts, but
// says which key it was made for, and the caller refuses it.
const bindHeader = "confit-key-binding/v1 "

// openAge decrypts a binary age file with ids.
func openAge(msg []byte, ids []age.Identity) ([]byte, error) {
	r, err := age.Decrypt(bytes.NewReader(msg), ids...)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, &Error{Format: Age, Reason: "no -age-identity opens it (encrypted to other recipients)", err: errors.Join(ErrNoKey, err)}
		}
		return nil, &Error{Format: Age, Reason: "not a readable age file", err: err}
	}
	plain, err := readPlain(r)
	if err != nil {
		return nil, &Error{Format: Age, Reason: "ciphertext fails its integrity check or is cut short", err: err}
	}
	return plain, nil
}

// unbind splits a decrypted age plaintext into the value and the key it
// is bound to ("" when it carries no binding).
func unbind(b []byte) (plain, key string, err error) {
	s := string(b)
	rest, ok := strings.CutPrefix(s, bindHeader)
	if !ok {
		return s, "", nil
	}
	line, value, ok := strings.Cut(rest, "\n")
	if ok {
		key, err = strconv.Unquote(line)
	}
	if !ok || err != nil || key == "" {
		return "", "", &Error{Format: Age, Reason: "corrupt key binding in the plaintext"}
	}
	return value, key, nil
}

// Encrypt encrypts plain with age to recipients (age1... public keys,
// one per element, or lines of a recipients file with # comments), bound
// to the store key key, and returns it as one line of standard base64.
// An empty key binds to none.
func Encrypt(key string, plain []byte, recipients []string) (string, error) {
	rs, err := age.ParseRecipients(strings.NewReader(strings.Join(recipients, "\n")))
	if err != nil {
		return "", fmt.Errorf("age: recipients: %w", err)
	}
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, rs...)
	if err != nil {
		return "", fmt.Errorf("age: encrypt: %w", err)
	}
	if key != "" {
		if !path.IsAbs(key) || path.Clean(key) != key {
			return "", fmt.Errorf("age: key %q: want a clean absolute store key such as /app/db/password", key)
		}
		if _, err := w.Write([]byte(bindHeader + strconv.Quote(key) + "\n")); err != nil {
			return "", err
		}
	}
	if _, err := w.Write(plain); err != nil {
		return "", fmt.Errorf("age: encrypt: %w", err)
	}
	if err := w.Close(); err != nil {
		return "", fmt.Errorf("age: encrypt: %w", err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

// loadIdentities reads an age identity file.
func loadIdentities(path string) ([]age.Identity, error) {
	data, err := readKeyFile("-age-identity", path)
	if err != nil {
		return nil, err
	}
	ids, err := age.ParseIdentities(bytes.NewReader(data))
	if err != nil {
		// age's errors never quote a key line.
		return nil, fmt.Errorf("secret: -age-identity %s: %w", path, err)
	}
	return ids, nil
}

// NewIdentity returns a new age identity (AGE-SECRET-KEY-1...) and its
// recipient (age1...).
func NewIdentity() (identity, recipient string, err error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", "", fmt.Errorf("age: %w", err)
	}
	return id.String(), id.Recipient().String(), nil
}
