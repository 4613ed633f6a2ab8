//go:build !confit_no_crypt

package main

// Encrypted values in the store (package secret: crypt's OpenPGP format
// and age) and `confit encrypt`. Build with -tags confit_no_crypt to leave
// them, and the OpenPGP and age libraries, out.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/confit-dev/confit/secret"
	"github.com/confit-dev/confit/template"
)

// loadKeys loads the keys -secret-keyring and -age-identity name. It
// returns a nil Decrypter and reload func when they name none; reload
// reads the files again (SIGHUP), keeping the keys in use on error.
func loadKeys(o *options) (template.Decrypter, func() error, error) {
	files := secret.Files{Keyring: o.secretKeyring, AgeIdentities: o.ageIdentity}
	if files.Empty() {
		return nil, nil, nil
	}
	keys, err := secret.Load(files)
	if err != nil {
		return nil, nil, err
	}
	return keys, keys.Reload, nil
}

// runEncrypt is `confit encrypt` (also `confit secret encrypt`): it
// encrypts stdin, byte for byte, and prints the value to store, one line
// of base64. With -recipient or -recipients-file the value is age, bound
// to -key; with -public-keyring it is crypt's format, which gpg, confd
// 0.16 and viper read (and which has no room for a key binding).
func runEncrypt(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("confit encrypt", flag.ContinueOnError)
	usageOut := stderr // -help: stdout, as every -help
	if helpAsked(args) {
		usageOut = stdout
	}
	fs.SetOutput(usageOut)
	var recipients, recipientFiles listFlag
	key := fs.String("key", "", "the store key the value will be written to (age: bound inside the ciphertext; a copy under another key does not decrypt)")
	fs.Var(&recipients, "recipient", "age recipient (age1...), repeatable")
	fs.Var(&recipientFiles, "recipients-file", "file of age recipients, one a line, # comments; repeatable")
	pubring := fs.String("public-keyring", "", "armored OpenPGP public keyring: write crypt's format (confd 0.16 -secret-keyring, viper) to every key in it")
	fs.Usage = func() {
		fmt.Fprint(usageOut, `Usage: confit encrypt -key KEY -recipient age1... < plaintext
       confit encrypt -public-keyring pubring.asc < plaintext

Encrypts standard input as it is (printf, not echo, for a value without a
final newline) and prints the value to write to the store under KEY.

Flags:
`)
		fs.PrintDefaults()
	}
	usageErr := func(msg string) int {
		fmt.Fprintf(stderr, "confit encrypt: %s\nRun 'confit encrypt -help' for usage.\n", msg)
		return exitUsage
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		return usageErr(fmt.Sprintf("unexpected argument %q: the plaintext is read from standard input", fs.Arg(0)))
	}
	for _, p := range recipientFiles {
		b, err := os.ReadFile(p)
		if err != nil {
			return usageErr(fmt.Sprintf("-recipients-file: %v", err))
		}
		recipients = append(recipients, string(b))
	}
	age := len(recipients) > 0
	switch {
	case age && *pubring != "":
		return usageErr("-recipient/-recipients-file (age) and -public-keyring (crypt) exclude each other")
	case !age && *pubring == "":
		return usageErr("give -recipient age1... (age) or -public-keyring FILE (crypt's OpenPGP format)")
	case age && *key == "":
		return usageErr("-key: an age value is bound to the store key it is written to: give it, e.g. -key /app/db/password")
	case !age && *key != "":
		return usageErr("-key: crypt's format has no room for a key binding (use age for that)")
	}
	plain, err := io.ReadAll(io.LimitReader(stdin, secret.MaxPlaintext+1))
	if err != nil {
		fmt.Fprintf(stderr, "confit encrypt: read standard input: %v\n", err)
		return exitFailed
	}
	if len(plain) > secret.MaxPlaintext {
		fmt.Fprintf(stderr, "confit encrypt: standard input is larger than %d bytes\n", secret.MaxPlaintext)
		return exitFailed
	}
	var value string
	if age {
		value, err = secret.Encrypt(*key, plain, recipients)
	} else {
		var pub []byte
		if pub, err = os.ReadFile(*pubring); err == nil {
			value, err = secret.EncryptCrypt(plain, pub)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "confit encrypt: %v\n", strings.TrimPrefix(err.Error(), "secret: "))
		return exitFailed
	}
	fmt.Fprintln(stdout, value)
	return exitOK
}

// runKeygen is `confit secret keygen`: it prints a new age identity in
// age-keygen's layout (a comment with the public key, then the secret
// key) and the recipient on stderr. Write it to a file of mode 0600.
func runKeygen(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && helpAsked(args) {
		fmt.Fprint(stdout, keygenUsage)
		return exitOK
	}
	if len(args) > 0 {
		fmt.Fprintf(stderr, "confit secret keygen: takes no arguments (it prints the identity: confit secret keygen > identity.txt)\n")
		return exitUsage
	}
	id, rcpt, err := secret.NewIdentity()
	if err != nil {
		fmt.Fprintf(stderr, "confit secret keygen: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "# public key: %s\n%s\n", rcpt, id)
	fmt.Fprintf(stderr, "Public key: %s\n", rcpt)
	return exitOK
}
