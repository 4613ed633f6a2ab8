package register

import (
	"context"
	"fmt"
	"log/slog"
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
func (f *fakeSession) changed() <-chan struct{}                        { return nil }
func (f *fakeSession) refresh(*Registration) time.Duration             { return 0 }
func (f *fakeSession) concurrency() int                                { return 2 }
func (f *fakeSession) deregister(context.Context, *Registration) error { return nil }
func (f *fakeSession) close(context.Context) error                     { return nil }

// TestQueuedBeforeTimeout: with more registrations than the client's
// connections, requests wait their turn before their timeout starts, so a
// node with many registrations does not time its own requests out (and
// retry them, and load the agent more) while they queue.
func TestQueuedBeforeTimeout(t *testing.T) {
	f := &fakeSession{up: map[string]bool{}}
	openers["fake-store"] = func(context.Context, backends.Spec, time.Duration, *slog.Logger) (session, error) { return f, nil }
	defer delete(openers, "fake-store")
	l, err := testserver.TCPService()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var regs []*Registration
	for i := range 10 {
		regs = append(regs, &Registration{Name: fmt.Sprint(i), Key: fmt.Sprintf("/k/%d", i), Drain: -1,
			Check: Check{TCP: l.Addr().String(), Interval: time.Hour, Timeout: time.Second, Rise: 1, Fall: 1}})
	}
	r := &Runner{opts: Options{storeTimeout: 100 * time.Millisecond}, log: slog.New(slog.DiscardHandler), http: newHTTPClient()}
	for _, reg := range regs {
		d := reg.WithDefaults()
		r.regs = append(r.regs, &regState{reg: &d, spec: backends.Spec{Backend: "fake-store"}, checkErr: errNoCheck})
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
