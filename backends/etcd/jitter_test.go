package etcd_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/backends/etcd"
)

// TestWatchSpreadsReListAfterOutage kills the server under a watch with
// reconnect-jitter set: once the server is back, the watch draws its wait
// from the configured window before it re-lists, once per outage. (The
// draw is recorded and replaced by 0, so the test does not wait it.)
func TestWatchSpreadsReListAfterOutage(t *testing.T) {
	s, adm := ownServer(t)
	const window = 7 * time.Second
	c, err := etcd.New(t.Context(), backends.Config{Backend: "etcd", Nodes: []string{s.Endpoint()}, ReconnectJitter: window})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	var (
		mu    sync.Mutex
		draws []time.Duration
	)
	etcd.SetJitter(c, func(w time.Duration) time.Duration {
		mu.Lock()
		defer mu.Unlock()
		draws = append(draws, w)
		return 0
	})
	const ns = "/jitter"
	retry(t, "put a", func(ctx context.Context) error { _, err := adm.Put(ctx, ns+"/a", "1"); return err })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch, err := c.Watch(ctx, ns, 0)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if err := s.Kill(); err != nil {
		t.Fatalf("kill etcd: %v", err)
	}
	if u := next(t, ch, "outage"); !errors.Is(u.Err, etcd.ErrConnectionLost) {
		t.Fatalf("update during the outage = %+v, want an Err wrapping ErrConnectionLost", u)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	if u := next(t, ch, "after the restart"); !u.Reset || u.KVs[ns+"/a"] != "1" {
		t.Fatalf("update after the restart = %+v, want a Reset holding %s/a", u, ns)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(draws) != 1 || draws[0] != window {
		t.Errorf("jitter draws before the re-list = %v, want one from the %v window", draws, window)
	}
}

func TestNewRejectsNegativeReconnectJitter(t *testing.T) {
	_, err := etcd.New(t.Context(), backends.Config{Backend: "etcd", Nodes: []string{"127.0.0.1:1"}, ReconnectJitter: -time.Second})
	if err == nil || !strings.Contains(err.Error(), "reconnect-jitter") {
		t.Fatalf("New with reconnect-jitter -1s: err = %v, want one naming reconnect-jitter", err)
	}
}
