package testserver

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// EtcdVersion is the etcd server version the tests use (same as the client).
const EtcdVersion = "3.7.3"

// EtcdBinaryEnv names the environment variable that overrides the etcd
// binary's path.
const EtcdBinaryEnv = "CONFIT_ETCD_BIN"

// EtcdBinary returns the etcd binary: $CONFIT_ETCD_BIN, the cached build in
// .cache/servers/etcd-<version>/etcd, or a fresh build by
// scripts/servers/etcd.sh. Errors wrap ErrUnavailable.
func EtcdBinary() (string, error) {
	return Binary(EtcdBinaryEnv, filepath.Join(".cache", "servers", "etcd-"+EtcdVersion, "etcd"),
		filepath.Join("scripts", "servers", "etcd.sh"), 10*time.Minute)
}

// EtcdOptions configures StartEtcd and Etcd.
type EtcdOptions struct {
	// TLS, when set, serves clients over https with these files
	// (see GenerateTLS). Peers stay on plain http.
	TLS *TLSFiles
	// ClientCertAuth requires clients to present a certificate signed by
	// TLS.CA (--client-cert-auth). Needs TLS.
	ClientCertAuth bool
	// Dir holds the data directory and the log. Etcd uses t.TempDir() when
	// empty; StartEtcd makes and later removes a temporary directory.
	Dir string
	// ExtraArgs are appended to etcd's command line.
	ExtraArgs []string
	// StopTimeout bounds the graceful stop before SIGKILL (default 3 s:
	// etcd otherwise waits for open watch streams; the data is safe either
	// way because every commit is written before it is acknowledged).
	StopTimeout time.Duration
}

// EtcdServer is a single-member etcd on 127.0.0.1.
type EtcdServer struct {
	server
	endpoint string
	tls      *TLSFiles
}

// StartEtcd starts etcd with a fresh data directory on free loopback ports
// and returns once it is healthy. The caller must Close it. It retries with
// other ports when a port was taken in the meantime.
func StartEtcd(ctx context.Context, opts EtcdOptions) (*EtcdServer, error) {
	if opts.ClientCertAuth && opts.TLS == nil {
		return nil, fmt.Errorf("etcd: ClientCertAuth needs TLS")
	}
	bin, err := EtcdBinary()
	if err != nil {
		return nil, err
	}
	s := &EtcdServer{tls: opts.TLS}
	dir, err := s.dataDir(opts.Dir, "confit-etcd-")
	if err != nil {
		return nil, err
	}
	err = s.startRetrying(func(attempt int) error {
		ports, err := FreePorts(2)
		if err != nil {
			return fmt.Errorf("etcd: %w", err)
		}
		cport, pport := ports[0], ports[1]
		scheme := "http"
		if opts.TLS != nil {
			scheme = "https"
		}
		s.endpoint = fmt.Sprintf("%s://127.0.0.1:%d", scheme, cport)
		peer := fmt.Sprintf("http://127.0.0.1:%d", pport)
		args := []string{
			"--name", "confit",
			"--data-dir", filepath.Join(dir, fmt.Sprintf("data%d", attempt)),
			"--listen-client-urls", s.endpoint,
			"--advertise-client-urls", s.endpoint,
			"--listen-peer-urls", peer,
			"--initial-advertise-peer-urls", peer,
			"--initial-cluster", "confit=" + peer,
			"--initial-cluster-state", "new",
			"--unsafe-no-fsync",
			"--log-level", "warn",
		}
		if opts.TLS != nil {
			args = append(args, "--cert-file", opts.TLS.ServerCert, "--key-file", opts.TLS.ServerKey,
				"--trusted-ca-file", opts.TLS.CA)
			if opts.ClientCertAuth {
				args = append(args, "--client-cert-auth")
			}
		}
		args = append(args, opts.ExtraArgs...)
		client, err := s.healthClient()
		if err != nil {
			return err
		}
		s.proc = &Process{
			Name:             "etcd",
			Path:             bin,
			Args:             args,
			UnsetEnvPrefixes: []string{"ETCD_", "ETCDCTL_"},
			LogPath:          filepath.Join(dir, "etcd.log"),
			Ready:            httpHealth(client, s.endpoint+"/health"),
			StopTimeout:      cmp.Or(opts.StopTimeout, 3*time.Second),
		}
		return s.proc.Start(ctx)
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Etcd starts etcd for t (see StartEtcd) and stops it when t ends; the log
// is shown if t failed. A missing binary skips t locally and fails it in CI
// (see Unavailable).
func Etcd(t testing.TB, opts EtcdOptions) *EtcdServer {
	t.Helper()
	return forTest(t, &opts.Dir, 11*time.Minute, func(ctx context.Context) (*EtcdServer, error) { return StartEtcd(ctx, opts) })
}

func (s *EtcdServer) healthClient() (*http.Client, error) {
	tr := &http.Transport{DisableKeepAlives: true}
	if s.tls != nil {
		cfg, err := s.tls.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("etcd: %w", err)
		}
		tr.TLSClientConfig = cfg
	}
	return &http.Client{Transport: tr, Timeout: 2 * time.Second}, nil
}

// httpHealth returns a readiness check that GETs url and wants a 200 whose
// body contains `"health":"true"`.
func httpHealth(c *http.Client, url string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"health":"true"`) {
			return fmt.Errorf("GET %s: %s %s", url, resp.Status, strings.TrimSpace(string(body)))
		}
		return nil
	}
}

// Endpoint returns the client URL ("http://127.0.0.1:PORT", or https with
// TLS).
func (s *EtcdServer) Endpoint() string { return s.endpoint }

// TLS returns the TLS files the server was started with, or nil.
func (s *EtcdServer) TLS() *TLSFiles { return s.tls }
