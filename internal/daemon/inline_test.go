package daemon

import (
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/backends/memory"
	"github.com/confit-dev/confit/resource"
)

// TestBatchInline: a batch of one resource without commands is committed
// on the loop, any other on the worker; either way the file is written and
// the next change is seen.
func TestBatchInline(t *testing.T) {
	for _, tc := range []struct {
		name       string
		toml       string // of resource a
		change     []string
		wantWorker int32 // batches started on the worker by the change
	}{
		{name: "one resource, no commands", toml: `keys = ["/k"]`, change: []string{"/k/a", "2"}, wantWorker: 0},
		{name: "reload_cmd", toml: "keys = [\"/k\"]\nreload_cmd = \"true\"", change: []string{"/k/a", "2"}, wantWorker: 1},
		{name: "check_cmd", toml: "keys = [\"/k\"]\ncheck_cmd = \"true\"", change: []string{"/k/a", "2"}, wantWorker: 1},
		{name: "two resources", toml: `keys = ["/k"]`, change: []string{"/k/a", "2", "/k/b", "2"}, wantWorker: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var onWorker atomic.Int32
			old := startWorker
			startWorker = func(f func()) {
				onWorker.Add(1)
				go f()
			}
			defer func() { startWorker = old }()
			synctest.Test(t, func(t *testing.T) {
				dir := t.TempDir()
				store := memory.New()
				store.Put("/k/a", "1", "/k/b", "1")
				writeResource(t, dir, "a", tc.toml, `{{getv "/k/a"}}`)
				writeResource(t, dir, "b", `keys = ["/k"]`, `{{getv "/k/b"}}`)
				h := start(t, dir, store, resource.Wait{})
				settle()
				h.want("a", "1")
				before := onWorker.Load()
				store.Put(tc.change...)
				settle()
				h.want("a", "2")
				if got := onWorker.Load() - before; got != tc.wantWorker {
					t.Errorf("batches on the worker after the change: %d, want %d", got, tc.wantWorker)
				}
				store.Put("/k/a", "3")
				settle()
				h.want("a", "3")
			})
		})
	}
}

// TestDirtyByPrefix: dirty, which looks a changed key's ancestors up,
// schedules exactly the resources a pass over all of them would: those
// with a key the changed key is under (backends.Under).
func TestDirtyByPrefix(t *testing.T) {
	keys := [][]string{
		{"/"}, {"/app"}, {"/app/foo"}, {"/app/foo-bar"}, {"/app/foo/x"},
		{"/other", "/app/foo"}, {"/app/"}, {""}, {"/a//b"},
	}
	for _, tc := range []struct {
		name    string
		changed []string
	}{
		{name: "deep key", changed: []string{"/app/foo/x/y"}},
		{name: "a resource's own key", changed: []string{"/app/foo"}},
		{name: "sibling with a common start", changed: []string{"/app/foo-bar/z"}},
		{name: "root only", changed: []string{"/zzz"}},
		{name: "several", changed: []string{"/other/1", "/app/foo/x"}},
		{name: "not clean", changed: []string{"/a//b/c", "rel/key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &engine{stores: map[string]*store{}}
			for _, k := range keys {
				e.res = append(e.res, &resState{r: &resource.Resource{Keys: k}, store: "s"})
			}
			e.res = append(e.res, &resState{r: &resource.Resource{Keys: []string{"/app"}}, store: "other"})
			e.indexPrefixes()
			e.dirty(&store{key: "s"}, tc.changed)
			for i, rs := range e.res {
				want := false
				for _, k := range tc.changed {
					want = want || (rs.store == "s" && backends.UnderAny(k, rs.r.Keys))
				}
				if got := rs.phase == pending; got != want {
					t.Errorf("resource %d (keys %q, store %s): scheduled %v, want %v", i, rs.r.Keys, rs.store, got, want)
				}
			}
		})
	}
}

// TestDrainCoalesces: updates queued while the loop was busy (an inline
// commit) are all applied to the mirror before the next kick, so that it
// renders once, with the last value.
func TestDrainCoalesces(t *testing.T) {
	e := newEngine(Config{Watch: true}, nil, newMetrics())
	s := newStore("s", "memory")
	s.ready = true
	s.watches["/k"] = func() {}
	e.stores["s"] = s
	for i := 1; i <= 3; i++ {
		u := &backends.Update{Prefix: "/k", Rev: uint64(i), Changes: []backends.Change{{Key: "/k/a", Value: fmt.Sprint(i)}}}
		e.events <- event{store: "s", update: u}
	}
	e.handle(<-e.events)
	e.drain()
	if n := len(e.events); n != 0 {
		t.Errorf("events left after drain: %d, want 0", n)
	}
	if got := s.kvs["/k/a"]; got != "3" {
		t.Errorf("/k/a after drain = %q, want the last update's %q", got, "3")
	}
}
