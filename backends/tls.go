package backends

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// WantsTLS reports whether any TLS setting is given: a client certificate
// or key, a CA file, or client-insecure. Backends whose address has no
// scheme (ZooKeeper, Redis) speak TLS exactly then.
func (c Config) WantsTLS() bool {
	return c.ClientCert != "" || c.ClientKey != "" || c.ClientCAKeys != "" || c.ClientInsecure
}

// TLSConfig builds the client TLS configuration from the settings:
// TLS 1.2 or later, the client certificate (client-cert and client-key,
// both or neither), the CAs of client-ca-keys instead of the system's, and
// no verification with client-insecure. Errors name the backend and the
// setting.
func (c Config) TLSConfig(backend string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.ClientInsecure} //nolint:gosec // the user's choice
	if (c.ClientCert == "") != (c.ClientKey == "") {
		return nil, fmt.Errorf("%s: settings client-cert and client-key must be given together", backend)
	}
	if c.ClientCert != "" {
		cert, err := tls.LoadX509KeyPair(c.ClientCert, c.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("%s: client certificate (client-cert %s, client-key %s): %w", backend, c.ClientCert, c.ClientKey, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if c.ClientCAKeys != "" {
		pem, err := os.ReadFile(c.ClientCAKeys)
		if err != nil {
			return nil, fmt.Errorf("%s: setting client-ca-keys: %w", backend, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: setting client-ca-keys %s: %w", backend, c.ClientCAKeys, errNoPEM)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

var errNoPEM = errors.New("no PEM certificate in the file")
