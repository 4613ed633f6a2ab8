package consul_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/backends/backendtest"
	"github.com/confit-dev/confit/backends/consul"
	"github.com/confit-dev/confit/internal/testserver"
	"github.com/hashicorp/consul/api"
)

// deadline bounds every wait; it is never an expectation.
const deadline = 30 * time.Second

// admin returns a client for writing behind the backend's back. It does not
// keep connections alive, so it leaves no goroutines for the leak check.
func admin(t testing.TB, srv *testserver.ConsulServer) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = srv.Addr()
	cfg.Token = srv.Token()
	cfg.Transport = &http.Transport{DisableKeepAlives: true}
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newClient(t testing.TB, srv *testserver.ConsulServer, token string, opts consul.Options) *consul.Client {
	t.Helper()
	opts.BackoffMin, opts.BackoffMax = 50*time.Millisecond, 500*time.Millisecond
	opts.MinRequeryInterval = time.Millisecond
	b, err := consul.New(t.Context(), backends.Config{Backend: "consul", Nodes: []string{srv.Addr()}, AuthToken: token}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func put(t testing.TB, c *api.Client, key, value string) {
	t.Helper()
	if _, err := c.KV().Put(&api.KVPair{Key: strings.TrimPrefix(key, "/"), Value: []byte(value)}, nil); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func del(t testing.TB, c *api.Client, key string) {
	t.Helper()
	if _, err := c.KV().Delete(strings.TrimPrefix(key, "/"), nil); err != nil {
		t.Fatalf("delete %s: %v", key, err)
	}
}

func TestConformance(t *testing.T) {
	srv := testserver.Consul(t, testserver.ConsulOptions{})
	adm := admin(t, srv)
	backendtest.Run(t, func(t *testing.T) backendtest.Harness {
		return backendtest.Harness{
			Backend: newClient(t, srv, "", consul.Options{}),
			Put:     func(t *testing.T, key, value string) { put(t, adm, key, value) },
			Delete:  func(t *testing.T, key string) { del(t, adm, key) },
			Restart: func(t *testing.T) {
				t.Helper()
				if err := srv.Stop(); err != nil {
					t.Fatal(err)
				}
				if err := srv.Start(t.Context()); err != nil {
					t.Fatal(err)
				}
			},
			Caps: backendtest.Caps{Watch: true, Delete: true, Binary: true, Revisions: true, Replay: true},
		}
	})
}

// mirror follows one watch channel.
type mirror struct {
	t      *testing.T
	prefix string
	ch     <-chan backends.Update
	kvs    map[string]string
	seen   []map[string]string // every view after an Update
	errs   int
}

func watch(t *testing.T, b backends.Backend, prefix string) *mirror {
	t.Helper()
	snap, err := b.Get(t.Context(), []string{prefix})
	if err != nil {
		t.Fatalf("Get(%q): %v", prefix, err)
	}
	ch, err := b.Watch(t.Context(), prefix, snap.Rev)
	if err != nil {
		t.Fatalf("Watch(%q): %v", prefix, err)
	}
	return &mirror{t: t, prefix: prefix, ch: ch, kvs: snap.KVs}
}

func (m *mirror) apply(u backends.Update) {
	switch {
	case u.Err != nil:
		m.errs++
		m.t.Logf("watch %s degraded: %v", m.prefix, u.Err)
		return
	case u.Reset:
		m.kvs = maps.Clone(u.KVs)
	default:
		for _, c := range u.Changes {
			if c.Deleted {
				delete(m.kvs, c.Key)
			} else {
				m.kvs[c.Key] = c.Value
			}
		}
	}
	m.seen = append(m.seen, maps.Clone(m.kvs))
}

// until reads updates until ok(view) holds.
func (m *mirror) until(what string, ok func(map[string]string) bool) {
	m.t.Helper()
	timeout := time.NewTimer(deadline)
	defer timeout.Stop()
	for !ok(m.kvs) {
		select {
		case u, open := <-m.ch:
			if !open {
				m.t.Fatalf("watch %s closed while waiting for %s; view %v", m.prefix, what, m.kvs)
			}
			m.apply(u)
		case <-timeout.C:
			m.t.Fatalf("watch %s: no %s within %v; view %v", m.prefix, what, deadline, m.kvs)
		}
	}
}

func TestKeyBoundaryWatch(t *testing.T) {
	srv := testserver.Consul(t, testserver.ConsulOptions{Dev: true})
	adm := admin(t, srv)
	b := newClient(t, srv, "", consul.Options{})
	put(t, adm, "/app/foo/a", "1")
	put(t, adm, "/app/foobar/a", "sibling")
	m := watch(t, b, "/app/foo")
	if want := map[string]string{"/app/foo/a": "1"}; !maps.Equal(m.kvs, want) {
		t.Fatalf("Get(/app/foo) = %v, want %v", m.kvs, want)
	}
	put(t, adm, "/app/foobar/b", "sibling")
	put(t, adm, "/app/foo", "self")
	m.until("the exact key", func(kvs map[string]string) bool { return kvs["/app/foo"] == "self" })
	for k := range m.kvs {
		if !backends.Under(k, "/app/foo") {
			t.Errorf("watch on /app/foo delivered %q", k)
		}
	}
}

func registerWeb(t *testing.T, adm *api.Client, id string, tags []string) {
	t.Helper()
	err := adm.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: id, Name: "web", Port: 8080, Address: "", Tags: tags,
		Meta:  map[string]string{"zone": "a", "build": id},
		Check: &api.AgentServiceCheck{CheckID: "check-" + id, TTL: "10m"},
	})
	if err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
}

func setCheck(t *testing.T, adm *api.Client, id, status string) {
	t.Helper()
	if err := adm.Agent().UpdateTTL("check-"+id, "set by test", status); err != nil {
		t.Fatalf("update check %s: %v", id, err)
	}
}

func TestServiceHealth(t *testing.T) {
	srv := testserver.Consul(t, testserver.ConsulOptions{Dev: true})
	adm := admin(t, srv)
	b := newClient(t, srv, "", consul.Options{EmptyGrace: -1})
	registerWeb(t, adm, "web-1", []string{"v1", "canary"})
	registerWeb(t, adm, "web-2", []string{"v1"})
	setCheck(t, adm, "web-1", api.HealthPassing)
	setCheck(t, adm, "web-2", api.HealthPassing)

	k1, k2 := consul.ServicePrefix+"/web/web-1", consul.ServicePrefix+"/web/web-2"
	m := watch(t, b, consul.ServicePrefix+"/web")
	m.until("two passing instances", func(kvs map[string]string) bool { return len(kvs) == 2 })

	var inst consul.Instance
	if err := json.Unmarshal([]byte(m.kvs[k1]), &inst); err != nil {
		t.Fatalf("%s = %q: %v", k1, m.kvs[k1], err)
	}
	want := consul.Instance{ID: "web-1", Name: "web", Address: "127.0.0.1", Port: 8080,
		Tags: []string{"canary", "v1"}, Meta: map[string]string{"build": "web-1", "zone": "a"},
		Node: "confit", Status: api.HealthPassing}
	if fmt.Sprint(inst) != fmt.Sprint(want) {
		t.Errorf("%s:\n got %+v\nwant %+v", k1, inst, want)
	}

	setCheck(t, adm, "web-2", api.HealthCritical)
	m.until("web-2 gone", func(kvs map[string]string) bool { _, ok := kvs[k2]; return !ok && len(kvs) == 1 })
	setCheck(t, adm, "web-2", api.HealthPassing)
	m.until("web-2 back", func(kvs map[string]string) bool { _, ok := kvs[k2]; return ok && len(kvs) == 2 })

	// All instances with their status, and the catalog.
	setCheck(t, adm, "web-1", api.HealthCritical)
	snap, err := b.Get(t.Context(), []string{consul.ServiceAnyPrefix + "/web", consul.ServicesPrefix})
	if err != nil {
		t.Fatal(err)
	}
	var any1 consul.Instance
	if err := json.Unmarshal([]byte(snap.KVs[consul.ServiceAnyPrefix+"/web/web-1"]), &any1); err != nil || any1.Status != api.HealthCritical {
		t.Errorf("any web-1 = %q (%v), want status critical", snap.KVs[consul.ServiceAnyPrefix+"/web/web-1"], err)
	}
	if got := snap.KVs[consul.ServicesPrefix+"/web"]; got != `["canary","v1"]` {
		t.Errorf("services/web = %q, want the sorted tags", got)
	}
	if _, err := b.Get(t.Context(), []string{consul.ServicePrefix}); err == nil {
		t.Errorf("Get(%s) without a name: no error", consul.ServicePrefix)
	}
}

func TestEmptyGrace(t *testing.T) {
	srv := testserver.Consul(t, testserver.ConsulOptions{Dev: true})
	adm := admin(t, srv)

	t.Run("held back", func(t *testing.T) {
		// A long grace: a prefix that is emptied and refilled is never
		// delivered empty.
		b := newClient(t, srv, "", consul.Options{EmptyGrace: time.Hour})
		put(t, adm, "/held/a", "1")
		m := watch(t, b, "/held")
		del(t, adm, "/held/a")
		put(t, adm, "/held/b", "2")
		m.until("b", func(kvs map[string]string) bool { return kvs["/held/b"] == "2" && len(kvs) == 1 })
		for i, v := range m.seen {
			if len(v) == 0 {
				t.Errorf("view %d was empty: the empty list was not held back", i)
			}
		}
	})
	t.Run("scale to zero", func(t *testing.T) {
		b := newClient(t, srv, "", consul.Options{EmptyGrace: 50 * time.Millisecond})
		put(t, adm, "/zero/a", "1")
		m := watch(t, b, "/zero")
		del(t, adm, "/zero/a")
		m.until("empty after the grace", func(kvs map[string]string) bool { return len(kvs) == 0 })
	})
}

func TestACL(t *testing.T) {
	const mgmt = "11111111-2222-3333-4444-555555555555"
	srv := testserver.Consul(t, testserver.ConsulOptions{Dev: true, ACLToken: mgmt})
	adm := admin(t, srv)
	put(t, adm, "/allowed/k", "v")
	put(t, adm, "/denied/k", "secret")
	pol, _, err := adm.ACL().PolicyCreate(&api.ACLPolicy{Name: "read-allowed", Rules: `key_prefix "allowed/" { policy = "read" }`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := adm.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: pol.ID}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := newClient(t, srv, tok.SecretID, consul.Options{})
	snap, err := b.Get(t.Context(), []string{"/allowed"})
	if err != nil {
		t.Fatalf("Get(/allowed) with a token that can read it: %v", err)
	}
	if snap.KVs["/allowed/k"] != "v" {
		t.Errorf("Get(/allowed) = %v", snap.KVs)
	}
	for _, p := range []string{"/denied", "/"} {
		_, err = b.Get(t.Context(), []string{p})
		if !errors.Is(err, consul.ErrPermissionDenied) || !strings.Contains(err.Error(), fmt.Sprintf("%q", p)) {
			t.Errorf("Get(%s) with a token that cannot read it: err = %v, want a permission error naming the prefix", p, err)
		}
	}
	if _, err := b.Watch(t.Context(), "/denied", 0); !errors.Is(err, consul.ErrPermissionDenied) {
		t.Errorf("Watch(/denied): err = %v, want a permission error", err)
	}
	// No token at all (anonymous, default deny).
	anon := newClient(t, srv, "", consul.Options{})
	if _, err := anon.Get(t.Context(), []string{"/allowed"}); !errors.Is(err, consul.ErrPermissionDenied) {
		t.Errorf("Get(/allowed) without a token: err = %v, want a permission error", err)
	}
	t.Logf("denied error: %v", err)
}

func TestAgentKilledDuringWatch(t *testing.T) {
	srv := testserver.Consul(t, testserver.ConsulOptions{})
	adm := admin(t, srv)
	b := newClient(t, srv, "", consul.Options{})
	put(t, adm, "/kill/a", "1")
	m := watch(t, b, "/kill")
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	m.until("a degraded update", func(map[string]string) bool { return m.errs > 0 })
	if m.kvs["/kill/a"] != "1" {
		t.Errorf("view after the kill = %v, want the last good one", m.kvs)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	put(t, adm, "/kill/b", "2")
	m.until("the write after the restart", func(kvs map[string]string) bool { return kvs["/kill/b"] == "2" && kvs["/kill/a"] == "1" })
}

// connCounter counts open connections made through Dial.
type connCounter struct {
	mu         sync.Mutex
	open, peak int
	dials      atomic.Int64
}

func (c *connCounter) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c.dials.Add(1)
	c.mu.Lock()
	c.open++
	c.peak = max(c.peak, c.open)
	c.mu.Unlock()
	return &countedConn{Conn: conn, c: c}, nil
}

type countedConn struct {
	net.Conn
	c    *connCounter
	once sync.Once
}

func (cc *countedConn) Close() error {
	cc.once.Do(func() {
		cc.c.mu.Lock()
		cc.c.open--
		cc.c.mu.Unlock()
	})
	return cc.Conn.Close()
}

func TestConnectionsBounded(t *testing.T) {
	srv := testserver.Consul(t, testserver.ConsulOptions{Dev: true})
	adm := admin(t, srv)
	for _, layout := range []struct {
		name string
		key  func(i int) string
	}{
		{"one parent", func(i int) string { return fmt.Sprintf("/conns/r%03d/key", i) }},
		// More unrelated groups than blocking connections: they merge.
		{"10 unrelated parents", func(i int) string { return fmt.Sprintf("/conns%d/r%03d/key", i%10, i) }},
	} {
		t.Run(layout.name, func(t *testing.T) {
			var cc connCounter
			b := newClient(t, srv, "", consul.Options{DialContext: cc.Dial, EmptyGrace: -1})
			const n = 200
			ms := make([]*mirror, n)
			for i := range n {
				p := layout.key(i)
				put(t, adm, p, "0")
				ms[i] = watch(t, b, p)
			}
			// A change to every 10th prefix reaches its watch, and only its watch.
			for i := 0; i < n; i += 10 {
				put(t, adm, layout.key(i), "1")
			}
			for i := 0; i < n; i += 10 {
				m := ms[i]
				m.until("the change", func(kvs map[string]string) bool { return kvs[m.prefix] == "1" })
			}
			// Two services watched as well.
			registerWeb(t, adm, "web-1", nil)
			setCheck(t, adm, "web-1", api.HealthPassing)
			sm := watch(t, b, consul.ServicePrefix+"/web")
			watch(t, b, consul.ServicesPrefix)
			setCheck(t, adm, "web-1", api.HealthCritical)
			sm.until("web-1 gone", func(kvs map[string]string) bool { return len(kvs) == 0 })
			// KV changes still arrive after the services took connections.
			for i := 1; i < n; i += 10 {
				put(t, adm, layout.key(i), "2")
			}
			for i := 1; i < n; i += 10 {
				m := ms[i]
				m.until("the change", func(kvs map[string]string) bool { return kvs[m.prefix] == "2" })
			}

			cc.mu.Lock()
			peak, open := cc.peak, cc.open
			cc.mu.Unlock()
			t.Logf("%d watches: peak %d open connections (%d now, %d dials)", n+2, peak, open, cc.dials.Load())
			if peak > 8 {
				t.Errorf("peak open connections = %d, want <= 8", peak)
			}
			// And the agent agrees: count established connections to its port.
			if got := establishedTo(t, srv.Addr()); got > 8 {
				t.Errorf("established connections to the agent = %d, want <= 8", got)
			}
		})
	}
}

// establishedTo counts ESTABLISHED TCP connections whose remote end is addr
// ("127.0.0.1:PORT"), from /proc/net/tcp.
func establishedTo(t *testing.T, addr string) int {
	t.Helper()
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Logf("cannot count connections: %v", err)
		return 0
	}
	defer f.Close()
	want := fmt.Sprintf(":%04X", port)
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 3 && strings.HasSuffix(fields[2], want) && fields[3] == "01" {
			n++
		}
	}
	return n
}

// TestGetRevsPerPrefix: a Get of several prefixes reports for each the
// index a Get of that prefix alone reads it at, keyed by the clean prefix.
func TestGetRevsPerPrefix(t *testing.T) {
	srv := testserver.Consul(t, testserver.ConsulOptions{})
	adm := admin(t, srv)
	b := newClient(t, srv, "", consul.Options{})
	put(t, adm, "/a/x", "1")
	put(t, adm, "/b/y", "2")
	put(t, adm, "/b/z", "3")

	alone := map[string]uint64{}
	for _, p := range []string{"/a", "/b", consul.ServicesPrefix} {
		snap, err := b.Get(t.Context(), []string{p})
		if err != nil {
			t.Fatal(err)
		}
		alone[p] = snap.Rev
	}
	if alone["/a"] >= alone["/b"] {
		t.Fatalf("indexes %v: want /a read below /b", alone)
	}
	snap, err := b.Get(t.Context(), []string{"a/", "/b", consul.ServicesPrefix})
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(snap.Revs, alone) {
		t.Errorf("Revs %v, want %v", snap.Revs, alone)
	}
	if want := max(alone["/a"], alone["/b"], alone[consul.ServicesPrefix]); snap.Rev != want {
		t.Errorf("Rev %d, want %d", snap.Rev, want)
	}
	if got := snap.RevOf("/a"); got != alone["/a"] {
		t.Errorf("RevOf(/a) = %d, want %d", got, alone["/a"])
	}
}

// putRaw writes key verbatim through a transaction: a key in the URL path
// ("a/../b") would be cleaned by the HTTP layer on the way.
func putRaw(t testing.TB, c *api.Client, key, value string) {
	t.Helper()
	ok, resp, _, err := c.Txn().Txn(api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVSet, Key: key, Value: []byte(value)}}}, nil)
	if err != nil || !ok {
		t.Fatalf("txn put %q: ok=%v err=%v resp=%+v", key, ok, err, resp)
	}
}

// TestDotKeysSkipped is issue 20 item 3c: a Consul key with a "." or ".."
// element ("dots/../b/secret") is never resolved into another path: Get and
// the watch skip it, and the warning names the key.
func TestDotKeysSkipped(t *testing.T) {
	srv := testserver.Consul(t, testserver.ConsulOptions{Dev: true})
	adm := admin(t, srv)
	var logs lockedLog
	b := newClient(t, srv, "", consul.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	putRaw(t, adm, "dots/../b/secret", "s")
	putRaw(t, adm, "dots/./x", "s")
	put(t, adm, "/dots/ok", "v")
	m := watch(t, b, "/dots")
	if want := map[string]string{"/dots/ok": "v"}; !maps.Equal(m.kvs, want) {
		t.Errorf("Get(/dots) = %v, want %v", m.kvs, want)
	}
	// Cleaned, "dots/../b/secret" would be "/b/secret": listed from the
	// root, it would reach a template reading /b.
	root := watch(t, b, "/")
	if v, ok := root.kvs["/b/secret"]; ok {
		t.Errorf("Get(/) has /b/secret = %q", v)
	}
	putRaw(t, adm, "dots/../c", "s")
	put(t, adm, "/dots/ok2", "w")
	m.until("the clean key", func(kvs map[string]string) bool { return kvs["/dots/ok2"] == "w" })
	root.until("the clean key", func(kvs map[string]string) bool { return kvs["/dots/ok2"] == "w" })
	for k := range root.kvs {
		if k == "/b/secret" || k == "/c" {
			t.Errorf("watch on / delivered %s", k)
		}
	}
	for _, view := range m.seen {
		if want := map[string]string{"/dots/ok": "v", "/dots/ok2": "w"}; !maps.Equal(view, want) {
			t.Errorf("watch view %v, want %v", view, want)
		}
	}
	for _, k := range []string{"/dots/../b/secret", "/dots/./x", "/dots/../c"} {
		if !strings.Contains(logs.String(), "key="+k) {
			t.Errorf("no warning naming %s in:\n%s", k, logs.String())
		}
	}
}

// lockedLog collects log output from several goroutines.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestFrozenAgentNoticed is issue 20 item 7: an agent that accepts
// connections but never answers (SIGSTOP) was never noticed by a watch (0
// log lines in 90 s). The probe ends the blocking query and the watch
// reports it (a warning and an Err update) within a generous bound; once
// the agent runs again, changes flow.
func TestFrozenAgentNoticed(t *testing.T) {
	srv := testserver.Consul(t, testserver.ConsulOptions{Dev: true})
	adm := admin(t, srv)
	var logs lockedLog
	b := newClient(t, srv, "", consul.Options{
		Logger:        slog.New(slog.NewTextHandler(&logs, nil)),
		ProbeInterval: 500 * time.Millisecond, ProbeTimeout: time.Second,
	})
	put(t, adm, "/frozen/a", "1")
	m := watch(t, b, "/frozen")
	pid := srv.Process().PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	cont := func() { syscall.Kill(pid, syscall.SIGCONT) }
	t.Cleanup(cont)
	stopped := time.Now()
	m.until("a degraded update", func(map[string]string) bool { return m.errs > 0 })
	took := time.Since(stopped)
	t.Logf("frozen agent noticed after %v", took.Round(time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("frozen agent noticed after %v, want at most 10 s", took)
	}
	if !strings.Contains(logs.String(), "agent not answering") || !strings.Contains(logs.String(), srv.Addr()) {
		t.Errorf("log does not say the agent %s is not answering:\n%s", srv.Addr(), logs.String())
	}
	cont()
	put(t, adm, "/frozen/a", "2")
	m.until("the write after SIGCONT", func(kvs map[string]string) bool { return kvs["/frozen/a"] == "2" })
}

// TestAgentRestartSameIndex is issue 20 item 7: a -dev agent restarted and
// re-populated by the same writes gives a changed key the ModifyIndex it had
// before, so comparing by index missed the new value (2–4 runs of 4). The
// answer after a lost query is compared by value.
func TestAgentRestartSameIndex(t *testing.T) {
	srv := testserver.Consul(t, testserver.ConsulOptions{Dev: true})
	adm := admin(t, srv)
	b := newClient(t, srv, "", consul.Options{})
	put(t, adm, "/same/a", "before")
	before, _, err := adm.KV().Get("same/a", nil)
	if err != nil || before == nil {
		t.Fatalf("get: %v", err)
	}
	m := watch(t, b, "/same")
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	m.until("a degraded update", func(map[string]string) bool { return m.errs > 0 })
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	adm = admin(t, srv)
	put(t, adm, "/same/a", "after")
	after, _, err := adm.KV().Get("same/a", nil)
	if err != nil || after == nil {
		t.Fatalf("get: %v", err)
	}
	t.Logf("ModifyIndex before the restart %d, after %d", before.ModifyIndex, after.ModifyIndex)
	m.until("the value written after the restart", func(kvs map[string]string) bool { return kvs["/same/a"] == "after" })
}
