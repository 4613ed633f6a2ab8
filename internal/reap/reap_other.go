//go:build !linux

package reap

import "errors"

// peek reaps nothing outside Linux.
func peek() (int, error) { return 0, nil }

// SetSubreaper is Linux only.
func SetSubreaper() error { return errors.New("child subreaper: Linux only") }
