package register

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/internal/testserver"
)

// fakeSession is a store for what a real one cannot show on demand: a
// client that serves two requests at a time, each slow. It counts the
// requests in flight and fails any whose context ends first.
type fakeSession struct {
	inFlight, maxInFlight atomic.Int32
	mu                    sync.Mutex
	up                    map[string]bool
	failed                atomic.Int32
	deregs                atomic.Int32
}

func (f *fakeSession) set(ctx context.Context, r *Registration, up bool) error {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.maxInFlight.Load()
		if n <= m || f.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	select {
	case <-time.After(50 * time.Millisecond):
	case <-ctx.Done():
		f.failed.Add(1)
		return ctx.Err()
	}
	f.mu.Lock()
	f.up[r.Key] = up
	f.mu.Unlock()
	return nil
}
func (f *fakeSession) changed() <-chan struct{}            { return nil }
func (f *fakeSession) refresh(*Registration) time.Duration { return 0 }
func (f *fakeSession) concurrency() int                    { return 2 }
func (f *fakeSession) deregister(_ context.Context, r *Registration) error {
	f.deregs.Add(1)
	f.mu.Lock()
	delete(f.up, r.Key)
	f.mu.Unlock()
	return nil
}
func (f *fakeSession) close(context.Context) error { return nil }
func (f *fakeSession) forget(*Registration)        {}

// fakeEtcd puts a fakeSession in place of etcd's sessions (etcd, which
// Validate accepts; not in parallel with the tests of the real one) until
// t ends, and returns it with the address of a TCP service for checks.
func fakeEtcd(t *testing.T) (*fakeSession, string) {
	f := &fakeSession{up: map[string]bool{}}
	real := openers["etcd"]
	openers["etcd"] = func(context.Context, backends.Spec, time.Duration, *slog.Logger) (session, error) { return f, nil }
	t.Cleanup(func() { openers["etcd"] = real })
	l, err := testserver.TCPService()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return f, l.Addr().String()
}

// TestQueuedBeforeTimeout: with more registrations than the client's
// connections, requests wait their turn before their timeout starts, so a
// node with many registrations does not time its own requests out (and
// retry them, and load the agent more) while they queue.
func TestQueuedBeforeTimeout(t *testing.T) {
	f, addr := fakeEtcd(t)
	var regs []*Registration
	for i := range 10 {
		regs = append(regs, &Registration{Name: fmt.Sprint(i), Key: fmt.Sprintf("/k/%d", i), Drain: -1, Backend: &backends.Spec{Backend: "etcd"},
			Check: Check{TCP: addr, Interval: time.Hour, Timeout: time.Second, Rise: 1, Fall: 1}})
	}
	r, err := New(regs, Options{storeTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	deadline := time.Now().Add(waitFor)
	for {
		f.mu.Lock()
		n := 0
		for _, up := range f.up {
			if up {
				n++
			}
		}
		f.mu.Unlock()
		if n == len(regs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d up within %v", n, len(regs), waitFor)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if m := f.maxInFlight.Load(); m > 2 {
		t.Errorf("%d requests in flight at once, want at most the client's 2", m)
	}
	if n := f.failed.Load(); n > 0 {
		t.Errorf("%d requests timed out while queued", n)
	}
}

// TestReload (a fake store, under -race): Reload keeps an unchanged
// registration running, restarts a changed one in its state, retires a
// removed one and starts a new one; an invalid set changes nothing.
func TestReload(t *testing.T) {
	f, addr := fakeEtcd(t)
	reg := func(key, value string) *Registration {
		return &Registration{Name: key, Key: key, Value: value, Drain: -1, Backend: &backends.Spec{Backend: "etcd"},
			Check: Check{TCP: addr, Interval: 50 * time.Millisecond, Timeout: 50 * time.Millisecond, Rise: 1, Fall: 1}}
	}
	r, err := New([]*Registration{reg("/k/0", "a"), reg("/k/1", "a"), reg("/k/2", "a")}, Options{storeTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	waitUp := func(what string, want map[string]bool) {
		t.Helper()
		deadline := time.Now().Add(waitFor)
		for {
			f.mu.Lock()
			got := fmt.Sprint(f.up)
			f.mu.Unlock()
			if got == fmt.Sprint(want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: store %s, want %v", what, got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitUp("start", map[string]bool{"/k/0": true, "/k/1": true, "/k/2": true})
	unchanged := r.current()[2]

	if err := r.Reload(ctx, []*Registration{reg("/k/0", "b"), reg("/k/2", "a"), reg("/k/3", "a")}); err != nil {
		t.Fatal(err)
	}
	waitUp("after the reload", map[string]bool{"/k/0": true, "/k/2": true, "/k/3": true})
	var names []string
	for _, st := range r.Status() {
		names = append(names, st.Name)
	}
	if fmt.Sprint(names) != "[/k/0 /k/2 /k/3]" {
		t.Errorf("registrations after the reload: %v", names)
	}
	if r.current()[1] != unchanged {
		t.Error("the unchanged registration was restarted")
	}
	if st := r.Status()[0]; st.State != Up || st.Passes == 0 {
		t.Errorf("the changed registration: %+v, want up with its counters carried over", st)
	}

	// Removed, then added back before its drain ended: the new one is not
	// deleted by the old one's deregistration, and Reload does not wait
	// for that drain (the daemon's SIGHUP reload would wait with it).
	// Removed and added back once more while the first still drains, with
	// a shorter drain: it waits for both earlier selves.
	drained := reg("/k/3", "a")
	drained.Drain = 2 * time.Second
	short := reg("/k/3", "a")
	short.Drain = 100 * time.Millisecond
	if err := r.Reload(ctx, []*Registration{reg("/k/0", "b"), reg("/k/2", "a"), drained}); err != nil {
		t.Fatal(err)
	}
	deregs := f.deregs.Load()
	for _, set := range [][]*Registration{
		{reg("/k/0", "b"), reg("/k/2", "a")},
		{reg("/k/0", "b"), reg("/k/2", "a"), short},
		{reg("/k/0", "b"), reg("/k/2", "a")},
		{reg("/k/0", "b"), reg("/k/2", "a"), drained},
	} {
		if err := r.Reload(ctx, set); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.deregs.Load(); n != deregs {
		t.Errorf("%d deregistrations when the reloads returned, want none yet: Reload waited for the drain", n-deregs)
	}
	for deadline := time.Now().Add(waitFor); f.deregs.Load() < deregs+2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of the 2 earlier selves deregistered within %v", f.deregs.Load()-deregs, waitFor)
		}
	}
	waitUp("added back, after its earlier selves' drains", map[string]bool{"/k/0": true, "/k/2": true, "/k/3": true})
	time.Sleep(300 * time.Millisecond)
	waitUp("added back, still there", map[string]bool{"/k/0": true, "/k/2": true, "/k/3": true})

	// The same etcd key with another ID (the value's, from a new port):
	// the same entry, changed, not a new one whose old self deletes it.
	renamed := reg("/k/2", "a")
	renamed.ID = "other"
	if err := r.Reload(ctx, []*Registration{reg("/k/0", "b"), renamed, drained}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	waitUp("the key with a new ID", map[string]bool{"/k/0": true, "/k/2": true, "/k/3": true})
	if st := r.Status()[1]; st.State != Up || st.Passes == 0 {
		t.Errorf("the key with a new ID: %+v, want up with its counters carried over", st)
	}

	bad := reg("/k/4", "a")
	bad.Check.Rise = -1
	if err := r.Reload(ctx, []*Registration{reg("/k/0", "b"), bad}); err == nil {
		t.Error("an invalid registration was accepted")
	}
	if n := len(r.Status()); n != 3 {
		t.Errorf("%d registrations after a refused reload, want the 3 in use", n)
	}
	dup := reg("/k/0", "c")
	dup.ID = "another"
	if err := r.Reload(ctx, []*Registration{reg("/k/0", "b"), dup}); err == nil || !strings.Contains(err.Error(), "registers the same key /k/0") {
		t.Errorf("two registrations of one etcd key: %v, want refused", err)
	}

	cancel()
	<-done
	if err := r.Reload(t.Context(), []*Registration{reg("/k/0", "b")}); err == nil {
		t.Error("Reload after Run returned: no error")
	}
}
