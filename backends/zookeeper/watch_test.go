package zookeeper_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/backends/zookeeper"
	"github.com/confit-dev/confit/internal/testserver"
	"github.com/go-zookeeper/zk"
)

// testLogger logs to t at debug level.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// viewer applies the updates of one watch to its own view of the prefix.
type viewer struct {
	mu         sync.Mutex
	kvs        map[string]string
	updates    int
	errs       int
	lastErr    error
	emptyReset bool // a Reset with no values: the files would have emptied
	poke       chan struct{}
}

// watchView watches prefix from snap and keeps a view until ctx ends.
func watchView(ctx context.Context, t *testing.T, c *zookeeper.Client, prefix string, snap backends.Snapshot) *viewer {
	t.Helper()
	ch, err := c.Watch(ctx, prefix, snap.RevOf(prefix))
	if err != nil {
		t.Fatal(err)
	}
	v := &viewer{kvs: map[string]string{}, poke: make(chan struct{}, 1)}
	for k, val := range snap.KVs {
		if backends.Under(k, prefix) {
			v.kvs[k] = val
		}
	}
	go func() {
		for u := range ch {
			v.mu.Lock()
			v.updates++
			switch {
			case u.Err != nil:
				v.errs++
				v.lastErr = u.Err
			case u.Reset:
				v.emptyReset = v.emptyReset || len(u.KVs) == 0
				v.kvs = maps.Clone(u.KVs)
			default:
				for _, ch := range u.Changes {
					if ch.Deleted {
						delete(v.kvs, ch.Key)
					} else {
						v.kvs[ch.Key] = ch.Value
					}
				}
			}
			v.mu.Unlock()
			select {
			case v.poke <- struct{}{}:
			default:
			}
		}
	}()
	return v
}

// getView reads prefix with Get and watches it from there.
func getView(t *testing.T, c *zookeeper.Client, prefix string) (backends.Snapshot, *viewer) {
	t.Helper()
	snap := get(t, c, prefix)
	return snap, watchView(t.Context(), t, c, prefix, snap)
}

// get reads prefix.
func get(t *testing.T, c *zookeeper.Client, prefix string) backends.Snapshot {
	t.Helper()
	snap, err := c.Get(t.Context(), []string{prefix})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// wait waits up to 30 s until cond holds for the view.
func (v *viewer) wait(t *testing.T, what string, cond func(kvs map[string]string) bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		v.mu.Lock()
		ok := cond(v.kvs)
		v.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-v.poke:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			v.mu.Lock()
			defer v.mu.Unlock()
			t.Fatalf("%s: not seen within 30 s; view %v", what, v.kvs)
		}
	}
}

// equals is a wait condition: the view is exactly want.
func equals(want map[string]string) func(map[string]string) bool {
	return func(kvs map[string]string) bool { return maps.Equal(kvs, want) }
}

// waitWatches waits until the client has n watches outstanding and the
// server holds them (it may hold a watch the client set a moment later
// than the client counts it).
func waitWatches(t *testing.T, c *zookeeper.Client, srv *testserver.ZooKeeperServer, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for c.WatchCount() != n {
		if time.Now().After(deadline) {
			t.Fatalf("watches outstanding: %d, want %d", c.WatchCount(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	waitServerWatches(t, srv, n)
}

// waitServerWatches waits until the server holds n watches.
func waitServerWatches(t *testing.T, srv *testserver.ZooKeeperServer, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for serverWatches(t, srv) != n {
		if time.Now().After(deadline) {
			t.Fatalf("server watches: %d, want %d", serverWatches(t, srv), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// serverWatches returns the watches the server holds (mntr).
func serverWatches(t *testing.T, srv *testserver.ZooKeeperServer) int {
	t.Helper()
	n, err := srv.Watches(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// createMany creates the znodes of keys (parents first, as listed) with
// value v, 100 per multi-op.
func createMany(t *testing.T, adm *zk.Conn, keys []string, v string) {
	t.Helper()
	for len(keys) > 0 {
		n := min(100, len(keys))
		var ops []any
		for _, k := range keys[:n] {
			ops = append(ops, &zk.CreateRequest{Path: k, Data: []byte(v), Acl: zk.WorldACL(zk.PermAll)})
		}
		if _, err := adm.Multi(ops...); err != nil {
			t.Fatalf("create %s...: %v", keys[0], err)
		}
		keys = keys[n:]
	}
}

func reads(c *zookeeper.Client) uint64 { return c.Metrics()["reads_total"] }

// settledReads is reads(c) once it has not moved for 200 ms (10 s at
// most): the re-arm after a watch event may still be on its way when the
// view and the watch counts already look final, and its read belongs to
// that change, not to the next one.
func settledReads(c *zookeeper.Client) uint64 {
	r := reads(c)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		n := reads(c)
		if n == r {
			return n
		}
		r = n
	}
	return r
}

// Each kind of change costs the reads of what changed, never a walk of
// the prefix, and leaves one data and one child watch per znode.
func TestWatchIncremental(t *testing.T) {
	srv := testserver.ZooKeeper(t, testserver.ZooKeeperOptions{})
	adm := admin(t, srv)
	put(t, adm, "/inc/a", "1")
	put(t, adm, "/inc/b/c", "2")
	for i := range 50 {
		put(t, adm, fmt.Sprintf("/inc/many/k%02d", i), "x")
	}
	c := newClient(t, srv, zookeeper.Options{})
	snap := get(t, c, "/inc")
	want := maps.Clone(snap.KVs)
	v := watchView(t.Context(), t, c, "/inc", snap)
	znodes := 1 + 1 + 2 + 1 + 50 // /inc, a, b, b/c, many, many/k*
	waitWatches(t, c, srv, 2*znodes)

	for _, tc := range []struct {
		name   string
		do     func()
		edit   func(kvs map[string]string)
		znodes int    // znodes under /inc after the change
		reads  uint64 // requests the change costs
	}{
		{"set a leaf", func() { put(t, adm, "/inc/a", "1b") },
			func(kvs map[string]string) { kvs["/inc/a"] = "1b" }, znodes, 1},
		{"set a leaf deeper", func() { put(t, adm, "/inc/b/c", "2b") },
			func(kvs map[string]string) { kvs["/inc/b/c"] = "2b" }, znodes, 1},
		{"add a leaf", func() { put(t, adm, "/inc/b/d", "3") },
			// ChildrenW of /inc/b, then GetW and ChildrenW of d.
			func(kvs map[string]string) { kvs["/inc/b/d"] = "3" }, znodes + 1, 3},
		{"delete a leaf", func() { del(t, adm, "/inc/b/d") },
			// d's data watch fires (no read), then /inc/b's child watch.
			func(kvs map[string]string) { delete(kvs, "/inc/b/d") }, znodes, 1},
		{"a leaf becomes a parent", func() { put(t, adm, "/inc/a/x", "4") },
			func(kvs map[string]string) { delete(kvs, "/inc/a"); kvs["/inc/a/x"] = "4" }, znodes + 1, 3},
		{"delete a subtree's last leaf", func() { del(t, adm, "/inc/a/x") },
			func(kvs map[string]string) { delete(kvs, "/inc/a/x"); kvs["/inc/a"] = "1b" }, znodes, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r0 := settledReads(c)
			tc.do()
			tc.edit(want)
			v.wait(t, tc.name, equals(want))
			waitWatches(t, c, srv, 2*tc.znodes)
			if got := settledReads(c) - r0; got != tc.reads {
				t.Errorf("requests for the change: %d, want %d", got, tc.reads)
			}
		})
	}
	if n := c.Metrics()["relists_total"]; n != 0 {
		t.Errorf("relists: %d, want 0", n)
	}

	t.Run("prefix deleted and created again", func(t *testing.T) {
		for _, k := range []string{"/inc/a", "/inc/b/c", "/inc/b"} {
			del(t, adm, k)
		}
		for i := range 50 {
			del(t, adm, fmt.Sprintf("/inc/many/k%02d", i))
		}
		del(t, adm, "/inc/many")
		del(t, adm, "/inc")
		v.wait(t, "everything deleted", equals(map[string]string{}))
		waitWatches(t, c, srv, 1) // the exists watch on /inc
		put(t, adm, "/inc/new", "n")
		v.wait(t, "the prefix created again", equals(map[string]string{"/inc/new": "n"}))
		waitWatches(t, c, srv, 4)
	})
}

// A prefix that does not exist yet is watched with one exists watch and
// loaded when it is created.
func TestWatchPrefixCreatedLater(t *testing.T) {
	srv := testserver.ZooKeeper(t, testserver.ZooKeeperOptions{})
	adm := admin(t, srv)
	c := newClient(t, srv, zookeeper.Options{})
	_, v := getView(t, c, "/later")
	waitWatches(t, c, srv, 1)
	if n := serverWatches(t, srv); n != 1 {
		t.Errorf("server watches: %d, want 1 (exists)", n)
	}
	put(t, adm, "/later/x/y", "1")
	v.wait(t, "/later/x/y", equals(map[string]string{"/later/x/y": "1"}))
	waitWatches(t, c, srv, 6)
}

// 200 watches of one prefix (and some of a prefix below it) share one
// tree cache: one set of ZooKeeper watches, one read per change, and every
// watch sees every change under its prefix.
func TestWatch200OnePrefix(t *testing.T) {
	srv := testserver.ZooKeeper(t, testserver.ZooKeeperOptions{})
	adm := admin(t, srv)
	keys := []string{"/shared", "/shared/sub"}
	for i := range 100 {
		keys = append(keys, fmt.Sprintf("/shared/k%03d", i), fmt.Sprintf("/shared/sub/k%03d", i))
	}
	createMany(t, adm, keys, "0")
	c := newClient(t, srv, zookeeper.Options{})
	snap := get(t, c, "/shared")
	var views, subViews []*viewer
	for i := range 200 {
		if i%10 == 9 {
			subViews = append(subViews, watchView(t.Context(), t, c, "/shared/sub", snap))
		} else {
			views = append(views, watchView(t.Context(), t, c, "/shared", snap))
		}
	}
	waitWatches(t, c, srv, 2*len(keys))
	r0 := reads(c)
	put(t, adm, "/shared/sub/k007", "new")
	for _, v := range append(views, subViews...) {
		v.wait(t, "/shared/sub/k007=new", func(kvs map[string]string) bool { return kvs["/shared/sub/k007"] == "new" })
	}
	put(t, adm, "/shared/k001", "new")
	for _, v := range views {
		v.wait(t, "/shared/k001=new", func(kvs map[string]string) bool { return kvs["/shared/k001"] == "new" })
	}
	if got := reads(c) - r0; got != 2 {
		t.Errorf("requests for 2 changes seen by 200 watches: %d, want 2", got)
	}
	if n := serverWatches(t, srv); n != 2*len(keys) {
		t.Errorf("server watches: %d, want %d", n, 2*len(keys))
	}
	for _, v := range subViews {
		v.mu.Lock()
		_, leaked := v.kvs["/shared/k001"]
		v.mu.Unlock()
		if leaked {
			t.Errorf("a watch of /shared/sub saw /shared/k001")
		}
	}
}

// A write made between an event and the read it causes (the watch not yet
// re-armed) is not lost: the read sees it, or the re-armed watch fires.
func TestWatchChangeDuringRearm(t *testing.T) {
	srv := testserver.ZooKeeper(t, testserver.ZooKeeperOptions{})
	adm := admin(t, srv)
	put(t, adm, "/rearm/k", "0")
	put(t, adm, "/rearm/dir/a", "a")
	var once sync.Map
	zookeeper.SetBeforeRead(func(ev zk.Event) {
		if _, done := once.LoadOrStore(ev.Type, true); done {
			return
		}
		switch ev.Type {
		case zk.EventNodeDataChanged:
			if _, err := adm.Set("/rearm/k", []byte("2"), -1); err != nil {
				panic(err)
			}
		case zk.EventNodeChildrenChanged:
			if _, err := adm.Create("/rearm/dir/c", []byte("c"), 0, zk.WorldACL(zk.PermAll)); err != nil {
				panic(err)
			}
		}
	})
	t.Cleanup(func() { zookeeper.SetBeforeRead(nil) }) // after the client closes
	c := newClient(t, srv, zookeeper.Options{})
	_, v := getView(t, c, "/rearm")
	waitWatches(t, c, srv, 2*4)
	put(t, adm, "/rearm/k", "1") // the hook writes 2 before the re-read
	v.wait(t, "/rearm/k=2", func(kvs map[string]string) bool { return kvs["/rearm/k"] == "2" })
	put(t, adm, "/rearm/dir/b", "b") // the hook adds c before the re-list
	v.wait(t, "a, b and c", equals(map[string]string{"/rearm/k": "2", "/rearm/dir/a": "a", "/rearm/dir/b": "b", "/rearm/dir/c": "c"}))
	waitWatches(t, c, srv, 2*6)
	// Neither write left the mirror behind the store.
	put(t, adm, "/rearm/k", "3")
	v.wait(t, "/rearm/k=3", func(kvs map[string]string) bool { return kvs["/rearm/k"] == "3" })
}

// The server paused (SIGSTOP) past the session timeout: the session
// expires and every watch is gone. The client is kept off the network
// until the resumed server has expired the session (else the race between
// its reconnection and the server's session expirer decides whether the
// session survives); a delete and a put are made meanwhile. Once a new
// session is up the prefix is listed again and diffed against the mirror,
// so both are seen; meanwhile no Reset empties the view (the last good
// files stay).
func TestWatchSessionExpiry(t *testing.T) {
	srv := testserver.ZooKeeper(t, testserver.ZooKeeperOptions{})
	adm := admin(t, srv)
	put(t, adm, "/pause/a", "1")
	put(t, adm, "/pause/keep", "k")
	var cut atomic.Bool
	zookeeper.SetDialer(func(network, addr string, timeout time.Duration) (net.Conn, error) {
		if cut.Load() {
			return nil, errors.New("cut off by the test")
		}
		return net.DialTimeout(network, addr, timeout)
	})
	t.Cleanup(func() { zookeeper.SetDialer(nil) })
	c := newClient(t, srv, zookeeper.Options{SessionTimeout: 2 * time.Second, Config: backends.Config{Logger: testLogger(t)}})
	zookeeper.SetDialer(nil) // only c is cut off, not the admin's reconnections
	snap, v := getView(t, c, "/pause")
	waitWatches(t, c, srv, 2*3)

	cut.Store(true)
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second) // past the 2 s session timeout: c disconnects
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := adm.Delete("/pause/a", -1); err != nil {
		t.Fatalf("delete /pause/a: %v", err)
	}
	if _, err := adm.Create("/pause/b", []byte("2"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create /pause/b: %v", err)
	}
	waitServerWatches(t, srv, 0) // c's watches went with its connection
	time.Sleep(3 * time.Second)  // the server expires c's session
	v.mu.Lock()
	during := maps.Clone(v.kvs)
	v.mu.Unlock()
	if !maps.Equal(during, snap.KVs) {
		t.Errorf("view while cut off: %v, want the last good one %v", during, snap.KVs)
	}
	cut.Store(false)

	want := map[string]string{"/pause/b": "2", "/pause/keep": "k"}
	v.wait(t, "delete and put made while the session was expired", equals(want))
	waitWatches(t, c, srv, 2*3)
	v.mu.Lock()
	errs, empty, lastErr := v.errs, v.emptyReset, v.lastErr
	v.mu.Unlock()
	m := c.Metrics()
	t.Logf("updates with Err: %d (last: %v), relists: %d", errs, lastErr, m["relists_total"])
	if m["relists_total"] != 1 {
		t.Errorf("relists: %d, want 1 (the session expired)", m["relists_total"])
	}
	if errs == 0 {
		t.Errorf("no degraded Update for the expired session")
	}
	if empty {
		t.Errorf("a Reset with no values during the outage")
	}
	put(t, adm, "/pause/keep", "k2")
	v.wait(t, "a change after the new session", func(kvs map[string]string) bool { return kvs["/pause/keep"] == "k2" })
}

// The shapes of confd #550 (memory grown to 4.9 GB) and #551 (7,684
// goroutines): 3,000 keys, 200 watches of them, many changes. The watch
// count (the client's and the server's) stays at one data and one child
// watch per znode, and the goroutine count stays put.
// It makes the 10,000 changes (about 19 s under -race on a 2-core
// machine), 200 with -short; CONFIT_ZK_LEAK_CHANGES sets another number.
func TestWatchNoLeak(t *testing.T) {
	changes := 10000
	if testing.Short() {
		changes = 200
	}
	if s := os.Getenv("CONFIT_ZK_LEAK_CHANGES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("CONFIT_ZK_LEAK_CHANGES=%q: %v", s, err)
		}
		changes = n
	}
	const groups, perGroup, watchers = 30, 100, 200
	srv := testserver.ZooKeeper(t, testserver.ZooKeeperOptions{})
	adm := admin(t, srv)
	keys := []string{"/leak"}
	var leaves []string
	for g := range groups {
		keys = append(keys, fmt.Sprintf("/leak/g%02d", g))
		for k := range perGroup {
			leaves = append(leaves, fmt.Sprintf("/leak/g%02d/k%03d", g, k))
		}
	}
	keys = append(keys, leaves...)
	createMany(t, adm, keys, "0")
	c := newClient(t, srv, zookeeper.Options{})
	snap := get(t, c, "/leak")
	if len(snap.KVs) != len(leaves) {
		t.Fatalf("read %d keys, want %d", len(snap.KVs), len(leaves))
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Each watch counts what it receives; the first keeps a view.
	var seen [watchers]atomic.Int64
	first := watchView(ctx, t, c, "/leak", snap)
	for i := 1; i < watchers; i++ {
		ch, err := c.Watch(ctx, "/leak", snap.RevOf("/leak"))
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for u := range ch {
				for _, ch := range u.Changes {
					if n, err := strconv.Atoi(ch.Value); err == nil {
						seen[i].Store(max(seen[i].Load(), int64(n)))
					}
				}
			}
		}()
	}
	waitWatches(t, c, srv, 2*len(keys))
	warm := leaves[0]
	put(t, adm, warm, "-1")
	first.wait(t, warm, func(kvs map[string]string) bool { return kvs[warm] == "-1" })
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	watches0, srv0, gor0, heap0 := c.WatchCount(), serverWatches(t, srv), testserver.SettledGoroutines(0), ms.HeapAlloc
	r0 := reads(c)
	start := time.Now()
	for i := 1; i <= changes; i++ {
		k := leaves[(i*7)%len(leaves)]
		val := strconv.Itoa(i)
		if _, err := adm.Set(k, []byte(val), -1); err != nil {
			t.Fatal(err)
		}
		first.wait(t, k+"="+val, func(kvs map[string]string) bool { return kvs[k] == val })
	}
	took := time.Since(start)
	deadline := time.Now().Add(30 * time.Second)
	for i := 1; i < watchers; i++ {
		for seen[i].Load() != int64(changes) {
			if time.Now().After(deadline) {
				t.Fatalf("watch %d: last change seen %d, want %d", i, seen[i].Load(), changes)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	watches1, srv1, gor1, heap1 := c.WatchCount(), serverWatches(t, srv), testserver.SettledGoroutines(gor0+5), ms.HeapAlloc
	m := c.Metrics()
	t.Logf("%d znodes, %d watches of them, %d changes in %v: client watches %d -> %d, server watches (mntr) %d -> %d, goroutines %d -> %d, heap %.1f -> %.1f MB, requests %d (%.2f per change), relists %d",
		len(keys), watchers, changes, took.Round(time.Millisecond), watches0, watches1, srv0, srv1, gor0, gor1,
		float64(heap0)/(1<<20), float64(heap1)/(1<<20), m["reads_total"]-r0, float64(m["reads_total"]-r0)/float64(changes), m["relists_total"])
	want := 2 * len(keys)
	if watches0 != want || watches1 != want {
		t.Errorf("client watches %d before, %d after; want %d (one data and one child watch per znode)", watches0, watches1, want)
	}
	if srv0 != want || srv1 != want {
		t.Errorf("server watches %d before, %d after; want %d", srv0, srv1, want)
	}
	if gor1 > gor0+5 {
		t.Errorf("goroutines grew from %d to %d over %d changes", gor0, gor1, changes)
	}
	if got := m["reads_total"] - r0; got != uint64(changes) {
		t.Errorf("requests: %d for %d changes, want one per change", got, changes)
	}
	if m["relists_total"] != 0 {
		t.Errorf("relists: %d, want 0", m["relists_total"])
	}
}

// A watch whose receiver does not read holds up no other watch of the
// prefix; when it reads again it gets the changes coalesced, ending at the
// store's state.
func TestWatchSlowReceiver(t *testing.T) {
	srv := testserver.ZooKeeper(t, testserver.ZooKeeperOptions{})
	adm := admin(t, srv)
	for i := range 10 {
		put(t, adm, fmt.Sprintf("/slow/k%d", i), "0")
	}
	c := newClient(t, srv, zookeeper.Options{})
	snap := get(t, c, "/slow")
	stalled, err := c.Watch(t.Context(), "/slow", snap.RevOf("/slow"))
	if err != nil {
		t.Fatal(err)
	}
	fast := watchView(t.Context(), t, c, "/slow", snap)
	waitWatches(t, c, srv, 2*11)
	want := maps.Clone(snap.KVs)
	for i := range 100 {
		k, v := fmt.Sprintf("/slow/k%d", i%10), strconv.Itoa(i)
		put(t, adm, k, v)
		want[k] = v
		fast.wait(t, k+"="+v, func(kvs map[string]string) bool { return kvs[k] == v })
	}
	view := maps.Clone(snap.KVs)
	updates := 0
	for !maps.Equal(view, want) {
		select {
		case u := <-stalled:
			updates++
			if u.Err != nil || u.Reset {
				t.Fatalf("unexpected update %+v", u)
			}
			for _, ch := range u.Changes {
				view[ch.Key] = ch.Value
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("the stalled watch's view %v, want %v", view, want)
		}
	}
	t.Logf("100 changes reached the stalled watch in %d updates", updates)
	if updates > 3 {
		t.Errorf("%d updates for a receiver that was not reading; want them coalesced", updates)
	}
}

// A connection lost and re-made within the session timeout needs no
// re-list: the client sets its watches again with the last zxid it saw,
// and the server fires those whose znode changed meanwhile.
func TestWatchReconnectWithinSession(t *testing.T) {
	srv := testserver.ZooKeeper(t, testserver.ZooKeeperOptions{})
	adm := admin(t, srv)
	put(t, adm, "/recon/a", "1")
	put(t, adm, "/recon/b", "1")
	var (
		cut   atomic.Bool
		mu    sync.Mutex
		conns []net.Conn
	)
	zookeeper.SetDialer(func(network, addr string, timeout time.Duration) (net.Conn, error) {
		if cut.Load() {
			return nil, errors.New("cut off by the test")
		}
		conn, err := net.DialTimeout(network, addr, timeout)
		if err == nil {
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
		return conn, err
	})
	t.Cleanup(func() { zookeeper.SetDialer(nil) })
	c := newClient(t, srv, zookeeper.Options{SessionTimeout: 10 * time.Second})
	zookeeper.SetDialer(nil)
	_, v := getView(t, c, "/recon")
	waitWatches(t, c, srv, 2*3)
	cut.Store(true)
	mu.Lock()
	for _, conn := range conns {
		conn.Close()
	}
	mu.Unlock()
	waitServerWatches(t, srv, 0) // the server dropped the connection's watches
	put(t, adm, "/recon/a", "2")
	del(t, adm, "/recon/b")
	put(t, adm, "/recon/c", "3")
	cut.Store(false)
	v.wait(t, "the changes made while disconnected", equals(map[string]string{"/recon/a": "2", "/recon/c": "3"}))
	waitWatches(t, c, srv, 2*3)
	if n := c.Metrics()["relists_total"]; n != 0 {
		t.Errorf("relists: %d, want 0 (the session survived)", n)
	}
}

// Under a chroot the watch maps znode paths back to keys.
func TestWatchChroot(t *testing.T) {
	srv := testserver.ZooKeeper(t, testserver.ZooKeeperOptions{})
	adm := admin(t, srv)
	put(t, adm, "/prod/db/url", "u1")
	c, err := zookeeper.New(t.Context(), zookeeper.Options{Config: backends.Config{Nodes: []string{srv.Addr() + "/prod"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_, v := getView(t, c, "/db")
	v.wait(t, "/db/url=u1", equals(map[string]string{"/db/url": "u1"}))
	waitWatches(t, c, srv, 2*2)
	put(t, adm, "/prod/db/url", "u2")
	put(t, adm, "/prod/db/port", "5432")
	v.wait(t, "the changes under the chroot", equals(map[string]string{"/db/url": "u2", "/db/port": "5432"}))
}

// A watch from rev 0 sees a change made as soon as Watch returns, also
// when its tree cache is new: the change must not be folded unseen into
// the cache's first listing (conformance's WatchFromNow lost it under
// load). Each round is a new prefix, so a new cache.
func TestWatchFromNowNewCache(t *testing.T) {
	srv := testserver.ZooKeeper(t, testserver.ZooKeeperOptions{})
	adm := admin(t, srv)
	c := newClient(t, srv, zookeeper.Options{})
	for i := range 30 {
		prefix := fmt.Sprintf("/now%d", i)
		put(t, adm, prefix+"/before", "1")
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		ch, err := c.Watch(ctx, prefix, 0)
		if err != nil {
			t.Fatal(err)
		}
		put(t, adm, prefix+"/after", "2")
		seen := false
		for !seen {
			select {
			case u := <-ch:
				seen = u.KVs[prefix+"/after"] == "2" || slices.Contains(u.Changes, backends.Change{Key: prefix + "/after", Value: "2"})
			case <-time.After(15 * time.Second):
				t.Fatalf("round %d: the change made after Watch returned was not delivered", i)
			}
		}
		cancel()
	}
}
