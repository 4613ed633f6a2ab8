package consul_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/backends/consul"
	"github.com/confit-dev/confit/internal/testserver"
	"github.com/hashicorp/consul/api"
)

// kvQueries dials real connections and counts the KV blocking queries
// (requests with an index) written on them, by the path they list.
type kvQueries struct {
	mu sync.Mutex
	n  map[string]int
}

func (q *kvQueries) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &kvQueryConn{Conn: conn, q: q}, nil
}

// count returns how many blocking queries listed path ("" for the whole
// store, "ga" for /ga).
func (q *kvQueries) count(path string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n[path]
}

type kvQueryConn struct {
	net.Conn
	q *kvQueries
}

func (c *kvQueryConn) Write(p []byte) (int, error) {
	// net/http writes a request's header in one buffered write.
	const get = "GET /v1/kv/"
	if line, _, ok := bytes.Cut(p, []byte(" HTTP/")); ok && bytes.HasPrefix(line, []byte(get)) {
		path, query, _ := bytes.Cut(line[len(get):], []byte("?"))
		if bytes.Contains(query, []byte("index=")) {
			c.q.mu.Lock()
			if c.q.n == nil {
				c.q.n = map[string]int{}
			}
			c.q.n[string(path)]++
			c.q.mu.Unlock()
		}
	}
	return c.Conn.Write(p)
}

func newGroupClient(t *testing.T, srv *testserver.ConsulServer, q *kvQueries, opts consul.Options) *consul.Client {
	t.Helper()
	opts.DialContext, opts.EmptyGrace = q.Dial, -1
	b, err := consul.New(t.Context(), backends.Config{Backend: "consul", Nodes: []string{srv.Addr()}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// settle waits until the counts stop moving (the queries are parked).
func (q *kvQueries) settle(t *testing.T) {
	t.Helper()
	snap := func() string {
		q.mu.Lock()
		defer q.mu.Unlock()
		return fmt.Sprint(q.n)
	}
	prev := snap()
	for range 50 {
		time.Sleep(100 * time.Millisecond)
		cur := snap()
		if cur == prev {
			return
		}
		prev = cur
	}
	t.Fatalf("blocking queries never settled: %s", prev)
}

// TestKVGroupsDisjoint: watches on prefixes with no first segment in common
// get a blocking query each instead of one on "/", the whole store; a
// change under one wakes only its own; prefixes sharing a first segment
// share a query on their common parent.
func TestKVGroupsDisjoint(t *testing.T) {
	srv := testserver.Consul(t, testserver.ConsulOptions{Dev: true})
	adm := admin(t, srv)
	q := &kvQueries{}
	b := newGroupClient(t, srv, q, consul.Options{})
	put(t, adm, "/ga/x/k", "x0")
	put(t, adm, "/ga/z/k", "z0")
	put(t, adm, "/gb/y/k", "y0")
	put(t, adm, "/elsewhere/k", "e0")
	mx, my, mz := watch(t, b, "/ga/x"), watch(t, b, "/gb/y"), watch(t, b, "/ga/z")
	put(t, adm, "/ga/x/k", "x1")
	put(t, adm, "/ga/z/k", "z1")
	put(t, adm, "/gb/y/k", "y1")
	mx.until("x1", func(kvs map[string]string) bool { return kvs["/ga/x/k"] == "x1" })
	mz.until("z1", func(kvs map[string]string) bool { return kvs["/ga/z/k"] == "z1" })
	my.until("y1", func(kvs map[string]string) bool { return kvs["/gb/y/k"] == "y1" })
	q.settle(t)
	// /ga/x ran alone until /ga/z joined it; /gb/y is alone.
	ga, gb := q.count("ga"), q.count("gb/y")
	if ga == 0 || gb == 0 {
		t.Fatalf("want blocking queries on ga and gb/y; got %v", q.n)
	}
	for i := range 20 {
		v := fmt.Sprintf("y%d", i+2)
		put(t, adm, "/gb/y/k", v)
		my.until(v, func(kvs map[string]string) bool { return kvs["/gb/y/k"] == v })
		put(t, adm, "/elsewhere/k", v)
	}
	q.settle(t)
	if n := q.count("ga"); n != ga {
		t.Errorf("20 changes under /gb and /elsewhere re-queried /ga %d times, want 0", n-ga)
	}
	if n := q.count("gb/y"); n < gb+20 {
		t.Errorf("/gb queried %d times for 20 changes, want at least 20", n-gb)
	}
	if n := q.count(""); n != 0 {
		t.Errorf("%d blocking queries listed the whole store, want 0", n)
	}
	if n := q.count("ga/z"); n != 0 {
		t.Errorf("%d blocking queries on ga/z: prefixes with a common first segment share one", n)
	}
}

// TestKVGroupsMerge: beyond MaxKVQueries, and when a service query needs a
// connection, the nearest KV queries merge into one on their common parent;
// changes made while they merge all arrive, and the merged queries end.
func TestKVGroupsMerge(t *testing.T) {
	srv := testserver.Consul(t, testserver.ConsulOptions{Dev: true})
	adm := admin(t, srv)

	for _, tc := range []struct {
		name string
		opts consul.Options
		// more are the watches added once the first two run in groups of
		// their own; the last one forces the merge.
		more []string
	}{
		{"beyond MaxKVQueries", consul.Options{MaxKVQueries: 2}, []string{"/m3/k"}},
		{"a service needs the connection", consul.Options{MaxBlockingConns: 3}, []string{consul.ServicePrefix + "/web", consul.ServicePrefix + "/api"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := &kvQueries{}
			var logs lockedLog
			tc.opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			b := newGroupClient(t, srv, q, tc.opts)
			root := fmt.Sprintf("/merge%d", len(tc.more))
			p1, p2 := root+"a/k", root+"b/k"
			put(t, adm, p1+"/v", "0")
			put(t, adm, p2+"/v", "0")
			m1, m2 := watch(t, b, p1), watch(t, b, p2)
			q.settle(t)
			if q.count(p1[1:]) == 0 || q.count(p2[1:]) == 0 {
				t.Fatalf("want a blocking query on each of %s and %s; got %v", p1, p2, q.n)
			}
			// Keep changing both while the merge happens.
			ctx, stop := context.WithCancel(t.Context())
			var wg sync.WaitGroup
			last := make([]string, 2)
			for i, p := range []string{p1, p2} {
				wg.Go(func() {
					for n := 0; ctx.Err() == nil; n++ {
						v := fmt.Sprintf("c%d", n)
						if _, err := adm.KV().Put(&api.KVPair{Key: p[1:] + "/v", Value: []byte(v)}, nil); err != nil {
							t.Errorf("put %s: %v", p, err)
							return
						}
						last[i] = v
						time.Sleep(5 * time.Millisecond)
					}
				})
			}
			time.Sleep(100 * time.Millisecond)
			for _, p := range tc.more {
				if _, err := b.Watch(t.Context(), p, 0); err != nil {
					t.Fatalf("Watch(%s): %v", p, err)
				}
			}
			time.Sleep(200 * time.Millisecond)
			stop()
			wg.Wait()
			m1.until("the last change", func(kvs map[string]string) bool { return kvs[p1+"/v"] == last[0] })
			m2.until("the last change", func(kvs map[string]string) bool { return kvs[p2+"/v"] == last[1] })
			q.settle(t)
			before := map[string]int{"a": q.count(p1[1:]), "b": q.count(p2[1:]), "merged": q.count("")}
			if before["merged"] == 0 {
				t.Fatalf("no blocking query on the common parent / after the merge: %v", q.n)
			}
			if n := strings.Count(logs.String(), "share one query on /"); n != 1 {
				t.Errorf("%d warnings of the store-wide query, want 1; log:\n%s", n, logs.String())
			}
			put(t, adm, p1+"/v", "after")
			put(t, adm, p2+"/v", "after")
			m1.until("after", func(kvs map[string]string) bool { return kvs[p1+"/v"] == "after" })
			m2.until("after", func(kvs map[string]string) bool { return kvs[p2+"/v"] == "after" })
			q.settle(t)
			if q.count(p1[1:]) != before["a"] || q.count(p2[1:]) != before["b"] {
				t.Errorf("the merged queries still run: %v (before the last changes %v)", q.n, before)
			}
		})
	}
}

// TestKVGroupsRetire: a group whose last watch stops ends, and its slot
// serves the next prefix that shares nothing with the others.
func TestKVGroupsRetire(t *testing.T) {
	srv := testserver.Consul(t, testserver.ConsulOptions{Dev: true})
	adm := admin(t, srv)
	q := &kvQueries{}
	b := newGroupClient(t, srv, q, consul.Options{MaxKVQueries: 2})
	put(t, adm, "/r1/k", "1")
	put(t, adm, "/r2/k", "1")
	put(t, adm, "/r3/k", "1")
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := b.Watch(ctx, "/r1", 0)
	if err != nil {
		t.Fatal(err)
	}
	m2 := watch(t, b, "/r2")
	q.settle(t)
	cancel()
	for range ch {
	}
	m3 := watch(t, b, "/r3")
	put(t, adm, "/r1/k", "2")
	put(t, adm, "/r3/k", "2")
	put(t, adm, "/r2/k", "2")
	m3.until("2", func(kvs map[string]string) bool { return kvs["/r3/k"] == "2" })
	m2.until("2", func(kvs map[string]string) bool { return kvs["/r2/k"] == "2" })
	q.settle(t)
	if n := q.count(""); n != 0 {
		t.Errorf("%d blocking queries on the whole store: the stopped group's slot was not freed", n)
	}
	if q.count("r3") == 0 {
		t.Errorf("no blocking query of its own on /r3: %v", q.n)
	}
}

// TestKVGroupsSplit: a dense group (20 prefixes under /sp) is split by
// string prefix once its query answers, into one query listing "sp/r0" and
// one "sp/r1" (Consul lists by string prefix); a change then wakes only its
// half, and changes made while the split happens all arrive. A prefix that
// neither half covers merges them and the group splits anew, three ways
// (sp/r0, sp/r1, sp/x); a new group that needs a query undoes the split
// and gets one of its own instead of sharing one on /.
func TestKVGroupsSplit(t *testing.T) {
	srv := testserver.Consul(t, testserver.ConsulOptions{Dev: true})
	adm := admin(t, srv)
	key := func(i int) string { return fmt.Sprintf("/sp/r%02d", i) }

	for _, tc := range []struct {
		name   string
		opts   consul.Options
		undo   string // the watch that undoes the split
		merged string // the path its query then lists
	}{
		{"a prefix neither half covers", consul.Options{}, "/sp/x", "sp/x"},
		{"a new group needs the query", consul.Options{MaxKVQueries: 2}, "/spother", "spother"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := &kvQueries{}
			b := newGroupClient(t, srv, q, tc.opts)
			ms := make([]*mirror, 20)
			for i := range ms {
				put(t, adm, key(i)+"/v", "0")
			}
			put(t, adm, tc.undo+"/v", "0")
			for i := range ms {
				ms[i] = watch(t, b, key(i))
			}
			// The first change wakes the group's one query; the split
			// follows. r15 keeps changing meanwhile.
			ctx, stop := context.WithCancel(t.Context())
			var wg sync.WaitGroup
			var last string
			wg.Go(func() {
				for n := 0; ctx.Err() == nil; n++ {
					v := fmt.Sprintf("c%d", n)
					if _, err := adm.KV().Put(&api.KVPair{Key: key(15)[1:] + "/v", Value: []byte(v)}, nil); err != nil {
						t.Errorf("put: %v", err)
						return
					}
					last = v
					time.Sleep(5 * time.Millisecond)
				}
			})
			put(t, adm, key(0)+"/v", "1")
			ms[0].until("1", func(kvs map[string]string) bool { return kvs[key(0)+"/v"] == "1" })
			time.Sleep(300 * time.Millisecond)
			stop()
			wg.Wait()
			ms[15].until("the last change", func(kvs map[string]string) bool { return kvs[key(15)+"/v"] == last })
			q.settle(t)
			lo, hi := q.count("sp/r0"), q.count("sp/r1")
			if lo == 0 || hi == 0 {
				t.Fatalf("want blocking queries on sp/r0 and sp/r1 after the split; got %v", q.n)
			}
			for i := range 10 {
				v := fmt.Sprintf("lo%d", i)
				put(t, adm, key(5)+"/v", v)
				ms[5].until(v, func(kvs map[string]string) bool { return kvs[key(5)+"/v"] == v })
			}
			put(t, adm, key(12)+"/v", "hi")
			ms[12].until("hi", func(kvs map[string]string) bool { return kvs[key(12)+"/v"] == "hi" })
			q.settle(t)
			if n := q.count("sp/r0") - lo; n < 10 {
				t.Errorf("sp/r0 queried %d times for 10 changes under it, want at least 10", n)
			}
			if n := q.count("sp/r1") - hi; n > 2 {
				t.Errorf("10 changes under sp/r0 woke sp/r1's query: %d queries, want at most 2 (one change of its own)", n)
			}

			mu := watch(t, b, tc.undo)
			merged := q.count(tc.merged)
			for i, k := range []string{key(5), key(12), tc.undo} {
				v := fmt.Sprintf("after%d", i)
				put(t, adm, k+"/v", v)
				m := mu
				if i < 2 {
					m = ms[[]int{5, 12}[i]]
				}
				m.until(v, func(kvs map[string]string) bool { return kvs[k+"/v"] == v })
			}
			q.settle(t)
			if q.count(tc.merged) == merged {
				t.Errorf("no blocking query on %s after %s was watched: %v", tc.merged, tc.undo, q.n)
			}
			if n := q.count(""); n != 0 {
				t.Errorf("%d blocking queries on the whole store, want 0", n)
			}
		})
	}
}
