package consul

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/internal/testserver"
	"github.com/hashicorp/consul/api"
)

// TestDirectKVQuery: with a loopback agent the KV hub's blocking query
// runs over its direct connection, and a change still arrives when that
// connection is closed under a parked query (the socket is closed from this
// side: what a client sees of an agent that dropped a kept-alive
// connection, which a real agent does not do on demand).
func TestDirectKVQuery(t *testing.T) {
	srv := testserver.Consul(t, testserver.ConsulOptions{Dev: true})
	cfg := api.DefaultConfig()
	cfg.Address = srv.Addr()
	cfg.Token = srv.Token()
	adm, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	put := func(k, v string) {
		t.Helper()
		if _, err := adm.KV().Put(&api.KVPair{Key: k, Value: []byte(v)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
		return c, err
	}
	c, err := New(t.Context(), backends.Config{Backend: "consul", Nodes: []string{srv.Addr()}, AuthToken: srv.Token()},
		Options{DialContext: dial, EmptyGrace: -1, MinRequeryInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.kvConn == nil {
		t.Fatalf("no direct connection for the loopback agent %s", srv.Addr())
	}
	put("direct/a", "1")
	ch, err := c.Watch(t.Context(), "/direct", 0)
	if err != nil {
		t.Fatal(err)
	}
	next := func(want string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case u := <-ch:
				if u.Err != nil {
					t.Fatalf("update error: %v", u.Err)
				}
				for _, ch := range u.Changes {
					if ch.Key == "/direct/a" && ch.Value == want {
						return
					}
				}
				if u.Reset && u.KVs["/direct/a"] == want {
					return
				}
			case <-deadline:
				t.Fatalf("no update with /direct/a = %q within 10 s", want)
			}
		}
	}
	// From rev 0 the first read is the receiver's starting point: no
	// Update for it.
	time.Sleep(100 * time.Millisecond)
	put("direct/a", "2")
	next("2")
	if n := c.kvConn.answers.Load(); n == 0 {
		t.Fatalf("answers read on the direct connection: %d, want some", n)
	}
	// Close every connection made so far, the direct one parked in its
	// blocking query included: the hub dials again and the change arrives.
	time.Sleep(100 * time.Millisecond) // the next query is parked
	mu.Lock()
	for _, conn := range conns {
		conn.Close()
	}
	mu.Unlock()
	put("direct/a", "3")
	next("3")
}

// TestDirectNotRemote: an agent that is not on this machine, or a
// transport of reads, gets no direct connection.
func TestDirectNotRemote(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:8500", true},
		{"localhost:8500", true},
		{"[::1]:8500", true},
		{"consul.example:8500", false},
		{"10.1.2.3:8500", false},
	} {
		t.Run(strings.ReplaceAll(tc.addr, "/", "_"), func(t *testing.T) {
			c, err := New(t.Context(), backends.Config{Backend: "consul", Nodes: []string{tc.addr}}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := c.kvConn != nil; got != tc.want {
				t.Errorf("direct connection for %s: %v, want %v", tc.addr, got, tc.want)
			}
		})
	}
}
