package consul

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
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
	_, put := adminPut(t, srv.Addr(), srv.Token())
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
	next := func(want string) { t.Helper(); awaitChange(t, ch, "/direct/a", want) }
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

// adminPut returns an api client of the agent at addr with token, and a
// put of a key through it.
func adminPut(t *testing.T, addr, token string) (*api.Client, func(k, v string)) {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address, cfg.Token = addr, token
	adm, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return adm, func(k, v string) {
		t.Helper()
		if _, err := adm.KV().Put(&api.KVPair{Key: k, Value: []byte(v)}, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// awaitChange reads ch until an update sets key to want, or deletes it when
// want is "<deleted>".
func awaitChange(t *testing.T, ch <-chan backends.Update, key, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case u := <-ch:
			if u.Err != nil {
				t.Fatalf("update error: %v", u.Err)
			}
			for _, c := range u.Changes {
				if c.Key == key && ((c.Deleted && want == "<deleted>") || (!c.Deleted && c.Value == want)) {
					return
				}
			}
			if v, ok := u.KVs[key]; u.Reset && ((ok && v == want) || (!ok && want == "<deleted>")) {
				return
			}
		case <-deadline:
			t.Fatalf("no update with %s = %q within 10 s", key, want)
		}
	}
}

// recordingConn keeps every byte written on it.
type recordingConn struct {
	net.Conn
	mu  *sync.Mutex
	out *bytes.Buffer
}

func (c recordingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.out.Write(p)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// TestListDirect: once the api client has built the hub's blocking query,
// listDirect repeats it without the api client: every change arrives, a
// prefix whose last key went away (a 404 answer) reads as empty, and every
// blocking query written, by the api client or by listDirect, is the same
// request (token, datacenter, headers) but for its index and wait; a token
// revoked under it is reported by the api client as ever.
func TestListDirect(t *testing.T) {
	srv := testserver.Consul(t, testserver.ConsulOptions{Dev: true})
	adm, put := adminPut(t, srv.Addr(), srv.Token())
	var (
		mu  sync.Mutex
		out bytes.Buffer
	)
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return recordingConn{Conn: c, mu: &mu, out: &out}, nil
	}
	c, err := New(t.Context(), backends.Config{Backend: "consul", Nodes: []string{srv.Addr()}, AuthToken: srv.Token()},
		Options{DialContext: dial, EmptyGrace: -1, MinRequeryInterval: time.Millisecond, Datacenter: "dc1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ch, h := watchFast(t, c, put, 10)
	if _, err := adm.KV().Delete("fast/a", nil); err != nil {
		t.Fatal(err)
	}
	awaitChange(t, ch, "/fast/a", "<deleted>")
	put("fast/a", "back")
	awaitChange(t, ch, "/fast/a", "back")
	if n := h.fastAnswers.Load(); n < 8 {
		t.Errorf("listDirect read %d answers of 12 changes, want most", n)
	}
	// Every blocking query written is the same request but for index and
	// wait.
	mu.Lock()
	written := bytes.Clone(out.Bytes())
	mu.Unlock()
	br := bufio.NewReader(bytes.NewReader(written))
	var first *http.Request
	n := 0
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			break
		}
		q := req.URL.Query()
		if req.URL.Path != "/v1/kv/fast" || !q.Has("index") {
			continue
		}
		n++
		if q.Get("index") == "0" || !strings.HasSuffix(q.Get("wait"), "ms") {
			t.Errorf("blocking query %s: want an index and a wait in ms", req.URL)
		}
		q.Del("index")
		q.Del("wait")
		req.URL.RawQuery = q.Encode()
		if first == nil {
			first = req
			if req.Header.Get("X-Consul-Token") != srv.Token() || q.Get("dc") != "dc1" {
				t.Errorf("blocking query %s %v: want the token and the datacenter", req.URL, req.Header)
			}
			continue
		}
		if req.URL.String() != first.URL.String() || !maps.EqualFunc(req.Header, first.Header, slices.Equal) || req.Host != first.Host {
			t.Errorf("blocking query\n%s %v\nis not the first one but for index and wait:\n%s %v", req.URL, req.Header, first.URL, first.Header)
		}
	}
	if n < 12 {
		t.Errorf("%d blocking queries written, want at least 12", n)
	}

}

// watchFast watches /fast on c after putting fast/a = 0, then changes
// fast/a n times (to "1" … n), each seen; it returns the watch and its hub.
func watchFast(t *testing.T, c *Client, put func(key, value string), n int) (<-chan backends.Update, *hub) {
	t.Helper()
	put("fast/a", "0")
	ch, err := c.Watch(t.Context(), "/fast", 0)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	for i := range n {
		v := fmt.Sprint(i + 1)
		put("fast/a", v)
		awaitChange(t, ch, "/fast/a", v)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return ch, c.kvHubs[0]
}

// TestListDirectRevoked: a token revoked under a watch whose blocking
// query listDirect repeats: the api client asks again and the watch
// reports the permission error as ever.
func TestListDirectRevoked(t *testing.T) {
	const mgmt = "11111111-2222-3333-4444-555555555555"
	srv := testserver.Consul(t, testserver.ConsulOptions{Dev: true, ACLToken: mgmt})
	adm, put := adminPut(t, srv.Addr(), mgmt)
	pol, _, err := adm.ACL().PolicyCreate(&api.ACLPolicy{Name: "read-fast", Rules: `key_prefix "fast/" { policy = "read" }`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := adm.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: pol.ID}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(t.Context(), backends.Config{Backend: "consul", Nodes: []string{srv.Addr()}, AuthToken: tok.SecretID},
		Options{EmptyGrace: -1, MinRequeryInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ch, h := watchFast(t, c, put, 3)
	if h.fastAnswers.Load() == 0 {
		t.Fatal("listDirect read no answer")
	}
	if _, err := adm.ACL().TokenDelete(tok.AccessorID, nil); err != nil {
		t.Fatal(err)
	}
	put("fast/a", "after")
	deadline := time.After(10 * time.Second)
	for {
		select {
		case u := <-ch:
			if u.Err == nil {
				continue
			}
			if !errors.Is(u.Err, ErrPermissionDenied) {
				t.Fatalf("error after the token was revoked: %v, want a permission error", u.Err)
			}
			return
		case <-deadline:
			t.Fatal("no error within 10 s of the token's revocation")
		}
	}
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

// TestRequestHead: the request line listDirect writes followed by
// requestHead of the api client's request are the bytes req.Write writes
// for the same request with another query.
func TestRequestHead(t *testing.T) {
	for _, tc := range []struct{ name, url, user, token string }{
		{"plain", "http://127.0.0.1:8500/v1/kv/app?index=5&recurse=&wait=60000ms", "", ""},
		{"token and datacenter", "http://127.0.0.1:8500/v1/kv/app/x?dc=dc1&index=5&recurse=&wait=60000ms", "", "s3cr3t"},
		{"basic auth, escaped path", "http://localhost:8500/v1/kv/a%20b/%C3%A9?index=5&recurse=&wait=1ms", "u:p", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mk := func(rawQuery string) *http.Request {
				req, err := http.NewRequest(http.MethodGet, tc.url, nil)
				if err != nil {
					t.Fatal(err)
				}
				if rawQuery != "" {
					req.URL.RawQuery = rawQuery
				}
				if tc.token != "" {
					req.Header.Set("X-Consul-Token", tc.token)
				}
				if u, p, ok := strings.Cut(tc.user, ":"); ok {
					req.SetBasicAuth(u, p)
				}
				return req
			}
			head := requestHead(mk(""))
			if head == nil {
				t.Fatal("requestHead: nil")
			}
			next := mk("recurse=&index=6&wait=59000ms")
			var want bytes.Buffer
			if err := next.Write(&want); err != nil {
				t.Fatal(err)
			}
			got := "GET " + next.URL.RequestURI() + " HTTP/1.1\r\n" + string(head)
			if got != want.String() {
				t.Errorf("got\n%q\nwant\n%q", got, want.String())
			}
		})
	}
}
