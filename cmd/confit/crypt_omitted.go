//go:build confit_no_crypt

package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/confit-dev/confit/template"
)

// errNoCrypt is the error of -secret-keyring, -age-identity and `confit
// encrypt` in a build without encrypted values.
var errNoCrypt = errors.New("encrypted values are not in this build of confit (built with -tags confit_no_crypt)")

func loadKeys(o *options) (template.Decrypter, func() error, error) {
	if o.secretKeyring != "" || len(o.ageIdentity) > 0 {
		return nil, nil, fmt.Errorf("-secret-keyring, -age-identity: %w", errNoCrypt)
	}
	return nil, nil, nil
}

func runEncrypt(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fmt.Fprintf(stderr, "confit encrypt: %v\n", errNoCrypt)
	return exitUsage
}

func runKeygen(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintf(stderr, "confit secret keygen: %v\n", errNoCrypt)
	return exitUsage
}
