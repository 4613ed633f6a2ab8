package consul

import (
	"sync"
	"testing"
)

// TestTakeDuringMerge: a subscriber's take reads its hub under the lock, so
// a merge that moves it (absorbUnder) while it takes is no data race
// (found by review; run with -race).
func TestTakeDuringMerge(t *testing.T) {
	c := &Client{opts: Options{MaxKVQueries: 6, MaxBlockingConns: 6}}
	mk := func(parent string) *hub {
		return &hub{c: c, base: source{kind: kindKV}, wake: make(chan struct{}, 1), subs: map[*sub]struct{}{}, byPrefix: map[string][]*sub{}, state: map[string]*entry{}, parent: parent}
	}
	a, b := mk("/a"), mk("/b")
	c.kvHubs = []*hub{a, b}
	s := &sub{c: c, prefix: "/b/x", wake: make(chan struct{}, 1), h: b}
	b.addSub(s)
	st := &subState{s: s}
	var wg sync.WaitGroup
	wg.Go(func() { st.take() })
	c.mu.Lock()
	c.absorbUnder(a, "/")
	c.mu.Unlock()
	wg.Wait()
	if s.h != a || len(c.kvHubs) != 1 {
		t.Fatalf("after the merge: sub on %p (want %p), %d hubs (want 1)", s.h, a, len(c.kvHubs))
	}
}
