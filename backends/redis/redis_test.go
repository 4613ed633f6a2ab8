package redis_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/backends/backendtest"
	"github.com/confit-dev/confit/backends/redis"
	"github.com/confit-dev/confit/internal/testserver"
	"github.com/redis/rueidis"
)

// One redis-server for the whole test binary; cases use their own keys.
var (
	server   *testserver.RedisServer
	admin    rueidis.Client
	startErr error
)

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	server, startErr = testserver.StartRedis(ctx, testserver.RedisOptions{})
	cancel()
	if startErr == nil {
		admin, startErr = newAdmin()
	}
	code := m.Run()
	if admin != nil {
		admin.Close()
	}
	if server != nil {
		if code != 0 {
			fmt.Fprintf(os.Stderr, "--- redis log ---\n%s\n", server.Process().LogTail(60))
		}
		server.Close()
	}
	os.Exit(code)
}

func newAdmin() (rueidis.Client, error) {
	return rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{server.Addr()}, DisableCache: true, ForceSingleClient: true})
}

// needServer fails or skips t without the shared server, and empties it:
// each test (and each run under -count) starts from no keys.
func needServer(t *testing.T) {
	t.Helper()
	testserver.Unavailable(t, startErr)
	do(t, "FLUSHALL")
}

// do runs an admin command, retrying while the server restarts.
func do(t *testing.T, args ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		err := admin.Do(ctx, admin.B().Arbitrary(args[0]).Args(args[1:]...).Build()).Error()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", strings.Join(args, " "), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func newClient(t *testing.T, nodes []string, opts redis.Options) *redis.Client {
	t.Helper()
	if nodes == nil {
		nodes = []string{server.Addr()}
	}
	c, err := redis.New(t.Context(), backends.Config{Backend: "redis", Nodes: nodes}, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestBackend(t *testing.T) {
	needServer(t)
	backendtest.Run(t, func(t *testing.T) backendtest.Harness {
		return backendtest.Harness{
			Backend: newClient(t, nil, redis.Options{}),
			Put:     func(t *testing.T, k, v string) { do(t, "SET", k, v) },
			Delete:  func(t *testing.T, k string) { do(t, "DEL", k) },
			Restart: func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
				defer cancel()
				if err := server.Restart(ctx); err != nil {
					t.Fatalf("restart: %v", err)
				}
			},
			Caps: backendtest.Caps{Watch: true, Delete: true, Binary: true},
		}
	})
}

// TestKeyModel: hashes give k/field, separators map "/", glob characters
// in a prefix are literal, db comes from the node.
func TestKeyModel(t *testing.T) {
	needServer(t)
	do(t, "SET", "/km/a", "1")
	do(t, "HSET", "/km/h", "x", "2", "y", "3")
	do(t, "SET", "/km*/b", "glob")
	do(t, "SET", "/km[1]/c", "bracket")
	do(t, "SET", "/kmx/d", "sibling")
	do(t, "SET", "km:sep:e", "4")
	do(t, "SELECT", "0") // admin stays on db 0
	c := newClient(t, nil, redis.Options{})
	tests := []struct {
		name   string
		c      *redis.Client
		prefix string
		want   map[string]string
	}{
		{"strings and hashes", c, "/km", map[string]string{"/km/a": "1", "/km/h/x": "2", "/km/h/y": "3"}},
		{"star literal", c, "/km*", map[string]string{"/km*/b": "glob"}},
		{"bracket literal", c, "/km[1]", map[string]string{"/km[1]/c": "bracket"}},
		{"one key", c, "/km/a", map[string]string{"/km/a": "1"}},
		{"hash itself", c, "/km/h", map[string]string{"/km/h/x": "2", "/km/h/y": "3"}},
		{"separator", newClient(t, nil, redis.Options{Separator: ":"}), "/km/sep", map[string]string{"/km/sep/e": "4"}},
		{"other db", newClient(t, []string{server.Addr() + "/3"}, redis.Options{}), "/km", map[string]string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap, err := tc.c.Get(t.Context(), []string{tc.prefix})
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if fmt.Sprint(snap.KVs) != fmt.Sprint(tc.want) {
				t.Errorf("Get(%q) = %v, want %v", tc.prefix, snap.KVs, tc.want)
			}
		})
	}
}

// TestDownServer: New against a closed port fails at once, naming the node.
func TestDownServer(t *testing.T) {
	port, err := testserver.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	node := fmt.Sprintf("127.0.0.1:%d", port)
	start := time.Now()
	_, err = redis.New(t.Context(), backends.Config{Nodes: []string{node}}, redis.Options{})
	if err == nil || !strings.Contains(err.Error(), node) {
		t.Fatalf("New(%s) = %v, want an error naming the node", node, err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("New took %v, want < 10s", d)
	}
}

func TestBadNode(t *testing.T) {
	_, err := redis.New(t.Context(), backends.Config{Nodes: []string{"127.0.0.1:6379/x"}}, redis.Options{})
	if err == nil || !strings.Contains(err.Error(), `"127.0.0.1:6379/x"`) {
		t.Fatalf("New = %v, want an error naming the node", err)
	}
}

// recv waits for the watch to converge on want (applying Changes/Resets).
func recv(t *testing.T, ch <-chan backends.Update, view map[string]string, want map[string]string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for fmt.Sprint(view) != fmt.Sprint(want) {
		select {
		case u, ok := <-ch:
			if !ok {
				t.Fatal("watch closed")
			}
			switch {
			case u.Err != nil:
			case u.Reset:
				clear(view)
				for k, v := range u.KVs {
					view[k] = v
				}
			default:
				for _, c := range u.Changes {
					if c.Deleted {
						delete(view, c.Key)
					} else {
						view[c.Key] = c.Value
					}
				}
			}
		case <-deadline:
			t.Fatalf("view %v, want %v", view, want)
		}
	}
}

// TestWatchExpiryFlushRestart: a TTL expiry, FLUSHALL and a server
// restart are each seen by a watch (tracking sees expiry; FLUSHALL is a
// null invalidation; the restart is a re-list).
func TestWatchExpiryFlushRestart(t *testing.T) {
	needServer(t)
	c := newClient(t, nil, redis.Options{})
	do(t, "SET", "/wx/a", "1")
	ch, err := c.Watch(t.Context(), "/wx", 0)
	if err != nil {
		t.Fatal(err)
	}
	view := map[string]string{"/wx/a": "1"}
	do(t, "SET", "/wx/ttl", "soon", "PX", "300")
	recv(t, ch, view, map[string]string{"/wx/a": "1", "/wx/ttl": "soon"})
	// Expiry is lazy or by the active cycle (10 Hz): bounded by the wait.
	recv(t, ch, view, map[string]string{"/wx/a": "1"})
	do(t, "HSET", "/wx/h", "f", "v")
	recv(t, ch, view, map[string]string{"/wx/a": "1", "/wx/h/f": "v"})
	do(t, "FLUSHALL")
	recv(t, ch, view, map[string]string{})
	do(t, "SET", "/wx/b", "2")
	recv(t, ch, view, map[string]string{"/wx/b": "2"})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := server.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := server.Start(ctx); err != nil {
		t.Fatal(err)
	}
	do(t, "DEL", "/wx/b") // while the watch may still be reconnecting
	do(t, "SET", "/wx/c", "3")
	recv(t, ch, view, map[string]string{"/wx/c": "3"})
}

// trackingClients counts the server's connections with CLIENT TRACKING on
// (flag t in CLIENT LIST): one per live watch.
func trackingClients(t *testing.T) int { return clientsFlagged(t, "t") }

// pubsubClients counts the server's connections in subscriber mode
// (keyspace notifications).
func pubsubClients(t *testing.T) int { return clientsFlagged(t, "P") }

// clientsFlagged counts the server's connections whose CLIENT LIST flags
// hold flag.
func clientsFlagged(t *testing.T, flag string) int {
	t.Helper()
	s, err := admin.Do(t.Context(), admin.B().ClientList().Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(s, "\n") {
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "flags="); ok && strings.Contains(v, flag) {
				n++
			}
		}
	}
	return n
}

// TestWatchLeak is the shape of confd #550/#551: 200 watched prefixes over
// 3,000 keys and many changes, in each watch mode. The goroutine count
// stays where it was once every watch was up, and one connection (the
// tracking one, or the keyspace subscriber) serves every watch.
func TestWatchLeak(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  redis.Options
		conns func(*testing.T) int // the watch connections on the server
	}{
		{"tracking", redis.Options{}, trackingClients},
		{"keyspace", redis.Options{Watch: redis.WatchKeyspace}, pubsubClients},
	} {
		t.Run(tc.name, func(t *testing.T) { watchLeak(t, tc.opts, tc.conns) })
	}
}

func watchLeak(t *testing.T, opts redis.Options, conns func(*testing.T) int) {
	needServer(t)
	if opts.Watch == redis.WatchKeyspace {
		do(t, "CONFIG", "SET", "notify-keyspace-events", "KEA")
		t.Cleanup(func() { // t.Context has ended by now
			if err := admin.Do(context.Background(), admin.B().ConfigSet().ParameterValue().ParameterValue("notify-keyspace-events", "").Build()).Error(); err != nil {
				t.Errorf("reset notify-keyspace-events: %v", err)
			}
		})
	}
	const watches, perPrefix, changes = 200, 15, 10000
	c := newClient(t, nil, opts)
	for i := range watches {
		args := []string{"MSET"}
		for j := range perPrefix {
			args = append(args, fmt.Sprintf("/leak/r%d/k%d", i, j), "0")
		}
		do(t, args...)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	views := make([]map[string]string, watches)
	chans := make([]<-chan backends.Update, watches)
	for i := range watches {
		ch, err := c.Watch(ctx, fmt.Sprintf("/leak/r%d", i), 0)
		if err != nil {
			t.Fatal(err)
		}
		chans[i] = ch
		views[i] = map[string]string{}
		for j := range perPrefix {
			views[i][fmt.Sprintf("/leak/r%d/k%d", i, j)] = "0"
		}
	}
	// Every watch is up once it saw a first change.
	for i := range watches {
		do(t, "SET", fmt.Sprintf("/leak/r%d/k0", i), "warm")
	}
	for i := range watches {
		want := maps(views[i])
		want[fmt.Sprintf("/leak/r%d/k0", i)] = "warm"
		recv(t, chans[i], views[i], want)
	}
	g0, w0 := testserver.SettledGoroutines(0), conns(t)
	for n := range changes {
		i, j := n%watches, (n/watches)%perPrefix
		do(t, "SET", fmt.Sprintf("/leak/r%d/k%d", i, j), fmt.Sprint(n))
	}
	for i := range watches {
		want := maps(views[i])
		for n := range changes {
			if n%watches == i {
				want[fmt.Sprintf("/leak/r%d/k%d", i, (n/watches)%perPrefix)] = fmt.Sprint(n)
			}
		}
		recv(t, chans[i], views[i], want)
	}
	g1, w1 := testserver.SettledGoroutines(g0+10), conns(t)
	t.Logf("%d watches, %d keys, %d changes: goroutines %d -> %d, watch connections %d -> %d",
		watches, watches*perPrefix, changes, g0, g1, w0, w1)
	if g1 > g0+10 || w1 != w0 || w0 != 1 {
		t.Errorf("goroutines %d -> %d, watch connections %d -> %d (want 1, stable)", g0, g1, w0, w1)
	}
	cancel()
	for _, ch := range chans {
		for range ch {
		}
	}
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TestWatchLatency logs SET → Update p50/p99 over 200 changes (a figure,
// not an assertion beyond the usual 20 s bound per change).
func TestWatchLatency(t *testing.T) {
	needServer(t)
	c := newClient(t, nil, redis.Options{})
	ch, err := c.Watch(t.Context(), "/lat", 0)
	if err != nil {
		t.Fatal(err)
	}
	do(t, "SET", "/lat/warm", "1")
	recv(t, ch, map[string]string{}, map[string]string{"/lat/warm": "1"})
	before := c.Stats()
	var ds []time.Duration
	for i := range 200 {
		start := time.Now()
		do(t, "SET", "/lat/k", fmt.Sprint(i))
		recv(t, ch, map[string]string{}, map[string]string{"/lat/k": fmt.Sprint(i)})
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	st := c.Stats()
	t.Logf("SET → Update: p50 %v, p99 %v; per change: %.2f key reads, %d re-lists",
		ds[len(ds)/2], ds[len(ds)*99/100], float64(st.Reads-before.Reads)/200, st.Lists-before.Lists)
}

// TestWatchPolling: a server that refuses CLIENT TRACKING (the CLIENT
// command renamed away, as some managed Redis do) and has no keyspace
// notifications is polled, says so, and changes are still seen.
func TestWatchPolling(t *testing.T) {
	needServer(t)
	srv := testserver.Redis(t, testserver.RedisOptions{ExtraArgs: []string{"--rename-command", "CLIENT", ""}})
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	c, err := redis.New(t.Context(), backends.Config{Nodes: []string{srv.Addr()}, Logger: log}, redis.Options{PollInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer c.Close()
	ch, err := c.Watch(t.Context(), "/poll", 0)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr()}, DisableCache: true, ForceSingleClient: true})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.Do(t.Context(), other.B().Set().Key("/poll/a").Value("1").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	recv(t, ch, map[string]string{}, map[string]string{"/poll/a": "1"})
	got := logs.String()
	for _, want := range []string{"CLIENT TRACKING unavailable; trying keyspace notifications",
		"keyspace notifications unavailable; polling instead", `notify-keyspace-events is \"\"`} {
		if !strings.Contains(got, want) {
			t.Errorf("log %q does not say %q", got, want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestWatchOverlap: a watched prefix that contains an already tracked one
// (Redis refuses overlapping PREFIXes on one connection) makes the tracker
// reconnect with the merged prefix; both watches keep seeing changes, with
// tracking and with keyspace notifications.
func TestWatchOverlap(t *testing.T) {
	needServer(t)
	for _, watch := range []string{redis.WatchTracking, redis.WatchKeyspace} {
		t.Run(watch, func(t *testing.T) {
			srv := testserver.Redis(t, testserver.RedisOptions{ExtraArgs: []string{"--notify-keyspace-events", "KEA"}})
			run := serverAdmin(t, srv.Addr())
			set := func(k, v string) {
				t.Helper()
				if _, err := run("SET", k, v); err != nil {
					t.Fatal(err)
				}
			}
			c := newClient(t, []string{srv.Addr()}, redis.Options{Watch: watch})
			inner, err := c.Watch(t.Context(), "/ov/a", 0)
			if err != nil {
				t.Fatal(err)
			}
			set("/ov/a/1", "x")
			vi := map[string]string{}
			recv(t, inner, vi, map[string]string{"/ov/a/1": "x"})
			outer, err := c.Watch(t.Context(), "/ov", 0)
			if err != nil {
				t.Fatal(err)
			}
			vo := map[string]string{}
			set("/ov/b", "y")
			set("/ov/a/2", "z")
			recv(t, outer, vo, map[string]string{"/ov/a/1": "x", "/ov/a/2": "z", "/ov/b": "y"})
			recv(t, inner, vi, map[string]string{"/ov/a/1": "x", "/ov/a/2": "z"})
			set("/ov/a/3", "w") // after the reconnect, on the merged prefix
			recv(t, inner, vi, map[string]string{"/ov/a/1": "x", "/ov/a/2": "z", "/ov/a/3": "w"})
		})
	}
}

// serverAdmin returns a function running one command against addr.
func serverAdmin(t *testing.T, addr string) func(args ...string) (rueidis.RedisResult, error) {
	t.Helper()
	cli, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true, ForceSingleClient: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cli.Close)
	return func(args ...string) (rueidis.RedisResult, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		r := cli.Do(ctx, cli.B().Arbitrary(args[0]).Args(args[1:]...).Build())
		return r, r.Error()
	}
}

// TestWatchKeyspace: with -redis-watch keyspace and notify-keyspace-events
// set (CONFIG SET, as a user would), writes, hash fields, deletes, renames,
// TTL expiry, eviction and FLUSHALL (no notification: found by the
// commandstats check) are each seen; key-event notifications (E) alone do
// too. The poll interval is long enough that nothing is found by polling
// but FLUSHALL, whose check runs at that interval.
func TestWatchKeyspace(t *testing.T) {
	needServer(t)
	for _, tc := range []struct {
		name, flags string
		evict       bool
	}{
		{name: "KEA", flags: "KEA", evict: true},
		{name: "keyspace classes", flags: "Kg$hxe"},
		{name: "key-event only", flags: "EA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testserver.Redis(t, testserver.RedisOptions{})
			run := serverAdmin(t, srv.Addr())
			must := func(args ...string) {
				t.Helper()
				if _, err := run(args...); err != nil {
					t.Fatalf("%s: %v", strings.Join(args, " "), err)
				}
			}
			must("CONFIG", "SET", "notify-keyspace-events", tc.flags)
			var logs syncBuffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
			c, err := redis.New(t.Context(), backends.Config{Nodes: []string{srv.Addr()}, Logger: log},
				redis.Options{Watch: redis.WatchKeyspace, PollInterval: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			must("SET", "/ks/a", "1")
			must("SET", "/other/z", "not watched")
			ch, err := c.Watch(t.Context(), "/ks", 0)
			if err != nil {
				t.Fatal(err)
			}
			view := map[string]string{"/ks/a": "1"}
			must("SET", "/ks/b", "2")
			recv(t, ch, view, map[string]string{"/ks/a": "1", "/ks/b": "2"})
			must("HSET", "/ks/h", "f", "v")
			recv(t, ch, view, map[string]string{"/ks/a": "1", "/ks/b": "2", "/ks/h/f": "v"})
			must("DEL", "/ks/a")
			recv(t, ch, view, map[string]string{"/ks/b": "2", "/ks/h/f": "v"})
			must("RENAME", "/ks/b", "/ks/c")
			recv(t, ch, view, map[string]string{"/ks/c": "2", "/ks/h/f": "v"})
			must("SET", "/ks/ttl", "soon", "PX", "300")
			recv(t, ch, view, map[string]string{"/ks/c": "2", "/ks/h/f": "v", "/ks/ttl": "soon"})
			recv(t, ch, view, map[string]string{"/ks/c": "2", "/ks/h/f": "v"}) // expired
			if tc.evict {
				// volatile-ttl evicts only keys with a TTL: /ks/ev, once the
				// unwatched filler passes maxmemory.
				must("SET", "/ks/ev", "evict me", "EX", "3600")
				recv(t, ch, view, map[string]string{"/ks/c": "2", "/ks/h/f": "v", "/ks/ev": "evict me"})
				r, _ := run("INFO", "memory")
				info, _ := r.ToString()
				var used int
				for _, line := range strings.Split(info, "\n") {
					if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
						fmt.Sscan(strings.TrimSpace(v), &used)
					}
				}
				must("CONFIG", "SET", "maxmemory-policy", "volatile-ttl")
				must("CONFIG", "SET", "maxmemory", fmt.Sprint(used+(1<<20)))
				filler := strings.Repeat("x", 64<<10)
				for i := range 64 {
					if _, err := run("SET", fmt.Sprintf("/filler/%d", i), filler); err != nil {
						break // OOM: nothing left to evict
					}
				}
				recv(t, ch, view, map[string]string{"/ks/c": "2", "/ks/h/f": "v"}) // evicted
				must("CONFIG", "SET", "maxmemory", "0")
			}
			must("FLUSHALL")
			recv(t, ch, view, map[string]string{})
			must("SET", "/ks/d", "4")
			recv(t, ch, view, map[string]string{"/ks/d": "4"})
			if got := logs.String(); got != "" {
				t.Errorf("warnings %q, want none", got)
			}
		})
	}
}

// TestWatchKeyspaceFallback: a server that refuses CLIENT TRACKING but
// sends keyspace notifications is watched by them (a change is seen long
// before the hour-long poll interval); asked for keyspace from a server
// that does not send them, the watch says so and polls. Where CONFIG is
// disabled, keyspace asked for is trusted with a WARN, and a fallback
// from tracking polls.
func TestWatchKeyspaceFallback(t *testing.T) {
	needServer(t)
	for _, tc := range []struct {
		name  string
		args  []string
		watch string
		poll  time.Duration
		logs  []string
	}{
		{name: "tracking refused, keyspace on", args: []string{"--rename-command", "CLIENT", "", "--notify-keyspace-events", "KEA"},
			poll: time.Hour, logs: []string{"CLIENT TRACKING unavailable; trying keyspace notifications"}},
		{name: "keyspace asked, off", watch: redis.WatchKeyspace, poll: 100 * time.Millisecond,
			logs: []string{"keyspace notifications unavailable; polling instead", `notify-keyspace-events is \"\"`}},
		{name: "keyspace asked, events without g", args: []string{"--notify-keyspace-events", "K$hxe"}, watch: redis.WatchKeyspace,
			poll: 100 * time.Millisecond, logs: []string{"polling instead", `notify-keyspace-events is \"$hxeK\"`}},
		{name: "poll asked", watch: redis.WatchPoll, poll: 100 * time.Millisecond},
		{name: "keyspace asked, CONFIG disabled: trusted", args: []string{"--rename-command", "CONFIG", "", "--notify-keyspace-events", "KEA"},
			watch: redis.WatchKeyspace, poll: time.Hour, logs: []string{"cannot read notify-keyspace-events; assuming the server sends keyspace notifications"}},
		{name: "tracking refused, CONFIG disabled: polled", args: []string{"--rename-command", "CLIENT", "", "--rename-command", "CONFIG", "", "--notify-keyspace-events", "KEA"},
			poll: 100 * time.Millisecond, logs: []string{"trying keyspace notifications", "polling instead", "cannot read notify-keyspace-events"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testserver.Redis(t, testserver.RedisOptions{ExtraArgs: tc.args})
			run := serverAdmin(t, srv.Addr())
			var logs syncBuffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
			c, err := redis.New(t.Context(), backends.Config{Nodes: []string{srv.Addr()}, Logger: log},
				redis.Options{Watch: tc.watch, PollInterval: tc.poll})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ch, err := c.Watch(t.Context(), "/fb", 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := run("SET", "/fb/a", "1"); err != nil {
				t.Fatal(err)
			}
			recv(t, ch, map[string]string{}, map[string]string{"/fb/a": "1"})
			got := logs.String()
			for _, want := range tc.logs {
				if !strings.Contains(got, want) {
					t.Errorf("log %q does not say %q", got, want)
				}
			}
			if len(tc.logs) == 0 && got != "" {
				t.Errorf("warnings %q, want none", got)
			}
		})
	}
}

func TestKeyspaceFlags(t *testing.T) {
	for _, tc := range []struct {
		flags        string
		ok, keyspace bool
	}{
		{"", false, false},
		{"AKE", true, true},
		{"g$hxeK", true, true},
		{"AE", true, false},
		{"g$hxE", false, false},
		{"A", false, false},
		{"$hxeK", false, true},
	} {
		ok, keyspace := redis.KeyspaceFlags(tc.flags)
		if ok != tc.ok || keyspace != tc.keyspace {
			t.Errorf("keyspaceFlags(%q) = %v, %v; want %v, %v", tc.flags, ok, keyspace, tc.ok, tc.keyspace)
		}
	}
}

// TestSentinel: with -redis-sentinel-master the client asks a real
// Sentinel for the master, reads and watches it, and after a failover
// (SENTINEL FAILOVER, then the old master stopped) reads and watches the
// new one.
func TestSentinel(t *testing.T) {
	needServer(t)
	master := testserver.Redis(t, testserver.RedisOptions{})
	replica := testserver.Redis(t, testserver.RedisOptions{ExtraArgs: []string{"--replicaof", "127.0.0.1", strings.TrimPrefix(master.Addr(), "127.0.0.1:")}})
	sentinel := testserver.Redis(t, testserver.RedisOptions{Sentinel: &testserver.SentinelOptions{Name: "mymaster", Master: master.Addr()}})
	onMaster, onReplica, onSentinel := serverAdmin(t, master.Addr()), serverAdmin(t, replica.Addr()), serverAdmin(t, sentinel.Addr())
	if _, err := onMaster("SET", "/sn/a", "1"); err != nil {
		t.Fatal(err)
	}
	c, err := redis.New(t.Context(), backends.Config{Nodes: []string{sentinel.Addr() + "/0"}}, redis.Options{SentinelMaster: "mymaster"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer c.Close()
	snap, err := c.Get(t.Context(), []string{"/sn"})
	if err != nil || snap.KVs["/sn/a"] != "1" {
		t.Fatalf("Get = %v, %v; want /sn/a=1", snap.KVs, err)
	}
	ch, err := c.Watch(t.Context(), "/sn", 0)
	if err != nil {
		t.Fatal(err)
	}
	view := map[string]string{"/sn/a": "1"}
	if _, err := onMaster("SET", "/sn/b", "2"); err != nil {
		t.Fatal(err)
	}
	recv(t, ch, view, map[string]string{"/sn/a": "1", "/sn/b": "2"})

	// The replica has both keys before the failover (its first sync
	// takes a moment).
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, _ := onReplica("GET", "/sn/b")
		if v, _ := r.ToString(); v == "2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the replica has not synced /sn/b")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The Sentinel learns of the replica from the master's INFO; until
	// then SENTINEL FAILOVER answers NOGOODSLAVE.
	for {
		_, err := onSentinel("SENTINEL", "FAILOVER", "mymaster")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SENTINEL FAILOVER: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for {
		r, err := onSentinel("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")
		addr, _ := r.AsStrSlice()
		role, _ := onReplica("ROLE")
		roles, _ := role.ToArray()
		isMaster := len(roles) > 0 && func() bool { s, _ := roles[0].ToString(); return s == "master" }()
		if err == nil && len(addr) == 2 && addr[0]+":"+addr[1] == replica.Addr() && isMaster {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failover to %s: sentinel says %v (%v)", replica.Addr(), addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := master.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := onReplica("SET", "/sn/c", "3"); err != nil {
		t.Fatal(err)
	}
	recv(t, ch, view, map[string]string{"/sn/a": "1", "/sn/b": "2", "/sn/c": "3"})
	for time.Now().Before(deadline) {
		if snap, err = c.Get(t.Context(), []string{"/sn"}); err == nil && snap.KVs["/sn/c"] == "3" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("Get after the failover = %v, %v; want /sn/c=3", snap.KVs, err)
}

// TestWatchOutageSaysSo: a watch whose server stops, or freezes (SIGSTOP:
// the connection stays open and silent), sends an Err wrapping
// ErrConnectionLost within a bound, instead of waiting inside a retried
// read; once the server is back it sends a Reset with what is there.
func TestWatchOutageSaysSo(t *testing.T) {
	needServer(t)
	for _, tc := range []struct {
		name         string
		stop, resume func(t *testing.T, s *testserver.RedisServer)
	}{
		{name: "stopped",
			stop: func(t *testing.T, s *testserver.RedisServer) {
				if err := s.Stop(); err != nil {
					t.Fatal(err)
				}
			},
			resume: func(t *testing.T, s *testserver.RedisServer) {
				if err := s.Start(t.Context()); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "frozen",
			stop: func(t *testing.T, s *testserver.RedisServer) {
				pid := s.Process().PID()
				if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
			},
			resume: func(t *testing.T, s *testserver.RedisServer) {
				if err := syscall.Kill(s.Process().PID(), syscall.SIGCONT); err != nil {
					t.Fatal(err)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testserver.Redis(t, testserver.RedisOptions{})
			run := serverAdmin(t, srv.Addr())
			c, err := redis.New(t.Context(), backends.Config{Nodes: []string{srv.Addr()}}, redis.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := run("SET", "/out/a", "1"); err != nil {
				t.Fatal(err)
			}
			ch, err := c.Watch(t.Context(), "/out", 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := run("SET", "/out/b", "2"); err != nil {
				t.Fatal(err)
			}
			recv(t, ch, map[string]string{"/out/a": "1"}, map[string]string{"/out/a": "1", "/out/b": "2"})
			start := time.Now()
			tc.stop(t, srv)
			select {
			case u := <-ch:
				if !errors.Is(u.Err, redis.ErrConnectionLost) || !strings.Contains(u.Err.Error(), srv.Addr()) {
					t.Fatalf("update %+v, want an Err wrapping ErrConnectionLost naming the node", u)
				}
				t.Logf("%s: %v after %v", tc.name, u.Err, time.Since(start).Round(time.Millisecond))
			case <-time.After(20 * time.Second):
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				t.Fatalf("no Err within 20 s of the outage\n%s", buf[:n])
			}
			tc.resume(t, srv)
			select {
			case u := <-ch:
				if !u.Reset || fmt.Sprint(u.KVs) != fmt.Sprint(map[string]string{"/out/a": "1", "/out/b": "2"}) {
					t.Errorf("update after the outage %+v, want a Reset with both keys", u)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("no Reset within 20 s of the server's return")
			}
		})
	}
}

// TestWatchChangeBeforeWatch: a change made between a Get and the Watch
// that follows it (as the daemon does) reaches the watcher: Redis has no
// revision to resume from, so the first Update is a Reset.
func TestWatchChangeBeforeWatch(t *testing.T) {
	needServer(t)
	c := newClient(t, nil, redis.Options{})
	do(t, "SET", "/race/a", "1")
	snap, err := c.Get(t.Context(), []string{"/race"})
	if err != nil {
		t.Fatal(err)
	}
	do(t, "SET", "/race/a", "2")
	ch, err := c.Watch(t.Context(), "/race", 0)
	if err != nil {
		t.Fatal(err)
	}
	recv(t, ch, maps(snap.KVs), map[string]string{"/race/a": "2"})
}

// TestUnixSocket: a node that is a Unix socket's path (as confd takes it),
// optionally followed by /db or preceded by unix://, is dialled as one.
func TestUnixSocket(t *testing.T) {
	needServer(t)
	sock := filepath.Join(t.TempDir(), "redis.sock")
	srv := testserver.Redis(t, testserver.RedisOptions{ExtraArgs: []string{"--unixsocket", sock, "--unixsocketperm", "700"}})
	run := serverAdmin(t, srv.Addr())
	if _, err := run("SET", "/sock/k", "db0"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ node, want string }{
		{sock, "db0"},
		{sock + "/1", ""}, // db 1 is empty
		{"unix://" + sock, "db0"},
	} {
		t.Run(tc.node, func(t *testing.T) {
			c := newClient(t, []string{tc.node}, redis.Options{})
			snap, err := c.Get(t.Context(), []string{"/sock"})
			if err != nil {
				t.Fatal(err)
			}
			if got := snap.KVs["/sock/k"]; got != tc.want {
				t.Errorf("Get via %s: /sock/k = %q, want %q", tc.node, got, tc.want)
			}
		})
	}
	t.Run("missing socket", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "none.sock")
		_, err := redis.New(t.Context(), backends.Config{Nodes: []string{missing}}, redis.Options{})
		if err == nil || !strings.Contains(err.Error(), missing) {
			t.Fatalf("New(%s) = %v, want an error naming the socket", missing, err)
		}
	})
}

// TestPassword: against a server started with --requirepass, -password
// reads and watches (the tracking connection authenticates too); confd's
// -client-key as the password works, with a WARN saying so; a wrong or
// missing password fails New naming the node. The password is in no
// error and no log line.
func TestPassword(t *testing.T) {
	const password = "pw-Rd7-not-in-logs"
	s := testserver.Redis(t, testserver.RedisOptions{ExtraArgs: []string{"--requirepass", password}})
	adm, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{s.Addr()}, Password: password, DisableCache: true, ForceSingleClient: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(adm.Close)
	set := func(t *testing.T, k, v string) {
		t.Helper()
		if err := adm.Do(t.Context(), adm.B().Set().Key(k).Value(v).Build()).Error(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}
	tests := []struct {
		name     string
		cfg      backends.Config
		wantErr  string // "" for success
		wantWarn bool
	}{
		{name: "password", cfg: backends.Config{Password: password}},
		{name: "client-key as password", cfg: backends.Config{ClientKey: password}, wantWarn: true},
		{name: "wrong password", cfg: backends.Config{Password: "wrong-" + password}, wantErr: "WRONGPASS"},
		{name: "no password", wantErr: "NOAUTH"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := adm.Do(t.Context(), adm.B().Del().Key("/pw/b").Build()).Error(); err != nil {
				t.Fatal(err)
			}
			set(t, "/pw/a", "1")
			var logs bytes.Buffer
			cfg := tc.cfg
			cfg.Nodes = []string{s.Addr()}
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			c, err := redis.New(t.Context(), cfg, redis.Options{})
			if err == nil {
				t.Cleanup(func() { c.Close() })
			}
			switch {
			case tc.wantErr != "" && err == nil:
				t.Fatalf("New with %s succeeded, want an error (%s)", tc.name, tc.wantErr)
			case tc.wantErr != "":
				t.Logf("New: %v", err)
				for _, want := range []string{s.Addr(), tc.wantErr} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not name %s", err, want)
					}
				}
			case err != nil:
				t.Fatalf("New: %v", err)
			default:
				snap, err := c.Get(t.Context(), []string{"/pw"})
				if err != nil {
					t.Fatalf("Get: %v", err)
				}
				if fmt.Sprint(snap.KVs) != fmt.Sprint(map[string]string{"/pw/a": "1"}) {
					t.Errorf("Get(/pw) = %v, want /pw/a=1", snap.KVs)
				}
				ch, err := c.Watch(t.Context(), "/pw", 0)
				if err != nil {
					t.Fatal(err)
				}
				view := maps(snap.KVs)
				set(t, "/pw/b", tc.name)
				recv(t, ch, view, map[string]string{"/pw/a": "1", "/pw/b": tc.name})
			}
			warned := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "using -client-key as the Redis password")
			if warned != tc.wantWarn {
				t.Errorf("WARN about -client-key as the password: %v, want %v; log:\n%s", warned, tc.wantWarn, logs.String())
			}
			if err != nil && strings.Contains(err.Error(), password) {
				t.Errorf("the error holds the password: %v", err)
			}
			if strings.Contains(logs.String(), password) {
				t.Errorf("the log holds the password:\n%s", logs.String())
			}
		})
	}
}

// TestReadAfterIdleClose: connections the server closed while they sat
// idle (CLIENT KILL here; the server's timeout setting, a proxy's idle
// cut or a restart do the same) are replaced by the next read instead of
// failing it with EOF: without that, every -interval run longer than the
// server's timeout failed.
func TestReadAfterIdleClose(t *testing.T) {
	needServer(t)
	do(t, "SET", "/idle/a", "1")
	do(t, "HSET", "/idle/h", "f", "v")
	c := newClient(t, nil, redis.Options{})
	want := fmt.Sprint(map[string]string{"/idle/a": "1", "/idle/h/f": "v"})
	for round := range 5 {
		if _, err := c.Get(t.Context(), []string{"/idle"}); err != nil {
			t.Fatalf("round %d: Get: %v", round, err)
		}
		do(t, "CLIENT", "KILL", "TYPE", "normal") // every connection but the admin's
		lists := c.Stats().Lists
		snap, err := c.Get(t.Context(), []string{"/idle"})
		if err != nil {
			t.Fatalf("round %d: Get after the server closed the connections: %v", round, err)
		}
		if got := fmt.Sprint(snap.KVs); got != want {
			t.Errorf("round %d: Get = %s, want %s", round, got, want)
		}
		t.Logf("round %d: %d SCAN walks for one Get", round, c.Stats().Lists-lists)
	}
}

// TestTLS: against a server's TLS port that demands a client certificate,
// the CA and a client certificate (-client-key then being the certificate's
// key, not confd's password) read and watch, the tracking connection
// included, and so does rediss:// with -client-insecure; each failing
// handshake (another CA, no client certificate, TLS to the plain port)
// and TLS settings for a Unix socket fail New naming the node.
func TestTLS(t *testing.T) {
	pki, err := testserver.GenerateTLS(t.TempDir(), "confit")
	if err != nil {
		t.Fatal(err)
	}
	other, err := testserver.GenerateTLS(t.TempDir(), "other")
	if err != nil {
		t.Fatal(err)
	}
	s := testserver.Redis(t, testserver.RedisOptions{TLS: pki, ClientAuth: true})
	adm, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{s.Addr()}, DisableCache: true, ForceSingleClient: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(adm.Close)
	set := func(t *testing.T, k, v string) {
		t.Helper()
		if err := adm.Do(t.Context(), adm.B().Set().Key(k).Value(v).Build()).Error(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}
	set(t, "/tls/a", "1")
	cert := backends.Config{ClientCert: pki.ClientCert, ClientKey: pki.ClientKey}
	tests := []struct {
		name    string
		node    string
		cfg     backends.Config
		wantErr string // "" for success
	}{
		{name: "CA and client certificate", node: s.SecureAddr(), cfg: backends.Config{ClientCAKeys: pki.CA, ClientCert: cert.ClientCert, ClientKey: cert.ClientKey}},
		{name: "rediss and client-insecure", node: "rediss://" + s.SecureAddr(), cfg: backends.Config{ClientInsecure: true, ClientCert: cert.ClientCert, ClientKey: cert.ClientKey}},
		{name: "another CA", node: s.SecureAddr(), cfg: backends.Config{ClientCAKeys: other.CA, ClientCert: cert.ClientCert, ClientKey: cert.ClientKey}, wantErr: "certificate signed by unknown authority"},
		{name: "no client certificate", node: s.SecureAddr(), cfg: backends.Config{ClientCAKeys: pki.CA}, wantErr: s.SecureAddr()},
		{name: "TLS to the plain port", node: s.Addr(), cfg: backends.Config{ClientCAKeys: pki.CA, ClientCert: cert.ClientCert, ClientKey: cert.ClientKey}, wantErr: "no answer to the TLS handshake"},
		{name: "Unix socket", node: "/run/none.sock", cfg: backends.Config{ClientCAKeys: pki.CA}, wantErr: "TLS settings given for a Unix socket"},
		{name: "bad CA file", node: s.SecureAddr(), cfg: backends.Config{ClientCAKeys: pki.ClientKey}, wantErr: "redis: setting client-ca-keys"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Nodes = []string{tc.node}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			c, err := redis.New(ctx, cfg, redis.Options{})
			if tc.wantErr != "" {
				if err == nil {
					c.Close()
					t.Fatalf("New succeeded, want an error (%s)", tc.wantErr)
				}
				t.Logf("New: %v", err)
				if !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "redis: ") {
					t.Fatalf("New: %v; want a redis error holding %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer c.Close()
			snap, err := c.Get(ctx, []string{"/tls"})
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			ch, err := c.Watch(ctx, "/tls", 0)
			if err != nil {
				t.Fatal(err)
			}
			view := maps(snap.KVs)
			v := fmt.Sprint("v", i)
			set(t, "/tls/a", v)
			recv(t, ch, view, map[string]string{"/tls/a": v})
		})
	}
}
