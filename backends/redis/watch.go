package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/internal/retry"
	"github.com/redis/rueidis"
)

// ErrConnectionLost is wrapped by the Err of the Update a watch sends when
// the tracking connection to the server broke (or could not be made).
var ErrConnectionLost = errors.New("connection lost")

// Backoff bounds between reconnection attempts.
const (
	backoffMin = 100 * time.Millisecond
	backoffMax = 5 * time.Second
)

// Watch watches prefix with server-assisted invalidation. One dedicated
// RESP3 connection per Client, shared by every watch, runs CLIENT TRACKING
// ON BCAST with one PREFIX per distinct watched prefix (prefixes that
// contain one another are merged: Redis refuses overlapping ones). That
// needs no server configuration and reports every write, delete and expiry
// of a key under the prefix, and FLUSHALL/FLUSHDB as an "everything"
// invalidation. Each notification costs one read of the keys it names
// (pipelined MGET/HGETALL); an "everything" notification re-lists the
// prefix. Notifications are coalesced while a read runs.
//
// Invalidation messages are fire and forget, so whenever the tracking
// connection is (re)made, every watch re-lists its prefix: after an
// outage it sends the result as a Reset (deletes made meanwhile included).
// While disconnected each watch sends one Update whose Err wraps
// ErrConnectionLost; the connection is retried with jittered backoff.
//
// When the server refuses CLIENT TRACKING, the backend logs so once and
// every watch polls its prefix every Options.PollInterval, diffing each
// read against the last.
//
// rev is ignored (Redis has no revisions): changes are sent from the
// moment of the call.
func (c *Client) Watch(ctx context.Context, prefix string, _ uint64) (<-chan backends.Update, error) {
	prefix = backends.CleanKey(prefix)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, fmt.Errorf("redis: watch %q: client closed", prefix)
	}
	c.wg.Add(1)
	if c.trk == nil {
		c.trk = newTracker(c)
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.trk.run(c.closeCtx)
		}()
	}
	t := c.trk
	c.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.closeCtx, cancel)
	w := &watch{c: c, t: t, prefix: prefix, rp: c.toRedis(prefix), out: make(chan backends.Update, 1), wake: make(chan struct{}, 1)}
	if prefix == "/" {
		w.rp = ""
	}
	// The starting view: from now. If the server is down, the first
	// successful read is sent as a Reset.
	if srcs, err := c.list(ctx, prefix); err == nil {
		w.srcs = srcs
	} else {
		w.reset = true
	}
	t.add(w)
	go func() {
		defer c.wg.Done()
		defer cancel()
		defer stop()
		defer close(w.out)
		defer t.remove(w)
		w.run(ctx)
	}()
	return w.out, nil
}

// tracker owns the one tracking connection and fans its invalidations out
// to the watches.
type tracker struct {
	c     *Client
	added chan struct{} // cap 1: a watch was added

	mu      sync.Mutex
	watches map[*watch]bool
	gen     uint64   // bumped on every new tracking connection
	covered []string // Redis key prefixes tracked on the connection
	err     error    // non-nil while the connection is down
	polling bool     // the server refused tracking
	changed chan struct{}
}

func newTracker(c *Client) *tracker {
	return &tracker{c: c, added: make(chan struct{}, 1), watches: map[*watch]bool{}, changed: make(chan struct{})}
}

func (t *tracker) add(w *watch) {
	t.mu.Lock()
	t.watches[w] = true
	t.mu.Unlock()
	select {
	case t.added <- struct{}{}:
	default:
	}
}

func (t *tracker) remove(w *watch) {
	t.mu.Lock()
	delete(t.watches, w)
	t.mu.Unlock()
}

// state is what a watch reads: the polling flag, the connection error, and
// a channel closed at the next change.
func (t *tracker) state(w *watch) (polling bool, err error, armed uint64, changed <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.polling, t.err, w.armed, t.changed
}

// broadcast wakes every watch; t.mu held.
func (t *tracker) broadcast() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// cover returns the shortest set of Redis prefixes, none a string prefix of
// another, covering every watch's prefix; t.mu held.
func (t *tracker) cover() []string {
	var ps []string
	for w := range t.watches {
		ps = append(ps, w.rp)
	}
	return coverStrings(ps)
}

func coverStrings(ps []string) []string {
	slices.Sort(ps)
	var out []string
	for _, p := range ps {
		if len(out) > 0 && strings.HasPrefix(p, out[len(out)-1]) {
			continue
		}
		out = append(out, p)
	}
	return out
}

func coveredBy(rp string, covered []string) bool {
	for _, c := range covered {
		if strings.HasPrefix(rp, c) {
			return true
		}
	}
	return false
}

// dispatch hands invalidated keys (nil: everything) to the watches whose
// prefix they fall under.
func (t *tracker) dispatch(msgs []rueidis.RedisMessage) {
	var keys []string
	for _, m := range msgs {
		if s, err := m.ToString(); err == nil {
			keys = append(keys, s)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for w := range t.watches {
		if msgs == nil {
			w.notify(nil, true)
			continue
		}
		var mine []string
		for _, k := range keys {
			if strings.HasPrefix(k, w.rp) {
				mine = append(mine, k)
			}
		}
		if len(mine) > 0 {
			w.notify(mine, false)
		}
	}
}

// arm marks the watches the connection covers as armed at the current
// generation and wakes them; t.mu held.
func (t *tracker) arm() {
	for w := range t.watches {
		if w.armed != t.gen && coveredBy(w.rp, t.covered) {
			w.armed = t.gen
			w.notify(nil, false)
		}
	}
}

func (t *tracker) run(ctx context.Context) {
	attempt := 0
	for ctx.Err() == nil {
		t.mu.Lock()
		cover := t.cover()
		t.mu.Unlock()
		if len(cover) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-t.added:
				continue
			}
		}
		err := t.connect(ctx, cover, &attempt)
		if ctx.Err() != nil {
			return
		}
		var refused *rueidis.RedisError
		if errors.As(err, &refused) {
			t.c.log.Warn("redis: CLIENT TRACKING unavailable; polling instead", "node", t.c.node,
				"interval", t.c.poll, "err", err)
			t.mu.Lock()
			t.polling = true
			t.broadcast()
			t.mu.Unlock()
			return
		}
		if err != nil {
			t.mu.Lock()
			t.err = err
			t.broadcast()
			t.mu.Unlock()
			attempt++
			if !retry.Sleep(ctx, retry.Backoff(backoffMin, backoffMax, attempt)) {
				return
			}
		}
	}
}

// connect runs one tracking connection until it breaks, ctx ends, or a new
// prefix overlaps the tracked ones (nil: reconnect with the new cover).
func (t *tracker) connect(ctx context.Context, cover []string, attempt *int) error {
	dc, release := t.c.cli.Dedicate()
	defer release()
	errs := dc.SetOnInvalidations(t.dispatch)
	track := func(ps []string) error {
		args := []string{"ON", "BCAST"}
		for _, p := range ps {
			if p != "" {
				args = append(args, "PREFIX", p)
			}
		}
		return dc.Do(ctx, dc.B().Arbitrary("CLIENT", "TRACKING").Args(args...).Build()).Error()
	}
	if err := track(cover); err != nil {
		return err
	}
	*attempt = 0
	t.mu.Lock()
	t.gen++
	t.err = nil
	t.covered = cover
	t.arm()
	t.broadcast()
	t.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-errs:
			if !ok || err == nil {
				err = errors.New("tracking connection closed")
			}
			return err
		case <-t.added:
		}
		t.mu.Lock()
		next := t.cover()
		covered := t.covered
		t.mu.Unlock()
		var extra []string
		for _, p := range next {
			if !coveredBy(p, covered) {
				extra = append(extra, p)
			}
		}
		if len(extra) == 0 {
			t.mu.Lock()
			t.arm()
			t.mu.Unlock()
			continue
		}
		for _, p := range extra {
			for _, c := range covered {
				if strings.HasPrefix(c, p) { // overlaps: Redis refuses it
					return nil
				}
			}
		}
		if err := track(extra); err != nil {
			return err
		}
		t.mu.Lock()
		t.covered = append(slices.Clone(covered), extra...)
		t.arm()
		t.mu.Unlock()
	}
}

type watch struct {
	c      *Client
	t      *tracker
	prefix string
	rp     string // the prefix as a Redis key prefix ("" for "/")
	out    chan backends.Update
	srcs   sources // the last view, by Redis key
	reset  bool    // the next good view is sent as a Reset
	failed bool    // an Err was sent since the last good view
	synced uint64  // the tracker generation this watch last re-listed at

	armed uint64 // guarded by t.mu: the generation that covers this prefix

	mu      sync.Mutex
	pending map[string]bool // Redis keys invalidated, not yet read
	all     bool            // everything invalidated (FLUSHALL)
	wake    chan struct{}   // signalled (cap 1) when pending grows
}

// notify records invalidated Redis keys (all: everything) and wakes the
// watch; keys nil and all false only wakes it.
func (w *watch) notify(keys []string, all bool) {
	w.mu.Lock()
	w.all = w.all || all
	for _, k := range keys {
		if w.pending == nil {
			w.pending = map[string]bool{}
		}
		w.pending[k] = true
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *watch) degraded(ctx context.Context, err error) {
	if !w.failed {
		w.failed = true
		w.send(ctx, backends.Update{Prefix: w.prefix, Err: fmt.Errorf("redis: %s: watch %q: %w: %w", w.c.node, w.prefix, ErrConnectionLost, err)})
	}
}

func (w *watch) run(ctx context.Context) {
	for ctx.Err() == nil {
		polling, terr, armed, changed := w.t.state(w)
		switch {
		case polling:
			if err := w.sync(ctx); err != nil {
				w.degraded(ctx, err)
			}
			if !retry.Sleep(ctx, w.c.poll) {
				return
			}
			continue
		case terr != nil:
			w.degraded(ctx, terr)
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
			continue
		case armed != 0 && armed != w.synced:
			// A new tracking connection covers the prefix: what happened
			// before it is found by a re-list.
			if err := w.sync(ctx); err != nil {
				w.degraded(ctx, err)
				if !retry.Sleep(ctx, backoffMin) {
					return
				}
				continue
			}
			w.synced = armed
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
			continue
		case <-w.wake:
		}
		if armed == 0 {
			continue // not tracked yet: the re-list at arming covers it
		}
		w.mu.Lock()
		all, pending := w.all, w.pending
		w.all, w.pending = false, nil
		w.mu.Unlock()
		if all {
			if err := w.sync(ctx); err != nil {
				w.degraded(ctx, err)
				w.synced = 0
			}
			continue
		}
		if len(pending) == 0 {
			continue
		}
		keys := make([]string, 0, len(pending))
		for rk := range pending {
			keys = append(keys, rk)
		}
		w.c.reads.Add(uint64(len(keys)))
		srcs, err := w.c.read(ctx, keys)
		if err != nil {
			w.degraded(ctx, fmt.Errorf("read: %w", err))
			w.synced = 0 // re-list once the server answers
			continue
		}
		w.apply(ctx, srcs, keys)
	}
}

// send delivers u unless ctx ends first.
func (w *watch) send(ctx context.Context, u backends.Update) bool {
	select {
	case w.out <- u:
		return true
	case <-ctx.Done():
		return false
	}
}

// sync re-lists the prefix and sends the difference from the last view.
func (w *watch) sync(ctx context.Context) error {
	srcs, err := w.c.list(ctx, w.prefix)
	if err != nil {
		return err
	}
	w.apply(ctx, srcs, nil)
	return nil
}

// apply installs srcs as the new view of the Redis keys in only (all of
// them when only is nil) and sends what changed.
func (w *watch) apply(ctx context.Context, srcs sources, only []string) {
	old := map[string]string{}
	cur := map[string]string{}
	if only == nil {
		w.srcs.flatten(old, w.prefix)
		srcs.flatten(cur, w.prefix)
		w.srcs = srcs
	} else {
		if w.srcs == nil {
			w.srcs = sources{}
		}
		for _, rk := range only {
			for k, v := range w.srcs[rk] {
				old[k] = v
			}
			delete(w.srcs, rk)
			if kvs, ok := srcs[rk]; ok {
				w.srcs[rk] = kvs
			}
		}
		srcs.flatten(cur, w.prefix)
	}
	if w.reset || w.failed {
		// After an outage (or a failed first read) the whole view is sent:
		// that is the "healthy again" Update, and it carries the deletes.
		w.reset, w.failed = false, false
		w.send(ctx, backends.Update{Prefix: w.prefix, Reset: true, KVs: w.srcs.flatten(nil, w.prefix)})
		return
	}
	if changes := backends.Diff(old, cur); len(changes) > 0 {
		w.send(ctx, backends.Update{Prefix: w.prefix, Changes: changes})
	}
}
