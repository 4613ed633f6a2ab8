package consul

import (
	"context"
	"errors"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/confit-dev/confit/backends"
)

// firstReadTimeout bounds the plain read Watch makes before returning.
const firstReadTimeout = 30 * time.Second

// event is one answer of a hub's blocking query, shared read-only by every
// subscriber of the hub.
type event struct {
	root  string // KV: the listed parent; services: the virtual root
	list  kvList
	idx   uint64
	reset bool // the index went backwards: receivers get a Reset
	err   error
}

// hub runs one blocking query and fans its answers out to subscribers. The
// KV hub lists the longest common parent of its subscribers' prefixes.
type hub struct {
	c    *Client
	base source
	wake chan struct{}

	// guarded by c.mu
	subs        map[*sub]struct{}
	root        string
	cancelQuery context.CancelFunc
}

// sub is one Watch: it filters the hub's answers to its prefix, diffs them
// against what it last delivered and applies the empty-list grace.
type sub struct {
	c      *Client
	h      *hub
	prefix string
	out    chan backends.Update
	wake   chan struct{}

	// guarded by c.mu
	pending      *event
	pendingReset bool
}

// Watch implements backends.Backend. See the package documentation for how
// watches share blocking queries and connections. The channel is closed when
// ctx is done or Close is called. A permission error on the first read is
// returned; any other error is delivered as an Update{Err} and retried.
func (c *Client) Watch(ctx context.Context, prefix string, rev uint64) (<-chan backends.Update, error) {
	src, err := sourceFor(backends.CleanKey(prefix))
	if err != nil {
		return nil, err
	}
	s := &sub{c: c, prefix: src.prefix, out: make(chan backends.Update), wake: make(chan struct{}, 1)}

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		close(s.out)
		return s.out, nil
	}
	h := c.hubs[src.hubKey()]
	if h == nil {
		h = &hub{c: c, base: src, wake: make(chan struct{}, 1), subs: map[*sub]struct{}{}}
		c.hubs[src.hubKey()] = h
		c.wg.Add(1)
		go h.run()
	}
	s.h = h
	// Subscribe before the first read so no answer is missed; answers older
	// than the first read are ignored by index.
	h.subs[s] = struct{}{}
	if src.kind == kindKV && h.cancelQuery != nil && !backends.Under(src.prefix, h.root) {
		h.cancelQuery() // the running query does not cover the new prefix
	}
	c.wg.Add(1)
	c.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}

	first := event{root: src.prefix}
	fctx, cancel := context.WithTimeout(ctx, firstReadTimeout)
	first.list, first.idx, first.err = src.fetch(fctx, c, c.read, 0, 0)
	cancel()
	if errors.Is(first.err, ErrPermissionDenied) || (first.err != nil && ctx.Err() != nil) {
		s.unsubscribe()
		c.wg.Done()
		return nil, first.err
	}
	go s.run(ctx, rev, first)
	return s.out, nil
}

func (s *sub) unsubscribe() {
	s.c.mu.Lock()
	delete(s.h.subs, s)
	s.c.mu.Unlock()
}

// offer hands the sub the hub's latest answer; a slow sub only sees the
// latest one, which is enough since every answer is a full list.
func (s *sub) offer(ev *event) {
	if ev.reset {
		s.pendingReset = true
	}
	s.pending = ev
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *sub) run(ctx context.Context, rev uint64, first event) {
	defer s.c.wg.Done()
	defer close(s.out)
	defer s.unsubscribe()

	st := subState{s: s, ctx: ctx}
	if first.err == nil && (rev == 0 || first.idx <= rev) {
		st.known = first.list.under(s.prefix)
		st.haveKnown = true
	}
	if !st.process(&first) {
		return
	}
	if first.err == nil {
		st.baseIdx = first.idx
	}
	last := &first
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.c.ctx.Done():
			return
		case <-s.wake:
		case <-st.graceC:
			st.graceC = nil
		}
		s.c.mu.Lock()
		if s.pending != nil {
			last = s.pending
		}
		s.pending = nil
		if s.pendingReset {
			st.resetWanted = true
		}
		s.pendingReset = false
		s.c.mu.Unlock()
		if !st.process(last) {
			return
		}
	}
}

type subState struct {
	s           *sub
	ctx         context.Context
	known       map[string]string // what the receiver has
	haveKnown   bool
	degraded    bool
	resetWanted bool
	baseIdx     uint64 // answers below this index predate the first read
	lastRev     uint64 // highest Rev sent
	graceSince  time.Time
	graceTimer  *time.Timer
	graceC      <-chan time.Time
}

// process applies one answer; it reports false when the receiver is gone.
func (st *subState) process(ev *event) bool {
	s := st.s
	if ev.err != nil {
		if st.degraded {
			return true
		}
		st.degraded = true
		s.c.log.Warn("consul watch degraded", "prefix", s.prefix, "err", ev.err)
		return st.send(backends.Update{Prefix: s.prefix, Err: ev.err})
	}
	if ev.root != "" && !backends.Under(s.prefix, ev.root) {
		return true // an answer for a parent that does not cover this prefix yet
	}
	if st.baseIdx > 0 && !ev.reset && ev.idx < st.baseIdx {
		return true // older than this watch's first read
	}
	st.baseIdx = 0
	cur := ev.list.under(s.prefix)
	grace := s.c.opts.EmptyGrace
	if len(cur) == 0 && len(st.known) > 0 && grace > 0 {
		if st.graceSince.IsZero() {
			st.graceSince = time.Now()
			st.graceTimer = time.NewTimer(grace)
			st.graceC = st.graceTimer.C
			s.c.log.Warn("consul: list became empty; holding the previous contents back for the grace period",
				"prefix", s.prefix, "rev", ev.idx, "grace", grace, "previous_keys", len(st.known))
		}
		if time.Since(st.graceSince) < grace {
			return true
		}
		s.c.log.Warn("consul: list still empty after the grace period; delivering it",
			"prefix", s.prefix, "rev", ev.idx, "grace", grace)
		st.stopGrace()
	} else if !st.graceSince.IsZero() {
		s.c.log.Info("consul: list no longer empty within the grace period", "prefix", s.prefix, "rev", ev.idx)
		st.stopGrace()
	}
	if st.degraded && !st.resetWanted && st.haveKnown && ev.idx <= st.lastRev && len(diff(st.known, cur)) == 0 {
		// Healthy again with nothing new: an Update needs a higher Rev, so
		// the receiver learns of the recovery with the next change.
		st.degraded = false
		return true
	}
	if st.resetWanted || st.degraded || !st.haveKnown {
		st.known, st.haveKnown, st.degraded, st.resetWanted = cur, true, false, false
		return st.send(backends.Update{Prefix: s.prefix, Rev: ev.idx, Reset: true, KVs: cur})
	}
	changes := diff(st.known, cur)
	if len(changes) == 0 {
		return true // spurious wake-up
	}
	st.known = cur
	return st.send(backends.Update{Prefix: s.prefix, Rev: ev.idx, Changes: changes})
}

func (st *subState) stopGrace() {
	st.graceSince = time.Time{}
	if st.graceTimer != nil {
		st.graceTimer.Stop()
	}
	st.graceTimer, st.graceC = nil, nil
}

func (st *subState) send(u backends.Update) bool {
	if u.Err == nil {
		st.lastRev = max(st.lastRev, u.Rev)
	}
	select {
	case st.s.out <- u:
		return true
	case <-st.ctx.Done():
		return false
	case <-st.s.c.ctx.Done():
		return false
	}
}

// diff lists what turns old into cur, sorted by key.
func diff(old, cur map[string]string) []backends.Change {
	var out []backends.Change
	for k, v := range cur {
		if ov, ok := old[k]; !ok || ov != v {
			out = append(out, backends.Change{Key: k, Value: v})
		}
	}
	for k := range old {
		if _, ok := cur[k]; !ok {
			out = append(out, backends.Change{Key: k, Deleted: true})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// commonParent returns the longest clean path that every prefix is under.
func commonParent(prefixes []string) string {
	if len(prefixes) == 0 {
		return "/"
	}
	common := strings.Split(prefixes[0], "/")
	for _, p := range prefixes[1:] {
		segs := strings.Split(p, "/")
		n := 0
		for n < len(common) && n < len(segs) && common[n] == segs[n] {
			n++
		}
		common = common[:n]
	}
	return backends.CleanKey(strings.Join(common, "/"))
}

// run is the hub's blocking-query loop. It lives until the Client closes.
func (h *hub) run() {
	c := h.c
	defer c.wg.Done()
	var (
		index    uint64 // the index the next query waits on; 0 = full read
		last     uint64 // the last index delivered, to detect going backwards
		limit    = newRequeryLimiter(c.opts.MinRequeryInterval)
		failures int
	)
	for {
		c.mu.Lock()
		if len(h.subs) == 0 {
			h.cancelQuery = nil
			c.mu.Unlock()
			select {
			case <-c.ctx.Done():
				return
			case <-h.wake:
				continue
			}
		}
		src := h.base
		if src.kind == kindKV {
			prefixes := make([]string, 0, len(h.subs))
			for s := range h.subs {
				prefixes = append(prefixes, s.prefix)
			}
			root := commonParent(prefixes)
			if root != h.root {
				h.root, index, last = root, 0, 0
			}
			src.root = root
		}
		qctx, cancel := context.WithCancel(c.ctx)
		h.cancelQuery = cancel
		c.mu.Unlock()

		// Rate-limit re-queries: a burst goes out at once (a sporadic change
		// costs no latency), a key that changes all the time is re-queried
		// once per MinRequeryInterval on average.
		if wait := limit.take(time.Now()); wait > 0 {
			if !sleep(qctx, wait) && c.ctx.Err() != nil {
				cancel()
				return
			}
		}
		var wait time.Duration
		if index > 0 {
			wait = jitter(c.opts.WaitTime)
		}
		list, idx, err := src.fetch(qctx, c, c.block, index, wait)
		superseded := qctx.Err() != nil
		cancel()
		if c.ctx.Err() != nil {
			return
		}
		if err != nil {
			if superseded {
				continue // a new subscriber needs a wider parent
			}
			failures++
			index = 0
			h.broadcast(&event{root: src.root, err: err})
			if !sleep(c.ctx, backoff(c.opts.BackoffMin, c.opts.BackoffMax, failures)) {
				return
			}
			continue
		}
		failures = 0
		if idx == 0 {
			idx = 1 // Consul rule: never block on index 0 after the first read
		}
		ev := &event{root: src.root, list: list, idx: idx}
		if last > 0 && idx < last {
			// Consul rule: an index that goes backwards resets to 0 (a full
			// read next); receivers cannot tell what changed.
			ev.reset = true
			index = 0
		} else {
			if index > 0 && idx == index {
				continue // the wait timed out; nothing changed
			}
			index = idx
		}
		last = idx
		h.broadcast(ev)
	}
}

func (h *hub) broadcast(ev *event) {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	for s := range h.subs {
		s.offer(ev)
	}
}

// jitter returns d plus or minus up to d/16.
func jitter(d time.Duration) time.Duration {
	j := int64(d / 16)
	if j <= 0 {
		return d
	}
	return d + time.Duration(rand.Int64N(2*j+1)-j)
}

// backoff returns the jittered exponential delay after n consecutive
// failures: between half and all of min(max, lo*2^(n-1)).
func backoff(lo, hi time.Duration, n int) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// sleep waits d; it reports false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// requeryBurst is how many re-queries may go out back to back.
const requeryBurst = 10

// requeryLimiter is a token bucket: requeryBurst tokens, one more every
// interval. Consul asks clients to rate-limit blocking queries whose index
// keeps changing; a plain minimum spacing would add up to a whole interval
// of latency to every change.
type requeryLimiter struct {
	interval time.Duration
	tokens   float64
	last     time.Time
}

func newRequeryLimiter(interval time.Duration) *requeryLimiter {
	return &requeryLimiter{interval: interval, tokens: requeryBurst}
}

// take spends a token at now and returns how long to wait first (0 when a
// token was available).
func (l *requeryLimiter) take(now time.Time) time.Duration {
	if !l.last.IsZero() {
		l.tokens = min(requeryBurst, l.tokens+float64(now.Sub(l.last))/float64(l.interval))
	}
	l.last = now
	if l.tokens >= 1 {
		l.tokens--
		return 0
	}
	wait := time.Duration((1 - l.tokens) * float64(l.interval))
	l.tokens = 0
	l.last = now.Add(wait)
	return wait
}
