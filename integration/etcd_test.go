package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/confit-dev/confit/backends"
	_ "github.com/confit-dev/confit/backends/etcd"
	"github.com/confit-dev/confit/internal/testserver"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// etcdAdmin returns a raw etcd client for setting up the store.
func etcdAdmin(t *testing.T, s *testserver.EtcdServer, user, password string) *clientv3.Client {
	t.Helper()
	cfg := clientv3.Config{
		Endpoints: []string{s.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		Username: user, Password: password,
	}
	if f := s.TLS(); f != nil {
		tc, err := f.ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		cfg.TLS = tc
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newEtcdBackend(t *testing.T, cfg backends.Config) backends.Backend {
	t.Helper()
	cfg.Backend = "etcd"
	b, err := backends.New(t.Context(), backends.SpecOf(cfg.Backend, cfg), nil)
	if err != nil {
		t.Fatalf("backends.New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func mustPut(t *testing.T, c *clientv3.Client, key, value string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := c.Put(ctx, key, value)
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return resp.Header.Revision
}

// nextChange reads the watch until an update holding a change of key
// arrives, skipping degraded-state updates, within a bounded wait.
func nextChange(t *testing.T, ch <-chan backends.Update, key string) backends.Change {
	t.Helper()
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case u, ok := <-ch:
			if !ok {
				t.Fatalf("watch closed while waiting for %s", key)
			}
			if u.Err != nil {
				t.Logf("watch degraded: %v", u.Err)
				continue
			}
			if u.Reset {
				if v, ok := u.KVs[key]; ok {
					return backends.Change{Key: key, Value: v}
				}
				continue
			}
			for _, c := range u.Changes {
				if c.Key == key {
					return c
				}
			}
		case <-timeout.C:
			t.Fatalf("no change of %s within 30s", key)
		}
	}
}

func get(t *testing.T, b backends.Backend, prefix string) (map[string]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	snap, err := b.Get(ctx, []string{prefix})
	return snap.KVs, err
}

func TestEtcdMutualTLS(t *testing.T) {
	files, err := testserver.GenerateTLS(t.TempDir(), "confit")
	if err != nil {
		t.Fatal(err)
	}
	s := testserver.Etcd(t, testserver.EtcdOptions{TLS: files, ClientCertAuth: true})
	admin := etcdAdmin(t, s, "", "")
	mustPut(t, admin, "/tls/app/url", "https://db")
	hostPort := strings.TrimPrefix(s.Endpoint(), "https://")

	t.Run("client certificate", func(t *testing.T) {
		b := newEtcdBackend(t, backends.Config{
			Nodes: []string{hostPort}, Scheme: "https",
			ClientCert: files.ClientCert, ClientKey: files.ClientKey, ClientCAKeys: files.CA,
		})
		kvs, err := get(t, b, "/tls/app")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if kvs["/tls/app/url"] != "https://db" {
			t.Errorf("Get = %v", kvs)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		ch, err := b.Watch(ctx, "/tls/app", 0)
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		mustPut(t, admin, "/tls/app/url", "https://db2")
		if c := nextChange(t, ch, "/tls/app/url"); c.Value != "https://db2" {
			t.Errorf("change = %+v", c)
		}
	})
	// Without a client certificate (CA only), TLS is on, so the handshake
	// is refused; scheme inference from https:// in the node works too.
	for _, tc := range []struct {
		name string
		cfg  backends.Config
	}{
		{name: "no client certificate", cfg: backends.Config{Nodes: []string{s.Endpoint()}, ClientCAKeys: files.CA}},
		{name: "untrusted server", cfg: backends.Config{Nodes: []string{s.Endpoint()}, ClientCert: files.ClientCert, ClientKey: files.ClientKey}},
		{name: "plain http", cfg: backends.Config{Nodes: []string{hostPort}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Backend = "etcd"
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			b, err := backends.New(ctx, backends.SpecOf(cfg.Backend, cfg), nil)
			if err != nil {
				return // refused at construction: fine
			}
			defer b.Close()
			gctx, gcancel := context.WithTimeout(ctx, 3*time.Second)
			defer gcancel()
			if snap, err := b.Get(gctx, []string{"/tls/app"}); err == nil {
				t.Errorf("Get succeeded without valid TLS credentials: %v", snap.KVs)
			}
		})
	}
}

func TestEtcdAuth(t *testing.T) {
	// A one-second token TTL makes the client re-authenticate during the test.
	s := testserver.Etcd(t, testserver.EtcdOptions{ExtraArgs: []string{"--auth-token-ttl", "1"}})
	setup := etcdAdmin(t, s, "", "")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for _, step := range []func() error{
		func() error { _, err := setup.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := setup.RoleAdd(ctx, "root"); return err },
		func() error { _, err := setup.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := setup.UserAdd(ctx, "reader", "readerpw"); return err },
		func() error { _, err := setup.RoleAdd(ctx, "app-read"); return err },
		func() error {
			_, err := setup.RoleGrantPermission(ctx, "app-read", "/auth/app", clientv3.GetPrefixRangeEnd("/auth/app"), clientv3.PermissionType(clientv3.PermRead))
			return err
		},
		func() error { _, err := setup.UserGrantRole(ctx, "reader", "app-read"); return err },
		func() error { _, err := setup.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("auth setup: %v", err)
		}
	}
	admin := etcdAdmin(t, s, "root", "rootpw")
	mustPut(t, admin, "/auth/app/key", "v1")

	b := newEtcdBackend(t, backends.Config{Nodes: []string{s.Endpoint()}, Username: "reader", Password: "readerpw"})
	kvs, err := get(t, b, "/auth/app")
	if err != nil {
		t.Fatalf("Get as reader: %v", err)
	}
	if kvs["/auth/app/key"] != "v1" {
		t.Errorf("Get = %v", kvs)
	}
	wctx, wcancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer wcancel()
	ch, err := b.Watch(wctx, "/auth/app", 0)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	mustPut(t, admin, "/auth/app/key", "v2")
	if c := nextChange(t, ch, "/auth/app/key"); c.Value != "v2" {
		t.Errorf("change = %+v", c)
	}
	// Let the token expire; both Get and the watch keep working.
	time.Sleep(2500 * time.Millisecond)
	if kvs, err := get(t, b, "/auth/app"); err != nil || kvs["/auth/app/key"] != "v2" {
		t.Errorf("Get after token expiry = %v, %v", kvs, err)
	}
	mustPut(t, admin, "/auth/app/key", "v3")
	if c := nextChange(t, ch, "/auth/app/key"); c.Value != "v3" {
		t.Errorf("change after token expiry = %+v", c)
	}
	// A restart invalidates every simple token: the watch comes back.
	if err := s.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	retryPut(t, admin, "/auth/app/key", "v4")
	if c := nextChange(t, ch, "/auth/app/key"); c.Value != "v4" {
		t.Errorf("change after restart = %+v", c)
	}

	// Outside the granted range, and with bad or missing credentials, reads fail.
	if _, err := get(t, b, "/auth/other"); err == nil {
		t.Error("Get outside the reader's permission succeeded")
	}
	for _, cfg := range []backends.Config{
		{Nodes: []string{s.Endpoint()}, Username: "reader", Password: "wrong"},
		{Nodes: []string{s.Endpoint()}},
	} {
		cfg.Backend = "etcd"
		bad, err := backends.New(t.Context(), backends.SpecOf(cfg.Backend, cfg), nil)
		if err != nil {
			continue
		}
		if _, err := get(t, bad, "/auth/app"); err == nil {
			t.Errorf("Get with %q/%q succeeded", cfg.Username, cfg.Password)
		}
		bad.Close()
	}
}

// retryPut puts until the restarted server accepts it (bounded).
func retryPut(t *testing.T, c *clientv3.Client, key, value string) {
	t.Helper()
	var err error
	for range 60 {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		_, err = c.Put(ctx, key, value)
		cancel()
		if err == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("put %s after restart: %v", key, err)
}

func TestEtcdRestartDuringWatch(t *testing.T) {
	s := testserver.Etcd(t, testserver.EtcdOptions{})
	admin := etcdAdmin(t, s, "", "")
	b := newEtcdBackend(t, backends.Config{Nodes: []string{s.Endpoint()}})
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	ch, err := b.Watch(ctx, "/restart", 0)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	var lastRev uint64
	for i, stop := range []struct {
		name string
		fn   func() error
	}{
		{"graceful", s.Stop},
		{"crash", s.Kill},
	} {
		key := fmt.Sprintf("/restart/k%d", i)
		mustPut(t, admin, key, "before")
		if c := nextChange(t, ch, key); c.Value != "before" {
			t.Fatalf("%s: change = %+v", stop.name, c)
		}
		if err := stop.fn(); err != nil {
			t.Fatalf("%s stop: %v", stop.name, err)
		}
		if err := s.Start(t.Context()); err != nil {
			t.Fatalf("%s start: %v", stop.name, err)
		}
		retryPut(t, admin, key, "after")
		if c := nextChange(t, ch, key); c.Value != "after" {
			t.Errorf("%s: change after restart = %+v", stop.name, c)
		}
		snap, err := b.Get(ctx, []string{"/restart"})
		if err != nil {
			t.Fatalf("%s: Get after restart: %v", stop.name, err)
		}
		if snap.Rev <= lastRev {
			t.Errorf("%s: Rev %d after %d, want growing revisions across restarts", stop.name, snap.Rev, lastRev)
		}
		lastRev = snap.Rev
	}
	cancel()
	closed := time.NewTimer(10 * time.Second)
	defer closed.Stop()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-closed.C:
			t.Fatal("watch channel not closed after its context ended")
		}
	}
}
