// Package backendtest is the conformance suite every confit backend passes.
//
// A backend's test calls Run with a function that builds a fresh Harness for
// each case: the Backend under test plus helpers that write to the same
// store behind the backend's back (Put, Delete, Restart). Caps says which
// optional behaviours the store has, so stores without watches, deletes or
// binary values skip only the cases that cannot apply, with a message.
//
// Every case writes below its own random namespace ("/ct" + random letters),
// so one store may be shared by all cases and by repeated runs. Names are
// lowercase letters only, so key-to-name mappings such as the env backend's
// work too. Waits are bounded by deadlines; nothing asserts on wall-clock
// durations.
package backendtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confit-dev/confit/backends"
	"go.uber.org/goleak"
)

// Caps lists the optional behaviours of a store. The zero value describes a
// read-only store without revisions, such as env.
type Caps struct {
	// Watch: Watch delivers Updates. When false, Watch must return
	// backends.ErrWatchUnsupported and a nil channel.
	Watch bool
	// Delete: Harness.Delete is set and removes one key.
	Delete bool
	// Binary: values may hold arbitrary bytes, NUL and invalid UTF-8
	// included.
	Binary bool
	// Revisions: Snapshot.Rev and Update.Rev are store revisions that grow
	// with every write.
	Revisions bool
	// Replay: Watch(ctx, prefix, rev) delivers changes made after rev even
	// when they happened before Watch was called (etcd, Consul).
	Replay bool
	// Snapshot: Get of several prefixes is one atomic read even under
	// concurrent writes.
	Snapshot bool
	// History: Watch delivers every intermediate change, in store order
	// (etcd's event log). When false (Consul blocking queries diff
	// successive states), rapid writes may collapse and only the converged
	// view is checked.
	History bool
}

// Harness is one backend under test and the means to change its store.
type Harness struct {
	// Backend is the backend under test. Run closes it when the case ends
	// (Close is called at least once; it must tolerate a second call).
	Backend backends.Backend
	// Put writes key (absolute, clean) = value directly to the store,
	// failing t on error. Called only from the test goroutine.
	Put func(t *testing.T, key, value string)
	// Delete removes key from the store, failing t on error. Required when
	// Caps.Delete is set.
	Delete func(t *testing.T, key string)
	// Restart stops and starts the store's server, keeping its data, and
	// returns when the server is healthy again. Nil when not supported.
	Restart func(t *testing.T)
	// Caps says which cases apply.
	Caps Caps
}

// wait bounds every wait for a watch delivery. It is a deadline, not an
// expectation: a healthy store delivers in milliseconds.
const wait = 20 * time.Second

// Run runs the conformance suite. newBackend is called once per case, from
// within that case's subtest, and must return a fresh Backend; Run closes it
// when the case ends.
//
// The Close case checks with goleak that Close releases every goroutine the
// backend started: it snapshots the goroutines alive before calling
// newBackend. Whatever Put, Delete and Restart rely on (an admin client, a
// server process) must therefore be started before Run, not by newBackend.
func Run(t *testing.T, newBackend func(t *testing.T) Harness) {
	cases := []struct {
		name string
		fn   func(t *testing.T, h Harness, ns string)
	}{
		{"GetSeveralPrefixes", testGetSeveralPrefixes},
		{"GetMissing", testGetMissing},
		{"KeyBoundaries", testKeyBoundaries},
		{"Values", testValues},
		{"ManyKeys", testManyKeys},
		{"Delete", testDelete},
		{"ConcurrentGet", testConcurrentGet},
		{"SnapshotConsistency", testSnapshotConsistency},
		{"WatchUnsupported", testWatchUnsupported},
		{"Watch", testWatch},
		{"WatchFromNow", testWatchFromNow},
		{"WatchFromRevision", testWatchFromRevision},
		{"WatchContextCancel", testWatchContextCancel},
		{"WatchRestart", testWatchRestart},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newBackend(t)
			t.Cleanup(func() { _ = h.Backend.Close() })
			tc.fn(t, h, namespace())
		})
	}
	// The leak check runs alone so that goroutines from other cases' clean-up
	// cannot be blamed on it.
	t.Run("Close", func(t *testing.T) {
		testClose(t, newBackend)
	})
}

// namespace returns a fresh root prefix made of lowercase letters.
func namespace() string {
	var b strings.Builder
	b.WriteString("/ct")
	for range 10 {
		b.WriteByte(byte('a' + rand.IntN(26)))
	}
	return b.String()
}

func get(t *testing.T, b backends.Backend, prefixes ...string) backends.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	snap, err := b.Get(ctx, prefixes)
	if err != nil {
		t.Fatalf("Get(%q): %v", prefixes, err)
	}
	if snap.KVs == nil {
		t.Fatalf("Get(%q): KVs is nil, want an empty map at least", prefixes)
	}
	if snap.Keys != nil && !slices.Equal(snap.Keys, slices.Sorted(maps.Keys(snap.KVs))) {
		t.Fatalf("Get(%q): Keys %q are not the sorted keys of KVs", prefixes, snap.Keys)
	}
	return snap
}

func wantKVs(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if maps.Equal(got, want) {
		return
	}
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("%s: missing %q (want %q)", what, k, abbrev(w))
		case g != w:
			t.Errorf("%s: %q = %q, want %q", what, k, abbrev(g), abbrev(w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected %q = %q", what, k, abbrev(g))
		}
	}
}

func abbrev(s string) string {
	if len(s) > 64 {
		return fmt.Sprintf("%s...(%d bytes)", s[:64], len(s))
	}
	return s
}

func putAll(t *testing.T, h Harness, kvs map[string]string) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(kvs)) {
		h.Put(t, k, kvs[k])
	}
}

func testGetSeveralPrefixes(t *testing.T, h Harness, ns string) {
	kvs := map[string]string{
		ns + "/a/x":   "1",
		ns + "/a/y/z": "2",
		ns + "/b/k":   "3",
		ns + "/c/k":   "4",
	}
	putAll(t, h, kvs)
	snap := get(t, h.Backend, ns+"/a", ns+"/b")
	wantKVs(t, "Get(a, b)", snap.KVs, map[string]string{ns + "/a/x": "1", ns + "/a/y/z": "2", ns + "/b/k": "3"})
	if h.Caps.Revisions && snap.Rev == 0 {
		t.Errorf("Get: Rev = 0, want the store revision")
	}
	// Overlapping and repeated prefixes add nothing twice.
	snap = get(t, h.Backend, ns+"/a", ns+"/a/y", ns+"/a")
	wantKVs(t, "Get(a, a/y, a)", snap.KVs, map[string]string{ns + "/a/x": "1", ns + "/a/y/z": "2"})
	// The whole namespace and the root include everything written.
	wantKVs(t, "Get(ns)", get(t, h.Backend, ns).KVs, kvs)
	root := get(t, h.Backend, "/").KVs
	for k, v := range kvs {
		if root[k] != v {
			t.Errorf("Get(/): %q = %q, want %q", k, root[k], v)
		}
	}
}

func testGetMissing(t *testing.T, h Harness, ns string) {
	h.Put(t, ns+"/present/k", "v")
	snap := get(t, h.Backend, ns+"/absent")
	wantKVs(t, "Get(absent)", snap.KVs, map[string]string{})
	snap = get(t, h.Backend, ns+"/absent", ns+"/present/k", ns+"/present/nokey")
	wantKVs(t, "Get(absent, present/k, present/nokey)", snap.KVs, map[string]string{ns + "/present/k": "v"})
}

func testKeyBoundaries(t *testing.T, h Harness, ns string) {
	putAll(t, h, map[string]string{
		ns + "/app/foo":       "exact",
		ns + "/app/foo/x":     "child",
		ns + "/app/foo/x/y":   "grandchild",
		ns + "/app/foobar":    "sibling",
		ns + "/app/foobar/z":  "sibling child",
		ns + "/app/fo":        "shorter",
		ns + "/app/foox/foo":  "other",
		ns + "/appfoo":        "other root",
		ns + "/app/bar/foo/x": "elsewhere",
	})
	wantKVs(t, "Get(app/foo)", get(t, h.Backend, ns+"/app/foo").KVs, map[string]string{
		ns + "/app/foo":     "exact",
		ns + "/app/foo/x":   "child",
		ns + "/app/foo/x/y": "grandchild",
	})
	wantKVs(t, "Get(app/foo/x)", get(t, h.Backend, ns+"/app/foo/x").KVs, map[string]string{
		ns + "/app/foo/x":   "child",
		ns + "/app/foo/x/y": "grandchild",
	})
	wantKVs(t, "Get(app/fo)", get(t, h.Backend, ns+"/app/fo").KVs, map[string]string{
		ns + "/app/fo": "shorter",
	})
	wantKVs(t, "Get(app/f)", get(t, h.Backend, ns+"/app/f").KVs, map[string]string{})
}

func testValues(t *testing.T, h Harness, ns string) {
	values := map[string]string{
		ns + "/v/unicode":   "héllo wörld ✓ 日本語 🙂",
		ns + "/v/multiline": "line one\nline two\r\n\tindented\n",
		ns + "/v/spaces":    "  padded  ",
		ns + "/v/empty":     "",
		ns + "/v/syntax":    `{"a": [1, "b"], "c": "d=e; f'g"} {{ .x }} $HOME`,
		ns + "/v/large":     strings.Repeat("0123456789abcdef", 2048), // 32 KiB
	}
	if h.Caps.Binary {
		values[ns+"/v/binary"] = "nul\x00in\x00between\xff\xfe\x01"
	}
	putAll(t, h, values)
	wantKVs(t, "Get(v)", get(t, h.Backend, ns+"/v").KVs, values)
}

func testManyKeys(t *testing.T, h Harness, ns string) {
	want := map[string]string{}
	for i := range 200 {
		want[fmt.Sprintf("%s/many/k%03d", ns, i)] = fmt.Sprint(i)
	}
	putAll(t, h, want)
	wantKVs(t, "Get(many)", get(t, h.Backend, ns+"/many").KVs, want)
}

func testDelete(t *testing.T, h Harness, ns string) {
	if !h.Caps.Delete {
		t.Skip("store does not support Delete (Caps.Delete false)")
	}
	putAll(t, h, map[string]string{ns + "/d/a": "1", ns + "/d/b": "2", ns + "/d/b/c": "3"})
	h.Delete(t, ns+"/d/a")
	h.Delete(t, ns+"/d/b")
	wantKVs(t, "Get(d) after deletes", get(t, h.Backend, ns+"/d").KVs, map[string]string{ns + "/d/b/c": "3"})
	h.Delete(t, ns+"/d/b/c")
	wantKVs(t, "Get(d) after deleting all", get(t, h.Backend, ns+"/d").KVs, map[string]string{})
}

func testConcurrentGet(t *testing.T, h Harness, ns string) {
	want := map[string]string{ns + "/cc/a": "1", ns + "/cc/b/c": "2"}
	putAll(t, h, want)
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for range 10 {
				snap, err := h.Backend.Get(ctx, []string{ns + "/cc"})
				if err != nil {
					errs <- err
					return
				}
				if !maps.Equal(snap.KVs, want) {
					errs <- fmt.Errorf("got %v, want %v", snap.KVs, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Get: %v", err)
	}
}

// testSnapshotConsistency writes a then b with the same counter while
// another goroutine reads both prefixes in one Get. In any atomic snapshot
// b <= a <= b+1; a reader that reads the prefixes at different times can
// see b > a.
func testSnapshotConsistency(t *testing.T, h Harness, ns string) {
	if !h.Caps.Snapshot {
		t.Skip("store has no atomic multi-prefix reads (Caps.Snapshot false)")
	}
	a, b := ns+"/snap/a", ns+"/snap/b"
	h.Put(t, a+"/n", "0")
	h.Put(t, b+"/n", "0")
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	done := make(chan struct{})
	result := make(chan error, 1)
	go func() {
		// At least one Get runs, however fast the writer is.
		for reads := 0; ; reads++ {
			if reads > 0 {
				select {
				case <-done:
					result <- nil
					return
				default:
				}
			}
			snap, err := h.Backend.Get(ctx, []string{a, b})
			if err != nil {
				result <- err
				return
			}
			var na, nb int
			fmt.Sscan(snap.KVs[a+"/n"], &na)
			fmt.Sscan(snap.KVs[b+"/n"], &nb)
			if nb > na || na > nb+1 {
				result <- fmt.Errorf("inconsistent snapshot at rev %d: a=%d b=%d", snap.Rev, na, nb)
				return
			}
		}
	}()
	for i := 1; i <= 100; i++ {
		h.Put(t, a+"/n", fmt.Sprint(i))
		h.Put(t, b+"/n", fmt.Sprint(i))
	}
	close(done)
	if err := <-result; err != nil {
		t.Errorf("Get(a, b) under concurrent writes: %v", err)
	}
}

func testWatchUnsupported(t *testing.T, h Harness, ns string) {
	if h.Caps.Watch {
		t.Skip("store supports Watch (Caps.Watch true)")
	}
	ch, err := h.Backend.Watch(t.Context(), ns, 0)
	if !errors.Is(err, backends.ErrWatchUnsupported) {
		t.Errorf("Watch: err = %v, want ErrWatchUnsupported", err)
	}
	if ch != nil {
		t.Errorf("Watch: channel = %v, want nil", ch)
	}
}

// watcher reads one watch channel and keeps the receiver's view of it.
type watcher struct {
	t       *testing.T
	h       Harness
	prefix  string
	ch      <-chan backends.Update
	mirror  map[string]string
	changes []backends.Change // every Change seen, in order
	resets  int
	errs    int
	lastRev uint64
}

func startWatch(t *testing.T, ctx context.Context, h Harness, prefix string, rev uint64, initial map[string]string) *watcher {
	t.Helper()
	ch, err := h.Backend.Watch(ctx, prefix, rev)
	if err != nil {
		t.Fatalf("Watch(%q, %d): %v", prefix, rev, err)
	}
	if ch == nil {
		t.Fatalf("Watch(%q, %d): nil channel", prefix, rev)
	}
	return &watcher{t: t, h: h, prefix: prefix, ch: ch, mirror: maps.Clone(initial), lastRev: rev}
}

func (w *watcher) apply(u backends.Update) {
	t := w.t
	t.Helper()
	if u.Prefix != w.prefix {
		t.Errorf("Update.Prefix = %q, want %q", u.Prefix, w.prefix)
	}
	if u.Err != nil {
		w.errs++
		t.Logf("watch %s degraded: %v", w.prefix, u.Err)
		return
	}
	if w.h.Caps.Revisions {
		// Changes always move forward. A Reset is the whole state at Rev:
		// after an outage in which nothing was written it may repeat the
		// last revision.
		if u.Rev < w.lastRev || (u.Rev == w.lastRev && !u.Reset) {
			t.Errorf("Update.Rev = %d after rev %d, want increasing revisions", u.Rev, w.lastRev)
		}
		w.lastRev = max(w.lastRev, u.Rev)
	}
	if u.Reset {
		w.resets++
		if u.KVs == nil {
			t.Errorf("Reset update with nil KVs")
		}
		for k := range u.KVs {
			if !backends.Under(k, w.prefix) {
				t.Errorf("Reset update holds %q, not under %q", k, w.prefix)
			}
		}
		w.mirror = maps.Clone(u.KVs)
		if w.mirror == nil {
			w.mirror = map[string]string{}
		}
		return
	}
	if len(u.Changes) == 0 {
		t.Errorf("Update at rev %d has neither Err, Reset nor Changes", u.Rev)
	}
	for _, c := range u.Changes {
		if !backends.Under(c.Key, w.prefix) {
			t.Errorf("Change of %q delivered to a watch on %q", c.Key, w.prefix)
		}
		w.changes = append(w.changes, c)
		if c.Deleted {
			delete(w.mirror, c.Key)
		} else {
			w.mirror[c.Key] = c.Value
		}
	}
}

// until reads updates until the mirror equals want, failing after the
// deadline.
func (w *watcher) until(want map[string]string) {
	t := w.t
	t.Helper()
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	for !maps.Equal(w.mirror, want) {
		select {
		case u, ok := <-w.ch:
			if !ok {
				t.Fatalf("watch %s: channel closed early; view %v, want %v", w.prefix, w.mirror, want)
			}
			w.apply(u)
		case <-timeout.C:
			t.Fatalf("watch %s: no convergence within %v; view %v, want %v", w.prefix, wait, w.mirror, want)
		}
	}
}

// closed reads until the channel is closed, failing after the deadline.
func (w *watcher) closed() {
	w.t.Helper()
	waitClosed(w.t, w.ch)
}

func waitClosed(t *testing.T, ch <-chan backends.Update) {
	t.Helper()
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout.C:
			t.Fatalf("watch channel not closed within %v", wait)
		}
	}
}

func needWatch(t *testing.T, h Harness) {
	t.Helper()
	if !h.Caps.Watch {
		t.Skip("store cannot watch (Caps.Watch false)")
	}
}

func testWatch(t *testing.T, h Harness, ns string) {
	needWatch(t, h)
	prefix := ns + "/w/foo"
	h.Put(t, prefix+"/old", "before")
	snap := get(t, h.Backend, prefix)
	ctx, cancel := context.WithTimeout(t.Context(), 2*wait)
	defer cancel()
	w := startWatch(t, ctx, h, prefix, snap.Rev, snap.KVs)

	// Writes in quick succession, with a sibling that must not show up.
	k := prefix + "/k"
	h.Put(t, ns+"/w/foobar", "sibling")
	h.Put(t, k, "v1")
	h.Put(t, k, "v2")
	h.Put(t, ns+"/w/foobar/x", "sibling child")
	h.Put(t, prefix, "exact")
	want := map[string]string{prefix + "/old": "before", k: "v2", prefix: "exact"}
	var wantSeq []backends.Change
	wantSeq = append(wantSeq, backends.Change{Key: k, Value: "v1"}, backends.Change{Key: k, Value: "v2"})
	if h.Caps.Delete {
		h.Delete(t, k)
		h.Put(t, k, "v3")
		h.Delete(t, prefix+"/old")
		delete(want, prefix+"/old")
		want[k] = "v3"
		wantSeq = append(wantSeq, backends.Change{Key: k, Deleted: true}, backends.Change{Key: k, Value: "v3"})
	}
	w.until(want)
	if h.Caps.History && w.resets == 0 {
		var gotSeq []backends.Change
		for _, c := range w.changes {
			if c.Key == k {
				gotSeq = append(gotSeq, c)
			}
		}
		if !slices.Equal(gotSeq, wantSeq) {
			t.Errorf("changes of %s:\n got %+v\nwant %+v", k, gotSeq, wantSeq)
		}
	}
	if h.Caps.Revisions {
		if after := get(t, h.Backend, prefix); after.Rev < w.lastRev {
			t.Errorf("Get after watch: Rev %d < last Update.Rev %d", after.Rev, w.lastRev)
		}
	}
	cancel()
	w.closed()
}

func testWatchFromNow(t *testing.T, h Harness, ns string) {
	needWatch(t, h)
	prefix := ns + "/now"
	h.Put(t, prefix+"/before", "1")
	ctx, cancel := context.WithTimeout(t.Context(), 2*wait)
	defer cancel()
	ch, err := h.Backend.Watch(ctx, prefix, 0)
	if err != nil {
		t.Fatalf("Watch(%q, 0): %v", prefix, err)
	}
	// A change made as soon as Watch returns is delivered, and nothing
	// older comes first. A store that cannot replay (Caps.Replay false)
	// starts with a Reset of the prefix read at some point after Watch was
	// called: the change is in it when the read came after the put, or
	// else it follows as a change; the Reset holds what was there before
	// either way.
	h.Put(t, prefix+"/after", "2")
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	reset := false // a Reset without the change came first (Caps.Replay false)
	for {
		select {
		case u, ok := <-ch:
			if !ok {
				t.Fatal("watch closed before the first change")
			}
			if u.Err != nil {
				t.Logf("watch degraded: %v", u.Err)
				continue
			}
			if u.Reset {
				if got := u.KVs[prefix+"/before"]; got != "1" {
					t.Fatalf("Reset misses the key put before Watch: %v", u.KVs)
				}
				if got := u.KVs[prefix+"/after"]; got == "2" {
					return
				}
				if h.Caps.Replay || reset || len(u.KVs) != 1 {
					t.Fatalf("first Reset misses the change made after Watch: %v", u.KVs)
				}
				reset = true
				continue
			}
			if len(u.Changes) == 0 || u.Changes[0] != (backends.Change{Key: prefix + "/after", Value: "2"}) {
				t.Fatalf("first update %+v (after a Reset: %v), want the change made after Watch returned", u, reset)
			}
			return
		case <-timeout.C:
			t.Fatalf("change made after Watch returned not delivered within %v", wait)
		}
	}
}

func testWatchFromRevision(t *testing.T, h Harness, ns string) {
	needWatch(t, h)
	if !h.Caps.Replay {
		t.Skip("store does not replay changes made before Watch (Caps.Replay false)")
	}
	prefix := ns + "/rev"
	h.Put(t, prefix+"/a", "1")
	snap := get(t, h.Backend, prefix)
	// Made after the snapshot but before Watch: must be delivered.
	h.Put(t, prefix+"/b", "2")
	h.Put(t, prefix+"/a", "3")
	ctx, cancel := context.WithTimeout(t.Context(), 2*wait)
	defer cancel()
	w := startWatch(t, ctx, h, prefix, snap.Rev, snap.KVs)
	w.until(map[string]string{prefix + "/a": "3", prefix + "/b": "2"})
	if h.Caps.History && w.resets == 0 {
		want := []backends.Change{{Key: prefix + "/b", Value: "2"}, {Key: prefix + "/a", Value: "3"}}
		if !slices.Equal(w.changes, want) {
			t.Errorf("replayed changes:\n got %+v\nwant %+v", w.changes, want)
		}
	}
}

func testWatchContextCancel(t *testing.T, h Harness, ns string) {
	needWatch(t, h)
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := h.Backend.Watch(ctx, ns+"/cancel", 0)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	cancel()
	waitClosed(t, ch)
	// The backend still works after one watch ended.
	h.Put(t, ns+"/cancel/k", "v")
	wantKVs(t, "Get after cancel", get(t, h.Backend, ns+"/cancel").KVs, map[string]string{ns + "/cancel/k": "v"})
}

func testWatchRestart(t *testing.T, h Harness, ns string) {
	needWatch(t, h)
	if h.Restart == nil {
		t.Skip("harness cannot restart the store (Restart nil)")
	}
	prefix := ns + "/restart"
	h.Put(t, prefix+"/a", "1")
	snap := get(t, h.Backend, prefix)
	ctx, cancel := context.WithTimeout(t.Context(), 4*wait)
	defer cancel()
	w := startWatch(t, ctx, h, prefix, snap.Rev, snap.KVs)
	h.Put(t, prefix+"/b", "2")
	w.until(map[string]string{prefix + "/a": "1", prefix + "/b": "2"})

	h.Restart(t)
	h.Put(t, prefix+"/c", "3")
	if h.Caps.Delete {
		h.Delete(t, prefix+"/a")
	}
	want := map[string]string{prefix + "/b": "2", prefix + "/c": "3"}
	if !h.Caps.Delete {
		want[prefix+"/a"] = "1"
	}
	w.until(want)
	t.Logf("after restart: %d degraded updates, %d resets", w.errs, w.resets)
	// Get works again too.
	wantKVs(t, "Get after restart", get(t, h.Backend, prefix).KVs, want)
}

func testClose(t *testing.T, newBackend func(t *testing.T) Harness) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h := newBackend(t)
	ns := namespace()
	h.Put(t, ns+"/close/k", "v")
	get(t, h.Backend, ns+"/close")
	var chans []<-chan backends.Update
	if h.Caps.Watch {
		for _, p := range []string{ns + "/close", ns + "/close/k", ns + "/other"} {
			ch, err := h.Backend.Watch(t.Context(), p, 0)
			if err != nil {
				t.Fatalf("Watch(%q): %v", p, err)
			}
			chans = append(chans, ch)
		}
	}
	if err := h.Backend.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	// Watch channels are closed before Close returns: whatever is buffered
	// may still be read, then the channel must report closed without
	// blocking.
	for i, ch := range chans {
	drain:
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					break drain
				}
			default:
				t.Errorf("watch %d still open after Close returned", i)
				break drain
			}
		}
	}
	// A second Close must not panic or hang.
	_ = h.Backend.Close()
	// Watch after Close either fails or returns a closed channel.
	if h.Caps.Watch {
		ch, err := h.Backend.Watch(t.Context(), ns+"/close", 0)
		if err == nil {
			if ch == nil {
				t.Errorf("Watch after Close: nil channel and nil error")
			} else {
				waitClosed(t, ch)
			}
		}
	}
}
