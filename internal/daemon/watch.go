package daemon

import (
	"context"
	"errors"
	"slices"
	"sort"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/internal/retry"
)

// The goroutines that feed the engine loop: snapshot reads (load), watches
// and polls. Each only reads its store and sends events; the loop owns
// every store's state.

// The bounds of the backoff between failed snapshot reads, and between
// failed attempts to start a watch.
const (
	feedRetryMin = 100 * time.Millisecond
	feedRetryMax = 30 * time.Second
)

// retarget makes s watch exactly prefixes: unused watches stop, and
// prefixes not yet covered are read and then watched.
func (e *engine) retarget(s *store, prefixes []string) {
	// A load in flight may cover prefixes no longer needed (or miss new
	// ones): start over with what is missing now.
	if s.stopLoad != nil {
		s.stopLoad()
		s.stopLoad = nil
	}
	s.target = map[string]bool{}
	for _, p := range prefixes {
		s.target[p] = true
	}
	for p, stop := range s.watches {
		if !slices.Contains(prefixes, p) {
			stop()
			delete(s.watches, p)
			delete(s.revs, p)
			e.m.health.set(watchHealth(s, p), nil)
			s.drop(p, prefixes)
		}
	}
	var missing []string
	for _, p := range prefixes {
		if _, ok := s.watches[p]; !ok {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		e.load(s, missing)
	}
}

// load reads prefixes of s in the background, retrying with jittered
// exponential backoff until it succeeds or the engine stops.
func (e *engine) load(s *store, prefixes []string) {
	ctx, cancel := context.WithCancel(e.ctx)
	s.stopLoad = cancel
	key := s.key
	go func() {
		defer cancel()
		for fails := 1; ; fails++ {
			b, err := e.pool.get(ctx, key)
			var snap backends.Snapshot
			if err == nil {
				snap, err = b.Get(ctx, prefixes)
				e.m.storeGets.Add(1)
			}
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				e.send(ctx, event{store: key, prefixes: prefixes, snap: &snap})
				return
			}
			e.send(ctx, event{store: key, prefixes: prefixes, err: err})
			if !retry.Sleep(ctx, feedRetryDelay(fails)) {
				return
			}
		}
	}()
}

// feedRetryDelay is the wait after the fails-th failure in a row to read
// or watch a store: from 100 ms, doubling, up to 30 s, ±20 %.
func feedRetryDelay(fails int) time.Duration {
	return retry.Spread(retry.Exp(feedRetryMin, feedRetryMax, fails), 0.2)
}

// watch forwards the updates of one prefix to the engine. A backend that
// cannot watch is polled every Interval (or read once, when Interval is 0).
func (e *engine) watch(ctx context.Context, s *store, prefix string, rev uint64) {
	b, err := e.pool.get(ctx, s.key)
	if err != nil {
		return
	}
	key := s.key
	go func() {
		for fails := 1; ; fails++ {
			ch, err := b.Watch(ctx, prefix, rev)
			if errors.Is(err, backends.ErrWatchUnsupported) {
				e.poll(ctx, b, key, prefix)
				return
			}
			if err == nil {
				for u := range ch {
					u.Prefix = prefix
					e.send(ctx, event{store: key, update: &u})
				}
				return // closed: the watch was stopped or the backend closed
			}
			// It could not start (a permission not granted yet, a watch
			// limit): report it and try again, with backoff.
			e.send(ctx, event{store: key, update: &backends.Update{Prefix: prefix, Err: err}})
			if !retry.Sleep(ctx, feedRetryDelay(fails)) {
				return
			}
		}
	}()
}

// poll reads prefix every Interval and sends each snapshot as a Reset.
func (e *engine) poll(ctx context.Context, b backends.Backend, key, prefix string) {
	if e.cfg.Interval <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(e.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		snap, err := b.Get(ctx, []string{prefix})
		e.m.storeGets.Add(1)
		u := backends.Update{Prefix: prefix, Err: err, Reset: err == nil, Rev: snap.Rev, KVs: snap.KVs}
		e.send(ctx, event{store: key, update: &u})
	}
}

// resync re-reads every watched prefix: a safety net against a watch that
// missed something. Unchanged data causes no render.
func (e *engine) resync() {
	for _, s := range e.stores {
		if !s.ready || s.stopLoad != nil || len(s.watches) == 0 {
			continue
		}
		prefixes := make([]string, 0, len(s.watches))
		for p := range s.watches {
			prefixes = append(prefixes, p)
		}
		sort.Strings(prefixes)
		e.load(s, prefixes)
	}
}
