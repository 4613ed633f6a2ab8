package secret

import (
	"fmt"
	"io"
	"os"
)

// maxKeyFile bounds a key file's size.
const maxKeyFile = 16 << 20

// readKeyFile reads a key file, refusing one that group or others may
// read (as ssh refuses such a private key): flag names the option that
// gave path, for the message.
func readKeyFile(flag, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("secret: %s: %w", flag, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("secret: %s: %w", flag, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("secret: %s %s: not a regular file", flag, path)
	}
	if perm := fi.Mode().Perm(); perm&0o044 != 0 {
		return nil, fmt.Errorf("secret: %s %s: mode %04o lets group or others read the key; chmod 600 it", flag, path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("secret: %s %s: %w", flag, path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("secret: %s %s: larger than %d bytes", flag, path, maxKeyFile)
	}
	return data, nil
}
