package consul

import (
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
