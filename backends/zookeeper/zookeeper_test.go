package zookeeper_test

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
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
	if err := testserver.ZooKeeperPut(c, key, value); err != nil {
		t.Fatalf("put %s: %v", key, err)
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

// TLS: with a CA and a client certificate the client reads and watches
// over the server's TLS port (the server demands the certificate); each way
// the handshake can fail (another CA, no client certificate, plain TCP on
// the TLS port) fails Get at its deadline with the TLS error and the node,
// and bad settings fail New, naming them.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	pki, err := testserver.GenerateTLS(dir, "confit")
	if err != nil {
		t.Fatal(err)
	}
	other, err := testserver.GenerateTLS(t.TempDir(), "other")
	if err != nil {
		t.Fatal(err)
	}
	srv := testserver.ZooKeeper(t, testserver.ZooKeeperOptions{TLS: pki, ClientAuth: true})
	adm := admin(t, srv)
	put(t, adm, "/tls/a", "1")

	good := backends.Config{Nodes: []string{srv.SecureAddr()}, ClientCAKeys: pki.CA, ClientCert: pki.ClientCert, ClientKey: pki.ClientKey}
	c, err := zookeeper.New(t.Context(), zookeeper.Options{Config: good})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	snap, err := c.Get(ctx, []string{"/tls"})
	if err != nil {
		t.Fatalf("Get over TLS: %v", err)
	}
	if got := snap.KVs["/tls/a"]; got != "1" {
		t.Fatalf("Get over TLS: %v, want /tls/a = 1", snap.KVs)
	}
	ch, err := c.Watch(ctx, "/tls", snap.Rev)
	if err != nil {
		t.Fatal(err)
	}
	put(t, adm, "/tls/a", "2")
	for {
		select {
		case u := <-ch:
			if u.Err != nil {
				t.Fatalf("watch over TLS: %v", u.Err)
			}
			if u.Reset && u.KVs["/tls/a"] == "2" || slices.Contains(u.Changes, backends.Change{Key: "/tls/a", Value: "2"}) {
				goto watched
			}
		case <-ctx.Done():
			t.Fatal("watch over TLS: the change was not delivered")
		}
	}
watched:

	for _, tc := range []struct {
		name string
		cfg  backends.Config
		want string
	}{
		{"another CA", backends.Config{Nodes: []string{srv.SecureAddr()}, ClientCAKeys: other.CA, ClientCert: pki.ClientCert, ClientKey: pki.ClientKey}, "TLS handshake: tls: failed to verify certificate"},
		{"no client certificate", backends.Config{Nodes: []string{srv.SecureAddr()}, ClientCAKeys: pki.CA}, "TLS handshake: remote error: tls: bad certificate"},
		{"TLS to the plain port", backends.Config{Nodes: []string{srv.Addr()}, ClientCAKeys: pki.CA, ClientCert: pki.ClientCert, ClientKey: pki.ClientKey}, "TLS handshake"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := zookeeper.New(t.Context(), zookeeper.Options{Config: tc.cfg})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			defer cancel()
			_, err = c.Get(ctx, []string{"/tls"})
			if err == nil {
				t.Fatal("Get succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.cfg.Nodes[0]) {
				t.Fatalf("Get: %v; want an error naming %s and saying %q", err, tc.cfg.Nodes[0], tc.want)
			}
		})
	}

	for _, tc := range []struct {
		name string
		cfg  backends.Config
		want string
	}{
		{"cert without key", backends.Config{ClientCert: pki.ClientCert}, "client-cert and client-key must be given together"},
		{"missing CA file", backends.Config{ClientCAKeys: dir + "/none.pem"}, "client-ca-keys"},
		{"CA file without PEM", backends.Config{ClientCAKeys: pki.ClientKey}, "no PEM certificate"},
		{"unreadable key", backends.Config{ClientCert: pki.ClientCert, ClientKey: dir + "/none.pem"}, "client certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Nodes = []string{srv.SecureAddr()}
			c, err := zookeeper.New(t.Context(), zookeeper.Options{Config: tc.cfg})
			if err == nil {
				c.Close()
				t.Fatal("New accepted the settings")
			}
			if !strings.Contains(err.Error(), "zookeeper: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v; want a zookeeper error saying %q", err, tc.want)
			}
		})
	}
}

// A server that accepts connections but answers nothing (SIGSTOPped) fails
// Get at the caller's deadline (one-shot's -timeout), naming the node.
func TestGetServerPaused(t *testing.T) {
	srv := testserver.ZooKeeper(t, testserver.ZooKeeperOptions{})
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Resume() }()
	c, err := zookeeper.New(t.Context(), zookeeper.Options{Config: backends.Config{Nodes: []string{srv.Addr()}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, []string{"/app"})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), srv.Addr()) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Get against a paused server: err = %v, want the deadline, naming %s", err, srv.Addr())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Get against a paused server outlived its 2 s deadline by 8 s")
	}
}

// Digest auth (-username/-password): a znode whose ACL is digest-only is
// read with the credentials; without them, or with a wrong password, Get
// fails naming the server and the znode. The password is in no error and
// no log line (the client library's debug logs included).
func TestDigestAuth(t *testing.T) {
	const user, password = "reader", "pw-Zk7-not-in-logs"
	srv := testserver.ZooKeeper(t, testserver.ZooKeeperOptions{})
	adm := admin(t, srv)
	put(t, adm, "/auth/open", "o")
	if _, err := adm.Create("/auth/secret", []byte("s"), 0, zk.DigestACL(zk.PermAll, user, password)); err != nil {
		t.Fatalf("create /auth/secret with a digest ACL: %v", err)
	}
	tests := []struct {
		name     string
		user, pw string
		wantErr  bool
	}{
		{name: "credentials", user: user, pw: password},
		{name: "none", wantErr: true},
		{name: "wrong password", user: user, pw: "wrong-" + password, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs strings.Builder
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			c := newClient(t, srv, zookeeper.Options{Config: backends.Config{Username: tc.user, Password: tc.pw, Logger: log}})
			snap, err := c.Get(t.Context(), []string{"/auth"})
			c.Close()
			switch {
			case tc.wantErr && err == nil:
				t.Fatalf("Get(/auth) read %v, want an error for /auth/secret", snap.KVs)
			case tc.wantErr:
				t.Logf("Get(/auth): %v", err)
				for _, want := range []string{srv.Addr(), `"/auth/secret"`, "not authenticated"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not name %s", err, want)
					}
				}
			case err != nil:
				t.Fatalf("Get(/auth) with credentials: %v", err)
			default:
				if want := map[string]string{"/auth/open": "o", "/auth/secret": "s"}; !maps.Equal(snap.KVs, want) {
					t.Errorf("Get(/auth) = %v, want %v", snap.KVs, want)
				}
			}
			if err != nil && strings.Contains(err.Error(), password) {
				t.Errorf("the error holds the password: %v", err)
			}
			if strings.Contains(logs.String(), password) {
				t.Errorf("the log holds the password:\n%s", logs.String())
			}
		})
	}
	t.Run("password without username", func(t *testing.T) {
		_, err := zookeeper.New(t.Context(), zookeeper.Options{Config: backends.Config{Nodes: []string{srv.Addr()}, Password: password}})
		if err == nil || !strings.Contains(err.Error(), "username") || strings.Contains(err.Error(), password) {
			t.Errorf("New with a password only: %v, want an error asking for the username, without the password", err)
		}
	})
}
