package secret

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"io"

	"github.com/ProtonMail/go-crypto/openpgp"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
)

// openCrypt decodes crypt's format (secconf): msg is a binary OpenPGP
// message encrypted to a key of kr, whose literal data is the gzip of the
// plaintext. No signature is checked, as crypt checks none.
func openCrypt(msg []byte, kr openpgp.EntityList) ([]byte, error) {
	md, err := openpgp.ReadMessage(bytes.NewReader(msg), kr, nil, nil)
	if err != nil {
		if errors.Is(err, pgperrors.ErrKeyIncorrect) {
			return nil, &Error{Format: Crypt, Reason: "no key of -secret-keyring opens it (encrypted to other keys)", err: errors.Join(ErrNoKey, err)}
		}
		return nil, &Error{Format: Crypt, Reason: "not a readable OpenPGP message", err: err}
	}
	if !md.IsEncrypted {
		return nil, &Error{Format: Crypt, Reason: "OpenPGP message not encrypted"}
	}
	zr, err := gzip.NewReader(md.UnverifiedBody)
	if err != nil {
		return nil, &Error{Format: Crypt, Reason: "decrypted data is not gzip (crypt's format compresses the plaintext)", err: err}
	}
	plain, err := readPlain(zr)
	if err != nil {
		return nil, &Error{Format: Crypt, Reason: "decrypted data does not decompress or fails its integrity check", err: err}
	}
	// The integrity check (MDC or AEAD tag) is at the message's end.
	if _, err := io.Copy(io.Discard, md.UnverifiedBody); err != nil {
		return nil, &Error{Format: Crypt, Reason: "message fails its integrity check", err: err}
	}
	return plain, nil
}

// loadKeyring reads an armored keyring of unprotected secret keys.
func loadKeyring(path string) (openpgp.EntityList, error) {
	data, err := readKeyFile("-secret-keyring", path)
	if err != nil {
		return nil, err
	}
	kr, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("secret: -secret-keyring %s: not an armored OpenPGP keyring: %w", path, err)
	}
	n := 0
	for _, e := range kr {
		if e.PrivateKey == nil {
			continue
		}
		encrypted := e.PrivateKey.Encrypted
		for _, sk := range e.Subkeys {
			encrypted = encrypted || sk.PrivateKey != nil && sk.PrivateKey.Encrypted
		}
		if encrypted {
			return nil, fmt.Errorf("secret: -secret-keyring %s: key %X is protected by a passphrase; confit, as confd, reads unprotected keys (gpg --export-secret-keys of a key without passphrase)", path, e.PrimaryKey.Fingerprint)
		}
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("secret: -secret-keyring %s: holds no secret key (gpg --armor --export-secret-keys, not --export)", path)
	}
	return kr, nil
}

// EncryptCrypt encrypts plain in crypt's format to every key of the
// armored public keyring pub: base64 (standard, one line) of a binary
// OpenPGP message holding the gzip of plain. gpg and viper/crypt read it.
func EncryptCrypt(plain []byte, pub []byte) (string, error) {
	kr, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(pub))
	if err != nil {
		return "", fmt.Errorf("crypt: not an armored OpenPGP keyring: %w", err)
	}
	var buf bytes.Buffer
	enc := base64.NewEncoder(base64.StdEncoding, &buf)
	w, err := openpgp.Encrypt(enc, kr, nil, &openpgp.FileHints{IsBinary: true}, nil)
	if err != nil {
		return "", fmt.Errorf("crypt: encrypt: %w", err)
	}
	zw := gzip.NewWriter(w)
	if _, err := zw.Write(plain); err != nil {
		return "", fmt.Errorf("crypt: encrypt: %w", err)
	}
	for _, c := range []io.Closer{zw, w, enc} {
		if err := c.Close(); err != nil {
			return "", fmt.Errorf("crypt: encrypt: %w", err)
		}
	}
	return buf.String(), nil
}
