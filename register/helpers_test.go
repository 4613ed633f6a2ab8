package register

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/confit-dev/confit/backends"
)

// waitFor is the generous bound of every wait in these tests.
const waitFor = 30 * time.Second

// healthServer is an HTTP check target whose answer the test switches.
type healthServer struct {
	ok  atomic.Bool
	srv *httptest.Server
}

func newHealthServer(t *testing.T) *healthServer {
	h := &healthServer{}
	h.ok.Store(true)
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.ok.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// startRunner runs regs until the test ends (or stop is called); done is
// closed when Run returned.
func startRunner(t *testing.T, spec backends.Spec, regs ...*Registration) (r *Runner, stop func(), done chan struct{}) {
	t.Helper()
	r, err := New(regs, Options{Backend: spec, storeTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done = make(chan struct{})
	go func() {
		defer close(done)
		if err := r.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitFor):
			t.Errorf("Run did not return within %v of the cancel", waitFor)
		}
	}
	t.Cleanup(stop)
	return r, stop, done
}

func fastCheck(url string) Check {
	return Check{HTTP: url, Interval: 100 * time.Millisecond, Timeout: 100 * time.Millisecond, Rise: 2, Fall: 3}
}
