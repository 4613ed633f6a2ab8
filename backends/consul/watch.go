package consul

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/internal/retry"
	"github.com/hashicorp/consul/api"
)

// firstReadTimeout bounds the plain read Watch makes before returning.
const firstReadTimeout = 30 * time.Second

// A hub runs one blocking query and keeps the answer as its state, one entry
// per key. Each answer is compared with the state: for KV by ModifyIndex,
// so the values of unchanged keys are not even decoded (see kvlist.go); for
// services by value. The keys that changed are handed to the subscribers
// whose prefix covers them, found by looking up each ancestor of the key, so
// a change costs O(changed keys), not O(keys) per subscriber.
//
// A subscriber keeps the current contents of its prefix (cur) and what its
// receiver has (known), and sends the difference over the keys touched since
// its last Update. It re-reads its whole prefix from the hub's state instead
// when it cannot rely on the changes alone: its first answer after its own
// first read, an answer to a full read (the hub's first, a new parent, after
// an error), an index that went backwards, or after an error of its own.

// entry is one key of a hub's state. Entries are never modified once in the
// state; a change installs a new entry.
type entry struct {
	key string // the clean key ("/app/db")
	val string
	mod uint64 // KV: ModifyIndex of the Consul key that supplied val
	// from is, for KV, that Consul key when it is not key without its
	// leading "/" (a folder marker "app/" for "/app", or "a//b"), else "".
	from string
	// seen is the answer that last listed the entry: read and written by
	// the hub goroutine only.
	seen uint64
}

// update turns old into new in a hub's state: an add (old nil), a delete
// (new nil) or a change.
type update struct {
	old, new *entry
}

func (u update) key() string {
	if u.new != nil {
		return u.new.key
	}
	return u.old.key
}

// hub runs one blocking query and fans what changed out to subscribers. The
// KV hub lists the longest common parent of its subscribers' prefixes.
type hub struct {
	c    *Client
	base source
	wake chan struct{}

	// Used by the hub goroutine only.
	tap tap    // KV: the body of the last answer
	gen uint64 // answers compared so far
	// listing: KV, the state is the last answer's listing entry for entry
	// (every key clean and under the root), so the next may be skimmed.
	listing bool
	// orders[order] is the last answer's keys in its order, for the skim;
	// the other is filled by the answer being compared.
	orders [2]listOrder
	order  int
	// fast is the api client's request that listDirect repeats, for
	// fastKey, with fastQuery its query without index and wait.
	fast               *http.Request
	fastKey, fastQuery string
	fastHead           []byte       // fast as req.Write writes it, after the request line
	fastRaw            []byte       // the last request written, reused
	fastAnswers        atomic.Int64 // answers listDirect read, for tests
	fastOff            bool         // readAnswer refused an answer: no more listDirect

	// guarded by c.mu
	subs            map[*sub]struct{}
	byPrefix        map[string][]*sub
	prefixesChanged bool   // the keys of byPrefix changed since parent was computed
	parent          string // KV: the common parent of the keys of byPrefix (kvgroups.go)
	// str, when set, is the Consul key prefix (no leading "/") that every
	// prefix of byPrefix starts with and that the query lists instead of
	// the parent's, narrower than it: a dense group split by string prefix
	// (splitKV in kvgroups.go). Sibling hubs' strs never overlap.
	str         string
	fullNext    bool   // KV: the next query is a full read (subscribers moved in)
	retired     bool   // the hub ends (kvgroups.go)
	root        string // KV: the parent the running query lists
	rootKey     string // KV: the Consul key prefix it lists (listKey of root and str)
	cancelQuery context.CancelFunc
	// state is the last answer, keyed by clean key without its leading "/",
	// read at stateIdx for stateRoot. The hub goroutine also reads it without
	// the lock: it is the only writer.
	state     map[string]*entry
	stateIdx  uint64
	stateRoot string
}

// sub is one Watch: it keeps its prefix's contents up to date from what the
// hub hands it, diffs them against what it last delivered and applies the
// empty-list grace.
type sub struct {
	c      *Client
	h      *hub
	prefix string
	out    chan backends.Update
	wake   chan struct{}

	// guarded by c.mu
	pending   map[string]*entry // keys changed since the last take: the new entry, nil when deleted
	pendIdx   uint64            // index of the latest answer handed to the sub; 0 when none
	pendFull  bool              // re-read the whole prefix from the hub's state
	pendReset bool              // the index went backwards: the receiver gets a Reset
	pendErr   error             // the latest answer was this error
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
	var h *hub
	if src.kind == kindKV {
		h = c.kvHubFor(src.prefix)
	} else if h = c.hubs[src.hubKey()]; h == nil {
		h = c.newHub(src)
		c.hubs[src.hubKey()] = h
		c.fitKVHubs()
	}
	s.h = h
	// Subscribe before the first read so no answer is missed; answers older
	// than the first read are ignored by index.
	h.addSub(s)
	if src.kind == kindKV && h.cancelQuery != nil && !(backends.Under(src.prefix, h.root) && strings.HasPrefix(src.prefix[1:], h.rootKey)) {
		h.cancelQuery() // the running query does not cover the new prefix
	}
	c.wg.Add(1)
	c.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}

	fctx, cancel := context.WithTimeout(ctx, firstReadTimeout)
	list, idx, err := src.fetch(fctx, c, c.read, 0, 0)
	cancel()
	if errors.Is(err, ErrPermissionDenied) || (err != nil && ctx.Err() != nil) {
		s.unsubscribe()
		c.wg.Done()
		return nil, err
	}
	first := take{err: err, idx: idx}
	if err == nil {
		first.full, first.cur = true, list.under(s.prefix)
	}
	go s.run(ctx, rev, first)
	return s.out, nil
}

func (s *sub) unsubscribe() {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	h := s.h
	h.removeSub(s)
	if len(h.subs) == 0 && h.base.kind == kindKV {
		s.c.retireKV(h)
	}
}

// The note methods hand the sub an answer; they run under c.mu. A slow sub
// accumulates the changed keys, latest entry per key.

func (s *sub) note(e *entry, key string, idx uint64) {
	if !s.pendFull {
		if s.pending == nil {
			s.pending = map[string]*entry{}
		}
		s.pending[key] = e
	}
	s.pendIdx, s.pendErr = idx, nil
	s.poke()
}

func (s *sub) noteFull(idx uint64, reset bool) {
	clear(s.pending)
	s.pendFull, s.pendIdx, s.pendErr = true, idx, nil
	s.pendReset = s.pendReset || reset
	s.poke()
}

func (s *sub) noteErr(err error) {
	clear(s.pending)
	s.pendFull, s.pendIdx, s.pendErr = false, 0, err
	s.poke()
}

func (s *sub) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// take is what a sub processes at once.
type take struct {
	err     error
	idx     uint64            // the answer's index; 0 when there is no new answer
	full    bool              // cur replaces the prefix's contents
	cur     map[string]string // when full
	changes []keyEntry        // when not full
}

type keyEntry struct {
	key string
	e   *entry // nil: deleted
}

// take collects what the hub handed the sub since the last call, reading the
// whole prefix from the hub's state when the changes are not enough.
func (st *subState) take() take {
	s := st.s
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	h := s.h // under the lock: a merge moves s to another hub (kvgroups.go)
	t := take{err: s.pendErr, idx: s.pendIdx}
	if s.pendReset {
		st.resetWanted = true
	}
	full := s.pendFull
	s.pendErr, s.pendIdx, s.pendFull, s.pendReset = nil, 0, false, false
	pending := s.pending
	defer clear(pending)
	switch {
	case t.err != nil || t.idx == 0:
		return t
	case st.baseIdx > 0 && !st.resetWanted && t.idx < st.baseIdx:
		t.idx = 0 // older than this watch's first read
		return t
	}
	st.baseIdx = 0
	if full || !st.synced || st.degraded || st.resetWanted {
		if !backends.Under(s.prefix, h.stateRoot) && h.base.kind == kindKV {
			t.idx = 0 // the state is for a parent that does not cover this prefix yet
			return t
		}
		t.full, t.idx, t.cur = true, max(t.idx, h.stateIdx), map[string]string{}
		for _, e := range h.state {
			if backends.Under(e.key, s.prefix) {
				t.cur[e.key] = e.val
			}
		}
		st.synced = true
		return t
	}
	t.changes = make([]keyEntry, 0, len(pending))
	for k, e := range pending {
		t.changes = append(t.changes, keyEntry{k, e})
	}
	return t
}

func (s *sub) run(ctx context.Context, rev uint64, first take) {
	defer s.c.wg.Done()
	defer close(s.out)
	defer s.unsubscribe()

	st := subState{s: s, ctx: ctx, cur: map[string]string{}, known: map[string]string{}, dirty: map[string]struct{}{}}
	if first.err == nil && (rev == 0 || first.idx <= rev) {
		st.known = maps.Clone(first.cur)
		st.haveKnown = true
	}
	if !st.process(first) {
		return
	}
	if first.err == nil {
		st.baseIdx = first.idx
	}
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
		if !st.process(st.take()) {
			return
		}
	}
}

type subState struct {
	s           *sub
	ctx         context.Context
	cur         map[string]string   // the prefix's contents in the store
	curIdx      uint64              // the index cur was read at
	known       map[string]string   // what the receiver has
	dirty       map[string]struct{} // keys that may differ between known and cur
	allDirty    bool                // every key may differ
	haveKnown   bool
	synced      bool // cur was read from the hub's state at least once
	degraded    bool
	resetWanted bool
	baseIdx     uint64 // answers below this index predate the first read
	lastRev     uint64 // highest Rev sent
	graceSince  time.Time
	graceTimer  *time.Timer
	graceC      <-chan time.Time
}

// process applies one take (or, with t.idx 0, re-evaluates the grace); it
// reports false when the receiver is gone.
func (st *subState) process(t take) bool {
	s := st.s
	if t.err != nil {
		if st.degraded {
			return true
		}
		st.degraded = true
		s.c.log.Warn("consul watch degraded", "prefix", s.prefix, "err", t.err)
		return st.send(backends.Update{Prefix: s.prefix, Err: t.err})
	}
	switch {
	case t.full:
		st.cur, st.curIdx, st.allDirty = t.cur, t.idx, true
	case t.idx > 0:
		for _, ch := range t.changes {
			if ch.e == nil {
				delete(st.cur, ch.key)
			} else {
				st.cur[ch.key] = ch.e.val
			}
			st.dirty[ch.key] = struct{}{}
		}
		st.curIdx = t.idx
	case st.graceSince.IsZero():
		return true // nothing new
	}
	idx := st.curIdx
	grace := s.c.opts.EmptyGrace
	if len(st.cur) == 0 && len(st.known) > 0 && grace > 0 {
		if st.graceSince.IsZero() {
			st.graceSince = time.Now()
			st.graceTimer = time.NewTimer(grace)
			st.graceC = st.graceTimer.C
			s.c.log.Warn("consul: list became empty; holding the previous contents back for the grace period",
				"prefix", s.prefix, "rev", idx, "grace", grace, "previous_keys", len(st.known))
		}
		if time.Since(st.graceSince) < grace {
			return true
		}
		s.c.log.Warn("consul: list still empty after the grace period; delivering it",
			"prefix", s.prefix, "rev", idx, "grace", grace)
		st.stopGrace()
	} else if !st.graceSince.IsZero() {
		s.c.log.Info("consul: list no longer empty within the grace period", "prefix", s.prefix, "rev", idx)
		st.stopGrace()
	}
	if st.degraded && !st.resetWanted && st.haveKnown && idx <= st.lastRev && len(backends.Diff(st.known, st.cur)) == 0 {
		// Healthy again with nothing new: an Update needs a higher Rev, so
		// the receiver learns of the recovery with the next change.
		st.degraded = false
		st.clearDirty()
		return true
	}
	if st.resetWanted || st.degraded || !st.haveKnown {
		st.known, st.haveKnown, st.degraded, st.resetWanted = maps.Clone(st.cur), true, false, false
		st.clearDirty()
		return st.send(backends.Update{Prefix: s.prefix, Rev: idx, Reset: true, KVs: maps.Clone(st.cur)})
	}
	changes := st.changes()
	st.clearDirty()
	if len(changes) == 0 {
		return true // spurious wake-up
	}
	for _, ch := range changes {
		if ch.Deleted {
			delete(st.known, ch.Key)
		} else {
			st.known[ch.Key] = ch.Value
		}
	}
	return st.send(backends.Update{Prefix: s.prefix, Rev: idx, Changes: changes})
}

// changes lists what turns known into cur, sorted by key.
func (st *subState) changes() []backends.Change {
	if st.allDirty {
		return backends.Diff(st.known, st.cur)
	}
	var out []backends.Change
	for k := range st.dirty {
		v, ok := st.cur[k]
		kv, had := st.known[k]
		switch {
		case ok && (!had || kv != v):
			out = append(out, backends.Change{Key: k, Value: v})
		case !ok && had:
			out = append(out, backends.Change{Key: k, Deleted: true})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func (st *subState) clearDirty() {
	clear(st.dirty)
	st.allDirty = false
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
	defer h.tap.direct.close()
	var (
		index    uint64 // the index the next query waits on; 0 = full read
		last     uint64 // the last index delivered, to detect going backwards
		limit    = newRequeryLimiter(c.opts.MinRequeryInterval)
		failures int
		afterErr bool // the last query failed: compare the next answer by value
		// churn: the last answer brought no change to any watched key
		// (see requeryLimiter); the next query waits for a token.
		churn bool
		// listed: KV, the Consul key prefix the query lists.
		listed string
	)
	for {
		c.mu.Lock()
		if h.retired {
			h.cancelQuery = nil
			c.mu.Unlock()
			return
		}
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
			if h.prefixesChanged {
				for c.splitKV(h) {
				}
				prefixes := make([]string, 0, len(h.byPrefix))
				for p := range h.byPrefix {
					prefixes = append(prefixes, p)
				}
				h.parent, h.prefixesChanged = commonParent(prefixes), false
			}
			root, key := h.parent, listKey(h.parent, h.str)
			if root != h.root || key != h.rootKey || h.fullNext {
				h.root, h.rootKey, index, last, h.fullNext = root, key, 0, 0, false
			}
			src.root = root
			listed = key
		}
		qctx, cancel := context.WithCancel(c.ctx)
		h.cancelQuery = cancel
		c.mu.Unlock()

		// Rate-limit re-queries after index churn only: an answer that
		// changed a watched key is followed by the next query at once.
		if wait := limit.wait(time.Now(), churn); wait > 0 {
			if !retry.Sleep(qctx, wait) && c.ctx.Err() != nil {
				cancel()
				return
			}
		}
		churn = true // until an answer brings a change
		var wait time.Duration
		if index > 0 {
			wait = retry.Spread(c.opts.WaitTime, waitJitter)
		}
		full := index == 0
		reset := false
		var (
			pairs api.KVPairs
			list  kvList
			idx   uint64
			err   error
		)
		pctx, stopProbe := context.WithCancelCause(qctx)
		stopProbing := h.probe(pctx, stopProbe)
		if src.kind == kindKV {
			pairs, idx, err = h.list(pctx, src.root, listed, index, wait)
		} else {
			list, idx, err = src.fetch(pctx, c, c.block, index, wait)
		}
		stopProbe(nil)
		stopProbing()
		superseded := qctx.Err() != nil
		if cause := context.Cause(pctx); err != nil && errors.Is(cause, ErrAgentNotAnswering) {
			err = cause
		}
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
			// The next answer is a full read compared by value, not by
			// ModifyIndex: an agent restarted and re-populated (a -dev
			// agent) can give a changed key the index it had before.
			afterErr = true
			h.broadcastErr(err)
			if !retry.Sleep(c.ctx, c.retryWait(failures)) {
				return
			}
			churn = false // the backoff was the wait
			continue
		}
		failures = 0
		if afterErr {
			afterErr, reset = false, true
		}
		if idx == 0 {
			idx = 1 // Consul rule: never block on index 0 after the first read
		}
		if last > 0 && idx < last {
			// Consul rule: an index that goes backwards resets to 0 (a full
			// read next); receivers cannot tell what changed.
			reset = true
			index = 0
		} else {
			if index > 0 && idx == index {
				continue // the wait timed out; nothing changed
			}
			index = idx
		}
		last = idx
		d := h.newDiffer(src.root, reset)
		if src.kind == kindKV {
			err = d.kv(&h.tap, pairs)
		} else {
			d.list(list)
		}
		if err != nil {
			failures++
			index = 0
			h.broadcastErr(c.wrap("list", src.root, err))
			if !retry.Sleep(c.ctx, retry.Backoff(c.opts.BackoffMin, c.opts.BackoffMax, failures)) {
				return
			}
			churn = false
			continue
		}
		h.noteListing(d, src.kind == kindKV && h.tap.ok)
		churn = !h.publish(d.done(), idx, src.root, full || reset, reset)
	}
}

// requestHead is what req.Write writes for req after its request line (the
// Host line, the headers and the blank line), or nil when that is not
// "GET <request URI> HTTP/1.1\r\n" followed by headers (the request
// listDirect repeats, with another request URI).
func requestHead(req *http.Request) []byte {
	var b bytes.Buffer
	if req.Write(&b) != nil {
		return nil
	}
	line := "GET " + req.URL.RequestURI() + " HTTP/1.1\r\n"
	out := b.Bytes()
	if !bytes.HasPrefix(out, []byte(line)) || !bytes.HasSuffix(out, []byte("\r\n\r\n")) {
		return nil
	}
	return out[len(line):]
}

// ErrAgentNotAnswering is wrapped by the error of a blocking query ended
// because the agent did not answer a probe (Options.ProbeInterval): it
// accepts connections but does not answer (frozen, overloaded).
var ErrAgentNotAnswering = errors.New("agent not answering")

// probe asks the agent for its leader every ProbeInterval while a query
// (blocking or a plain read) runs under ctx; when a probe gets no answer
// within ProbeTimeout it cancels ctx with an error wrapping
// ErrAgentNotAnswering. Nothing runs until the first probe is due (a
// timer), so a query answered within ProbeInterval, as every query of a
// watch under change is, costs no goroutine. Cancel ctx, then call stop: it
// returns once no probe runs.
func (h *hub) probe(ctx context.Context, cancel context.CancelCauseFunc) (stop func()) {
	c := h.c
	if c.opts.ProbeInterval < 0 {
		return func() {}
	}
	var (
		mu      sync.Mutex
		stopped bool
		running chan struct{} // closed when the probe in progress ends
		t       *time.Timer
	)
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(c.opts.ProbeInterval, func() {
		mu.Lock()
		if stopped {
			mu.Unlock()
			return
		}
		done := make(chan struct{})
		running = done
		mu.Unlock()
		defer close(done)
		pctx, stopTimeout := context.WithTimeout(ctx, c.opts.ProbeTimeout)
		_, err := c.read.Status().LeaderWithQueryOptions(c.queryOptions(pctx, 0, 0))
		timedOut := pctx.Err() != nil && ctx.Err() == nil
		stopTimeout()
		if timedOut {
			cancel(fmt.Errorf("consul: agent %s: %w: no answer to a status request within %v (err: %v)", c.addr, ErrAgentNotAnswering, c.opts.ProbeTimeout, err))
			return
		}
		mu.Lock()
		if !stopped && ctx.Err() == nil {
			t.Reset(c.opts.ProbeInterval)
		}
		mu.Unlock()
	})
	return func() {
		mu.Lock()
		stopped = true
		t.Stop()
		done := running
		mu.Unlock()
		if done != nil {
			<-done
		}
	}
}

// list runs the KV blocking query on root, listing the Consul keys that
// start with key (listKey). The answer's body is left in h.tap when the
// transport could take it (pairs is then empty).
func (h *hub) list(ctx context.Context, root, key string, index uint64, wait time.Duration) (api.KVPairs, uint64, error) {
	c := h.c
	ctx, cancel := blockingContext(ctx, wait)
	defer cancel()
	if idx, ok := h.listDirect(ctx, key, index, wait); ok {
		return nil, idx, nil
	}
	h.tap.ok = false
	ctx = context.WithValue(ctx, tapKey{}, &h.tap)
	pairs, meta, err := c.block.KV().List(key, c.queryOptions(ctx, index, wait))
	if err != nil {
		return nil, 0, c.wrap("list", root, err)
	}
	return pairs, meta.LastIndex, nil
}

// listDirect is list without the api client: on the direct connection, it
// repeats the request the api client last built for key (path, token,
// datacenter, headers) with this index and wait. The api client's request
// building, its http.Client and its reading of the answer's metadata were
// a tenth of the daemon's CPU per change; its answer is read by
// readAnswer (answer.go), not http.ReadResponse. A 200 answer's body is
// left in h.tap; a 404 (no key under root) is an empty list, as the api
// client has it. It reports false, having changed nothing the caller
// keeps, when the query did not go this way or its answer is anything else
// (an error, another status, no valid X-Consul-Index): the caller then
// asks the api client, which makes the same request and reports its
// errors as ever.
func (h *hub) listDirect(ctx context.Context, key string, index uint64, wait time.Duration) (uint64, bool) {
	d := h.tap.direct
	if d == nil || index == 0 || wait <= 0 || h.fastOff {
		return 0, false
	}
	if tr := h.tap.req; tr != nil {
		// The api client built a new request: take it as the one to repeat.
		h.tap.req = nil
		h.fast = nil
		q := tr.URL.Query()
		if tr.URL.Path == "/v1/kv/"+key && q.Has("recurse") && q.Has("index") && q.Has("wait") && d.usable(tr) {
			if head := requestHead(tr); head != nil {
				q.Del("index")
				q.Del("wait")
				h.fast, h.fastKey, h.fastQuery, h.fastHead = tr, key, q.Encode(), head
			}
		}
	}
	if h.fast == nil || h.fastKey != key {
		return 0, false
	}
	u := *h.fast.URL
	ms := max(wait.Milliseconds(), 1) // as the api client writes it
	u.RawQuery = h.fastQuery + "&index=" + strconv.FormatUint(index, 10) + "&wait=" + strconv.FormatInt(ms, 10) + "ms"
	req := h.fast.WithContext(ctx)
	req.URL = &u
	// req.Write's bytes for req: its request line, then the template's.
	raw := append(h.fastRaw[:0], "GET "...)
	raw = append(raw, u.RequestURI()...)
	raw = append(raw, " HTTP/1.1\r\n"...)
	raw = append(raw, h.fastHead...)
	h.fastRaw = raw
	tp := &h.tap // every field of an answer is set by roundTrip when it returns no error
	if _, err := d.roundTrip(req, raw, tp); err != nil {
		if errors.Is(err, errUnusual) {
			h.fastOff = true // this agent's answers are not an agent's: the api client reads them
		}
		return 0, false
	}
	if !tp.hasIndex || (tp.status != http.StatusOK && tp.status != http.StatusNotFound) {
		h.fast = nil // the api client decides, and builds the request anew
		return 0, false
	}
	h.fastAnswers.Add(1)
	return tp.index, true
}

// differ compares one answer with a hub's state. It runs in the hub
// goroutine, without the lock.
type differ struct {
	old     map[string]*entry // the state, or empty after a reset
	root    string
	gen     uint64
	upds    []update
	at      map[string]int // key without "/" → index in upds, for keys listed twice
	seenOld int            // distinct entries of old listed
	dots    *backends.DotKeys
	// since, when set, is the index of the answer old is the listing of,
	// entry for entry: the answer may be skimmed (kvskim.go).
	since uint64
	gens  *uint64 // the hub's answer counter: a fresh gen when a skim gives up
	// prev is the order of the answer old is the listing of (valid with
	// since); next receives this answer's clean keys in its order.
	prev, next *listOrder
	// slow: a pair was not a clean key under root (escaped, unclean, a
	// folder marker, a dot segment, outside root), so the state is not the
	// listing entry for entry.
	slow bool
}

func (h *hub) newDiffer(root string, reset bool) *differ {
	h.gen++
	d := &differ{old: h.state, root: root, gen: h.gen, gens: &h.gen}
	if h.c != nil {
		d.dots = &h.c.dots
	}
	d.prev, d.next = &h.orders[h.order], &h.orders[1-h.order]
	d.next.reset()
	if reset {
		d.old = map[string]*entry{}
	} else if h.listing && h.stateRoot == root && h.stateIdx > 0 && d.prev.len() == len(h.state) {
		d.since = h.stateIdx
	}
	return d
}

// noteListing records, once d's answer is the state, whether the state is
// that answer's listing entry for entry: a KV answer read from its body
// (body) in which no pair was slow. The answer's order is then the one the
// next answer is skimmed against.
func (h *hub) noteListing(d *differ, body bool) {
	h.listing = body && !d.slow
	if h.listing {
		h.order = 1 - h.order
	}
}

// kv compares a KV list answer: the body in tp, else the decoded pairs.
// Keys are cleaned like confd does; a folder marker ("app/") never hides
// the real key ("app") it cleans to, whichever comes first.
func (d *differ) kv(tp *tap, pairs api.KVPairs) error {
	if tp.ok {
		if d.since > 0 {
			if ok, err := d.skim(tp.body); ok || err != nil {
				return err
			}
			d.restart()
		}
		return scanKVList(tp.body, d.pair)
	}
	for _, p := range pairs {
		if err := d.pair(&rawPair{key: []byte(p.Key), mod: p.ModifyIndex, val: p.Value, plain: true}); err != nil {
			return err
		}
	}
	return nil
}

// pair compares one KV pair with the state.
func (d *differ) pair(p *rawPair) error {
	var (
		tk     string // the clean key without its leading "/"
		from   string
		marker bool
		e      *entry
	)
	if !p.keyEsc && cleanRel(p.key) {
		if !underRel(p.key, d.root) {
			d.slow = true
			return nil
		}
		d.next.add(p.key, p.mod)
		e = d.old[string(p.key)]
		if e != nil && e.seen != d.gen && e.from == "" && e.mod == p.mod {
			e.seen = d.gen // unchanged: the common case, no allocation
			d.seenOld++
			return nil
		}
		tk = string(p.key)
	} else {
		d.slow = true
		k, err := p.keyString()
		if err != nil {
			return err
		}
		if backends.HasDotSegment(k) {
			d.dots.Skip("/"+k, "")
			return nil
		}
		clean := backends.CleanKey(k)
		if !backends.Under(clean, d.root) {
			return nil
		}
		tk, from, marker = clean[1:], k, strings.HasSuffix(k, "/")
		e = d.old[tk]
	}
	i, inUpds := d.at[tk]
	if (inUpds || (e != nil && e.seen == d.gen)) && marker {
		return nil // a folder marker never hides a real key
	}
	if e != nil && e.seen != d.gen {
		e.seen = d.gen
		d.seenOld++
	}
	if e != nil && e.mod == p.mod && e.from == from {
		if inUpds {
			d.upds[i].new = e // an earlier listing of the key is overridden
		}
		return nil
	}
	val, err := p.value()
	if err != nil {
		return err
	}
	ne := &entry{key: "/" + tk, val: val, mod: p.mod, from: from, seen: d.gen}
	if inUpds {
		d.upds[i].new = ne
		return nil
	}
	if d.at == nil {
		d.at = map[string]int{}
	}
	d.at[tk] = len(d.upds)
	d.upds = append(d.upds, update{old: e, new: ne})
	return nil
}

// list compares a service or catalog answer, by value.
func (d *differ) list(l kvList) {
	for _, k := range l.keys {
		v := l.vals[k]
		e := d.old[k[1:]]
		if e != nil {
			e.seen = d.gen
			d.seenOld++
			if e.val == v {
				continue
			}
		}
		d.upds = append(d.upds, update{old: e, new: &entry{key: k, val: v, seen: d.gen}})
	}
}

// done adds the deletes and returns the updates.
func (d *differ) done() []update {
	if d.seenOld < len(d.old) {
		for _, e := range d.old {
			if e.seen != d.gen {
				d.upds = append(d.upds, update{old: e})
			}
		}
	}
	return d.upds
}

// cleanRel reports whether the Consul key k is already clean once "/" is
// put in front of it: no leading, trailing or double "/", no "." or ".."
// segment.
func cleanRel(k []byte) bool {
	if len(k) == 0 {
		return true
	}
	seg := 0 // start of the current segment
	for i := 0; i <= len(k); i++ {
		if i < len(k) && k[i] != '/' {
			continue
		}
		switch n := i - seg; {
		case n == 0:
			return false
		case n == 1 && k[seg] == '.', n == 2 && k[seg] == '.' && k[seg+1] == '.':
			return false
		}
		seg = i + 1
	}
	return true
}

// underRel is backends.Under for a clean key given without its leading "/".
func underRel(k []byte, root string) bool {
	if root == "/" {
		return true
	}
	r := root[1:]
	if len(k) < len(r) || string(k[:len(r)]) != r {
		return false
	}
	return len(k) == len(r) || k[len(r)] == '/'
}

// publish installs updates in the state and hands each changed key to the
// subscribers whose prefix covers it; with full, every subscriber under root
// re-reads its prefix instead. It reports whether any subscriber was handed
// anything: false means the answer changed no watched key (index churn, or
// keys under the parent outside every watched prefix).
func (h *hub) publish(upds []update, idx uint64, root string, full, reset bool) (handed bool) {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	if reset {
		h.state = make(map[string]*entry, len(upds))
	}
	h.stateIdx, h.stateRoot = idx, root
	for _, u := range upds {
		if u.new == u.old {
			continue
		}
		key := u.key()
		if u.new == nil {
			delete(h.state, key[1:])
		} else {
			h.state[key[1:]] = u.new
		}
		if full {
			continue
		}
		// The subscribers covering key are those of key and of each of its
		// ancestors.
		for p := key; ; {
			for _, s := range h.byPrefix[p] {
				s.note(u.new, key, idx)
				handed = true
			}
			if p == "/" {
				break
			}
			p = p[:max(strings.LastIndexByte(p, '/'), 1)]
		}
	}
	if full {
		for s := range h.subs {
			if root == "" || backends.Under(s.prefix, root) {
				s.noteFull(idx, reset)
				handed = true
			}
		}
	}
	return handed
}

func (h *hub) broadcastErr(err error) {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	for s := range h.subs {
		s.noteErr(err)
	}
}

// waitJitter spreads the blocking-query wait: plus or minus up to 1/16 of
// it (retry.Spread).
const waitJitter = 1.0 / 16

// requeryBurst is how many re-queries after index churn may go out back to
// back.
const requeryBurst = 10

// requeryLimiter paces the re-queries of one blocking query. Consul asks
// clients to rate-limit blocking queries whose index keeps changing without
// a change they care about (index churn); it does not ask them to delay real
// changes. So a re-query after an answer that changed a watched key goes out
// at once and spends nothing; one after churn (an answer that changed no
// watched key, or a wait that ended without a new index) takes a token from
// a bucket of requeryBurst tokens refilled at one per interval: a burst of
// churn costs no latency, sustained churn is re-queried once per interval
// on average. A plain minimum spacing would add up to a whole interval of
// latency to every change.
type requeryLimiter struct {
	interval time.Duration
	tokens   float64
	last     time.Time
}

func newRequeryLimiter(interval time.Duration) *requeryLimiter {
	return &requeryLimiter{interval: interval, tokens: requeryBurst}
}

// wait returns how long to wait at now before the next re-query: 0 after a
// real change (churn false), else what take says.
func (l *requeryLimiter) wait(now time.Time, churn bool) time.Duration {
	if !churn {
		return 0
	}
	return l.take(now)
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
