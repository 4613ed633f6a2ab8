package etcd_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/backends/backendtest"
	"github.com/confit-dev/confit/backends/etcd"
	"github.com/confit-dev/confit/internal/testserver"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"
)

// One etcd for the whole test binary; cases use their own key namespaces.
var (
	server   *testserver.EtcdServer
	admin    *clientv3.Client
	startErr error
)

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 11*time.Minute)
	server, startErr = testserver.StartEtcd(ctx, testserver.EtcdOptions{})
	cancel()
	if startErr == nil {
		admin, startErr = clientv3.New(clientv3.Config{
			Endpoints: []string{server.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		})
	}
	code := m.Run()
	if admin != nil {
		admin.Close()
	}
	if server != nil {
		if code != 0 {
			fmt.Fprintf(os.Stderr, "--- etcd log ---\n%s\n", server.Process().LogTail(60))
		}
		server.Close()
	}
	os.Exit(code)
}

func needServer(t *testing.T) {
	t.Helper()
	testserver.Unavailable(t, startErr)
}

func newClient(t *testing.T) *etcd.Client {
	t.Helper()
	c, err := etcd.New(t.Context(), backends.Config{Backend: "etcd", Nodes: []string{server.Endpoint()}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// retry runs op until it succeeds or 30 s pass (the server may be
// restarting).
func retry(t *testing.T, what string, op func(ctx context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		err := op(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func harness(t *testing.T) backendtest.Harness {
	needServer(t)
	return backendtest.Harness{
		Backend: newClient(t),
		Put: func(t *testing.T, key, value string) {
			retry(t, "put "+key, func(ctx context.Context) error { _, err := admin.Put(ctx, key, value); return err })
		},
		Delete: func(t *testing.T, key string) {
			retry(t, "delete "+key, func(ctx context.Context) error { _, err := admin.Delete(ctx, key); return err })
		},
		Restart: func(t *testing.T) {
			start := time.Now()
			if err := server.Restart(t.Context()); err != nil {
				t.Fatalf("restart etcd: %v", err)
			}
			t.Logf("etcd restarted in %v", time.Since(start).Round(time.Millisecond))
		},
		Caps: backendtest.Caps{Watch: true, Delete: true, Binary: true, Revisions: true, Replay: true, Snapshot: true, History: true},
	}
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, harness)
}

func TestRegistered(t *testing.T) {
	for _, name := range []string{"etcd", "etcdv3"} {
		if !slices.Contains(backends.Names(), name) {
			t.Errorf("%q not registered", name)
		}
	}
}

func TestEndpoints(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  backends.Config
		want []string
	}{
		{name: "default", want: []string{"http://127.0.0.1:2379"}},
		{name: "no scheme", cfg: backends.Config{Nodes: []string{"10.0.0.1:2379", "h:1"}}, want: []string{"http://10.0.0.1:2379", "http://h:1"}},
		{name: "scheme", cfg: backends.Config{Scheme: "https", Nodes: []string{"h:1", "http://x:2/"}}, want: []string{"https://h:1", "http://x:2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := etcd.Endpoints(t.Context(), tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	if _, err := etcd.Endpoints(t.Context(), backends.Config{Scheme: "ftp"}); err == nil {
		t.Error("scheme ftp: no error")
	}
}

func TestNewErrorLeavesNothing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, cfg := range []backends.Config{
		{ClientCert: "/nonexistent/cert.pem", ClientKey: "/nonexistent/key.pem"},
		{ClientCert: "/nonexistent/cert.pem"},
		{ClientCAKeys: "/nonexistent/ca.pem"},
		{Scheme: "gopher"},
	} {
		if c, err := etcd.New(t.Context(), cfg); err == nil {
			c.Close()
			t.Errorf("New(%+v): no error", cfg)
		}
	}
}

func TestGetPaginatesAtOneRevision(t *testing.T) {
	needServer(t)
	c := newClient(t)
	etcd.SetPageSize(c, 3)
	ns := fmt.Sprintf("/pages%d", time.Now().UnixNano())
	want := map[string]string{}
	for i := range 10 {
		k := fmt.Sprintf("%s/a/k%02d", ns, i)
		want[k] = fmt.Sprint(i)
		if _, err := admin.Put(t.Context(), k, want[k]); err != nil {
			t.Fatal(err)
		}
	}
	admin.Put(t.Context(), ns+"/b", "b")
	want[ns+"/b"] = "b"
	admin.Put(t.Context(), ns+"/ab", "sibling")
	before := c.Stats()
	snap, err := c.Get(t.Context(), []string{ns + "/a", ns + "/b", ns + "/a/k01"})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.KVs) != len(want) {
		t.Errorf("got %d keys, want %d: %v", len(snap.KVs), len(want), snap.KVs)
	}
	for k, v := range want {
		if snap.KVs[k] != v {
			t.Errorf("%s = %q, want %q", k, snap.KVs[k], v)
		}
	}
	// 10 keys in pages of 3 (4 ranges) + 1 range for /b; /a/k01 is covered.
	got := c.Stats()
	if d := got.Ranges - before.Ranges; d != 5 {
		t.Errorf("ranges = %d, want 5", d)
	}
	if d := got.Gets - before.Gets; d != 1 {
		t.Errorf("gets = %d, want 1", d)
	}
}

func TestWatchAfterCompactionResets(t *testing.T) {
	needServer(t)
	c := newClient(t)
	ns := fmt.Sprintf("/compact%d", time.Now().UnixNano())
	admin.Put(t.Context(), ns+"/a", "1")
	snap, err := c.Get(t.Context(), []string{ns})
	if err != nil {
		t.Fatal(err)
	}
	admin.Put(t.Context(), ns+"/a", "2")
	admin.Delete(t.Context(), ns+"/a")
	resp, err := admin.Put(t.Context(), ns+"/b", "3")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Compact(t.Context(), resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ch, err := c.Watch(ctx, ns, snap.Rev)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case u := <-ch:
		if !u.Reset || u.Err != nil {
			t.Fatalf("first update %+v, want a Reset", u)
		}
		if len(u.KVs) != 1 || u.KVs[ns+"/b"] != "3" {
			t.Errorf("Reset KVs = %v, want only %s/b=3", u.KVs, ns)
		}
		if u.Rev < uint64(resp.Header.Revision) {
			t.Errorf("Reset Rev = %d, want >= %d", u.Rev, resp.Header.Revision)
		}
	case <-ctx.Done():
		t.Fatal("no update after compaction")
	}
	// The watch continues after the Reset.
	admin.Put(t.Context(), ns+"/c", "4")
	select {
	case u := <-ch:
		if u.Reset || len(u.Changes) != 1 || u.Changes[0] != (backends.Change{Key: ns + "/c", Value: "4"}) {
			t.Errorf("update after Reset = %+v, want the put of %s/c", u, ns)
		}
	case <-ctx.Done():
		t.Fatal("no update after Reset")
	}
}

// TestDotKeysSkipped is issue 20 item 3c: a key with a "." or ".." element
// ("/dots/../b/secret") is never resolved into another path: Get and Watch
// skip it, and the warning names the key.
func TestDotKeysSkipped(t *testing.T) {
	needServer(t)
	var logs bytes.Buffer
	c, err := etcd.New(t.Context(), backends.Config{
		Backend: "etcd", Nodes: []string{server.Endpoint()},
		Logger: slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil)),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	for _, k := range []string{"/dots/../b/secret", "/dots/./x", "/dots/ok"} {
		retry(t, "put "+k, func(ctx context.Context) error { _, err := admin.Put(ctx, k, "v"); return err })
	}
	snap, err := c.Get(t.Context(), []string{"/dots"})
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if want := map[string]string{"/dots/ok": "v"}; !maps.Equal(snap.KVs, want) {
		t.Errorf("Get(/dots) = %v, want %v", snap.KVs, want)
	}
	ch, err := c.Watch(t.Context(), "/dots", snap.Rev)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	retry(t, "put", func(ctx context.Context) error { _, err := admin.Put(ctx, "/dots/../c", "w"); return err })
	retry(t, "put", func(ctx context.Context) error { _, err := admin.Put(ctx, "/dots/ok2", "w"); return err })
	select {
	case u := <-ch:
		if want := []backends.Change{{Key: "/dots/ok2", Value: "w"}}; u.Err != nil || !slices.Equal(u.Changes, want) {
			t.Errorf("first update = %+v, want only %v", u, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no update within 10 s")
	}
	for _, k := range []string{"/dots/../b/secret", "/dots/./x", "/dots/../c"} {
		if !strings.Contains(logs.String(), "key="+k) {
			t.Errorf("no warning naming %s in:\n%s", k, logs.String())
		}
	}
}

// syncWriter serialises writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
