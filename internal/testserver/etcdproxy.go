package testserver

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// EtcdProxy is an etcd gRPC proxy (`etcd grpc-proxy start`, part of the
// etcd binary) on 127.0.0.1 in front of an EtcdServer: it coalesces the
// watches of its clients on the same key or range into one watch at etcd
// (the fleet tier of docs/SCALE.md). Plain http only.
type EtcdProxy struct {
	server
	endpoint string
	metrics  string
}

// StartEtcdProxy starts a gRPC proxy for upstream on free loopback ports
// and returns once it answers /health (which needs upstream healthy). Dir
// holds its data directory and log; "" makes a temporary directory that
// Close removes. The caller must Close it.
func StartEtcdProxy(ctx context.Context, upstream *EtcdServer, dir string) (*EtcdProxy, error) {
	if upstream.TLS() != nil {
		return nil, fmt.Errorf("etcd grpc-proxy: an upstream with TLS is not supported here")
	}
	bin, err := EtcdBinary()
	if err != nil {
		return nil, err
	}
	p := &EtcdProxy{}
	dir, err = p.dataDir(dir, "confit-etcd-proxy-")
	if err != nil {
		return nil, err
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}
	err = p.startRetrying(func(attempt int) error {
		ports, err := FreePorts(2)
		if err != nil {
			return fmt.Errorf("etcd grpc-proxy: %w", err)
		}
		port, mport := ports[0], ports[1]
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		p.endpoint = "http://" + addr
		p.metrics = fmt.Sprintf("http://127.0.0.1:%d", mport)
		p.proc = &Process{
			Name: "etcd grpc-proxy",
			Path: bin,
			Args: []string{"grpc-proxy", "start",
				"--endpoints", strings.TrimPrefix(upstream.Endpoint(), "http://"),
				"--listen-addr", addr,
				"--advertise-client-url", addr,
				"--metrics-addr", p.metrics,
				"--data-dir", filepath.Join(dir, fmt.Sprintf("proxy%d", attempt)),
			},
			UnsetEnvPrefixes: []string{"ETCD_", "ETCDCTL_"},
			LogPath:          filepath.Join(dir, "grpc-proxy.log"),
			Ready:            httpHealth(client, p.metrics+"/health"),
		}
		return p.proc.Start(ctx)
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// EtcdProxyFor starts a gRPC proxy for upstream for t (see StartEtcdProxy)
// and stops it when t ends; the log is shown if t failed.
func EtcdProxyFor(t testing.TB, upstream *EtcdServer) *EtcdProxy {
	t.Helper()
	return forTest(t, nil, 2*time.Minute, func(ctx context.Context) (*EtcdProxy, error) { return StartEtcdProxy(ctx, upstream, t.TempDir()) })
}

// Endpoint returns the proxy's client URL ("http://127.0.0.1:PORT"): point
// etcd clients (confit's -node) at it instead of the server.
func (p *EtcdProxy) Endpoint() string { return p.endpoint }
