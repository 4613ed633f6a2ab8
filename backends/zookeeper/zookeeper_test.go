package zookeeper_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/backends/backendtest"
	"github.com/confit-dev/confit/backends/zookeeper"
	"github.com/confit-dev/confit/internal/testserver"
	"github.com/go-zookeeper/zk"
)

// admin connects a second session for writing behind the backend's back.
func admin(t *testing.T, srv *testserver.ZooKeeperServer) *zk.Conn {
	t.Helper()
	conn, _, err := zk.Connect([]string{srv.Addr()}, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	return conn
}

// put sets key, creating it and its parents as needed.
func put(t *testing.T, c *zk.Conn, key, value string) {
	t.Helper()
	if _, err := c.Set(key, []byte(value), -1); err == nil {
		return
	} else if !errors.Is(err, zk.ErrNoNode) {
		t.Fatalf("set %s: %v", key, err)
	}
	parts := strings.Split(strings.TrimPrefix(key, "/"), "/")
	for i := range parts {
		p := "/" + strings.Join(parts[:i+1], "/")
		data := []byte(nil)
		if i == len(parts)-1 {
			data = []byte(value)
		}
		if _, err := c.Create(p, data, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			t.Fatalf("create %s: %v", p, err)
		}
	}
	if _, err := c.Set(key, []byte(value), -1); err != nil {
		t.Fatalf("set %s: %v", key, err)
	}
}

func del(t *testing.T, c *zk.Conn, key string) {
	t.Helper()
	if err := c.Delete(key, -1); err != nil {
		t.Fatalf("delete %s: %v", key, err)
	}
}

func newClient(t *testing.T, srv *testserver.ZooKeeperServer, o zookeeper.Options) *zookeeper.Client {
	t.Helper()
	o.Nodes = append([]string{srv.Addr()}, o.Nodes...)
	c, err := zookeeper.New(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestConformance(t *testing.T) {
	srv := testserver.ZooKeeper(t, testserver.ZooKeeperOptions{})
	adm := admin(t, srv)
	backendtest.Run(t, func(t *testing.T) backendtest.Harness {
		return backendtest.Harness{
			// Interior data on: the suite reads keys that have children.
			Backend: newClient(t, srv, zookeeper.Options{InteriorValues: true}),
			Put:     func(t *testing.T, key, value string) { put(t, adm, key, value) },
			// Deleting a znode with children is refused by ZooKeeper;
			// backendtest's Delete case deletes such a key, so Delete is
			// off here and tested below.
			Restart: func(t *testing.T) {
				t.Helper()
				if err := srv.Restart(t.Context()); err != nil {
					t.Fatal(err)
				}
			},
			Caps: backendtest.Caps{Watch: true, Binary: true},
		}
	})
}

// Leaf data only, as confd; interior data with InteriorValues.
func TestLeavesAndInterior(t *testing.T) {
	srv := testserver.ZooKeeper(t, testserver.ZooKeeperOptions{})
	adm := admin(t, srv)
	put(t, adm, "/app/db", "dirdata")
	put(t, adm, "/app/db/url", "u")
	put(t, adm, "/app/name", "n")
	for _, tc := range []struct {
		name     string
		interior bool
		want     map[string]string
	}{
		{"leaves", false, map[string]string{"/app/db/url": "u", "/app/name": "n"}},
		{"interior", true, map[string]string{"/app/db": "dirdata", "/app/db/url": "u", "/app/name": "n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, srv, zookeeper.Options{InteriorValues: tc.interior})
			snap, err := c.Get(t.Context(), []string{"/app"})
			if err != nil {
				t.Fatal(err)
			}
			if len(snap.KVs) != len(tc.want) {
				t.Errorf("got %v, want %v", snap.KVs, tc.want)
			}
			for k, v := range tc.want {
				if snap.KVs[k] != v {
					t.Errorf("%s = %q, want %q", k, snap.KVs[k], v)
				}
			}
		})
	}
	t.Run("chroot", func(t *testing.T) {
		c, err := zookeeper.New(t.Context(), zookeeper.Options{Config: backends.Config{Nodes: []string{srv.Addr() + "/app"}}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		snap, err := c.Get(t.Context(), []string{"/db"})
		if err != nil {
			t.Fatal(err)
		}
		if snap.KVs["/db/url"] != "u" || len(snap.KVs) != 1 {
			t.Errorf("chroot /app, Get(/db) = %v, want /db/url=u", snap.KVs)
		}
	})
	t.Run("delete", func(t *testing.T) {
		c := newClient(t, srv, zookeeper.Options{})
		del(t, adm, "/app/name")
		snap, err := c.Get(t.Context(), []string{"/app"})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := snap.KVs["/app/name"]; ok {
			t.Errorf("deleted /app/name still read: %v", snap.KVs)
		}
	})
}

// A server that is down fails Get within a bound, naming the node.
func TestGetServerDown(t *testing.T) {
	port, err := testserver.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + itoa(port)
	c, err := zookeeper.New(t.Context(), zookeeper.Options{Config: backends.Config{Nodes: []string{addr}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err = c.Get(ctx, []string{"/app"})
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Get against a down server: err = %v, want an error naming %s", err, addr)
	}
	if ctx.Err() != nil {
		t.Errorf("Get against a down server took the whole 10 s bound: %v", err)
	}
}

func itoa(n int) string {
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

// Many changes under a watched prefix keep one data and one child watch
// per znode and a stable goroutine count (confd #550/#551 grew both).
func TestWatchNoLeak(t *testing.T) {
	srv := testserver.ZooKeeper(t, testserver.ZooKeeperOptions{})
	adm := admin(t, srv)
	const keys, changes = 300, 300
	for i := range keys {
		put(t, adm, "/leak/k"+itoa(i+1), "0")
	}
	c := newClient(t, srv, zookeeper.Options{})
	snap, err := c.Get(t.Context(), []string{"/leak"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ch, err := c.Watch(ctx, "/leak", snap.RevOf("/leak"))
	if err != nil {
		t.Fatal(err)
	}
	view := snap.KVs
	waitFor := func(key, value string) {
		t.Helper()
		for view[key] != value {
			select {
			case u := <-ch:
				if u.Reset {
					view = u.KVs
				}
				for _, ch := range u.Changes {
					view[ch.Key] = ch.Value
				}
			case <-ctx.Done():
				t.Fatalf("%s=%s not seen", key, value)
			}
		}
	}
	waitFor("/leak/k1", "0")
	put(t, adm, "/leak/k1", "start")
	waitFor("/leak/k1", "start")
	watches0, gor0 := c.WatchCount(), runtime.NumGoroutine()
	for i := range changes {
		k := "/leak/k" + itoa(i%keys+1)
		put(t, adm, k, itoa(i+1))
		waitFor(k, itoa(i+1))
	}
	watches1, gor1 := c.WatchCount(), runtime.NumGoroutine()
	t.Logf("%d znodes, %d changes: watches %d -> %d, goroutines %d -> %d, reads %d", keys+1, changes, watches0, watches1, gor0, gor1, c.Metrics()["reads_total"])
	if want := 2 * (keys + 1); watches1 != want || watches0 != want {
		t.Errorf("watches %d before, %d after %d changes; want %d (one data and one child watch per znode)", watches0, watches1, changes, want)
	}
	if gor1 > gor0+5 {
		t.Errorf("goroutines grew from %d to %d over %d changes", gor0, gor1, changes)
	}
}

// The server paused (SIGSTOP) past the session timeout: the watch degrades,
// and after the resume (a new session if the old one expired) it re-lists
// and sees later changes.
func TestWatchServerPaused(t *testing.T) {
	srv := testserver.ZooKeeper(t, testserver.ZooKeeperOptions{})
	adm := admin(t, srv)
	put(t, adm, "/pause/a", "1")
	c := newClient(t, srv, zookeeper.Options{SessionTimeout: 2 * time.Second})
	snap, err := c.Get(t.Context(), []string{"/pause"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ch, err := c.Watch(ctx, "/pause", snap.RevOf("/pause"))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second) // past the 2 s session timeout
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	put(t, adm, "/pause/b", "2")
	view := snap.KVs
	for view["/pause/b"] != "2" {
		select {
		case u := <-ch:
			if u.Err != nil {
				t.Logf("degraded: %v", u.Err)
			}
			if u.Reset {
				view = u.KVs
			}
			for _, ch := range u.Changes {
				view[ch.Key] = ch.Value
			}
		case <-ctx.Done():
			t.Fatalf("change after the pause not seen; view %v", view)
		}
	}
}
