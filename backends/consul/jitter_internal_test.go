package consul

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/internal/testserver"
)

// TestRetryWaitSpreadsReLists watches a prefix on an agent that does not
// answer (nothing listens on the port): every failed query is retried after
// a wait drawn from the reconnect-jitter window on top of the backoff. The
// draws are recorded and replaced by 0, so the test does not wait them.
func TestRetryWaitSpreadsReLists(t *testing.T) {
	port, err := testserver.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	const window = 7 * time.Second
	c, err := New(t.Context(), backends.Config{Backend: Name, Nodes: []string{"127.0.0.1:" + strconv.Itoa(port)}, ReconnectJitter: window},
		Options{BackoffMin: time.Millisecond, BackoffMax: 10 * time.Millisecond, ProbeInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var (
		mu    sync.Mutex
		draws []time.Duration
	)
	got := make(chan struct{})
	c.jitter = func(w time.Duration) time.Duration {
		mu.Lock()
		defer mu.Unlock()
		if draws = append(draws, w); len(draws) == 3 {
			close(got)
		}
		return 0
	}
	ch, err := c.Watch(t.Context(), "/app", 0)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	go func() {
		for range ch { // the degraded update; keep reading until closed
		}
	}()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no three retries drew from the reconnect-jitter window within 10s")
	}
	mu.Lock()
	defer mu.Unlock()
	for i, w := range draws {
		if w != window {
			t.Errorf("draw %d from a %v window, want %v", i, w, window)
		}
	}
}

func TestNewRejectsNegativeReconnectJitter(t *testing.T) {
	_, err := New(t.Context(), backends.Config{Backend: Name, ReconnectJitter: -time.Second}, Options{})
	if err == nil || !strings.Contains(err.Error(), "reconnect-jitter") {
		t.Fatalf("New with reconnect-jitter -1s: err = %v, want one naming reconnect-jitter", err)
	}
}

// TestStaleHealthReadsCached reads service health through a proxy that
// records the query strings: with -consul-stale the plain read asks the
// agent's cache (?cached), without it, it does not.
func TestStaleHealthReadsCached(t *testing.T) {
	srv := testserver.Consul(t, testserver.ConsulOptions{})
	target, _ := url.Parse("http://" + srv.Addr())
	var (
		mu      sync.Mutex
		queries []string
	)
	rp := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/health/service/") {
			mu.Lock()
			queries = append(queries, r.URL.RawQuery)
			mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	}))
	defer front.Close()
	for _, tc := range []struct {
		name   string
		stale  bool
		cached bool
	}{
		{"consistent", false, false},
		{"stale", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(t.Context(), backends.Config{Backend: Name, Nodes: []string{strings.TrimPrefix(front.URL, "http://")}},
				Options{Stale: tc.stale, ProbeInterval: -1})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			mu.Lock()
			queries = nil
			mu.Unlock()
			if _, err := c.Get(t.Context(), []string{ServicePrefix + "/web"}); err != nil {
				t.Fatalf("Get: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(queries) != 1 {
				t.Fatalf("health requests = %q, want one", queries)
			}
			v, _ := url.ParseQuery(queries[0])
			if _, got := v["cached"]; got != tc.cached {
				t.Errorf("health read %q: cached = %v, want %v", queries[0], got, tc.cached)
			}
		})
	}
}
