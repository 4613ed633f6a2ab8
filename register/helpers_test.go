package register

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
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
	return startRunnerLog(t, nil, spec, regs...)
}

// startRunnerLog is startRunner with the runner's log going to log.
func startRunnerLog(t *testing.T, log *slog.Logger, spec backends.Spec, regs ...*Registration) (r *Runner, stop func(), done chan struct{}) {
	t.Helper()
	r, err := New(regs, Options{Backend: spec, Logger: log, storeTimeout: 2 * time.Second})
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

// logLines is a runner's log, in slog's text format, safe for concurrent
// use.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// logger returns a logger writing to l.
func (l *logLines) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// count counts the lines whose message is msg.
func (l *logLines) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for line := range strings.Lines(l.buf.String()) {
		if _, rest, ok := strings.Cut(line, " msg="+strconv.Quote(msg)); ok && (rest == "\n" || strings.HasPrefix(rest, " ")) {
			n++
		}
	}
	return n
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// checkTransitionsLogged checks that each transition of a registration
// that went up, down, up and was shut down is logged once.
func checkTransitionsLogged(t *testing.T, l *logLines) {
	t.Helper()
	for msg, want := range map[string]int{
		"registration up":           2,
		"registration down":         1,
		"registration draining":     1,
		"registration deregistered": 1,
	} {
		if got := l.count(msg); got != want {
			t.Errorf("%d log lines %q, want %d (each transition once):\n%s", got, msg, want, l)
		}
	}
}

// within fails t when took exceeds bound (a generous bound, not a
// timing: what it allows beyond the checks is for a loaded machine).
func within(t *testing.T, what string, took, bound time.Duration) {
	t.Helper()
	if took > bound {
		t.Errorf("%s after %v, want within %v", what, took, bound)
	}
}

// downBound and upBound are the bounds on going down and coming up
// again: fall (rise) checks at the interval, a timeout, 5 s of slack.
func downBound(c Check) time.Duration {
	return time.Duration(c.Fall)*c.Interval + c.Timeout + 5*time.Second
}

func upBound(c Check) time.Duration {
	return time.Duration(c.Rise)*c.Interval + c.Timeout + 5*time.Second
}

func fastCheck(url string) Check {
	return Check{HTTP: url, Interval: 100 * time.Millisecond, Timeout: 100 * time.Millisecond, Rise: 2, Fall: 3}
}
