package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
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

// The notification connection is PINGed every pingInterval: a connection
// the server closed (a restart) or that stopped answering is otherwise not
// noticed while idle. A PING not answered within pingTimeout breaks it.
const (
	pingInterval = time.Second
	pingTimeout  = 3 * time.Second
)

// Watch watches prefix. All watches of a Client share one dedicated RESP3
// connection that learns of changes by one of two mechanisms
// (Options.Watch):
//
//   - tracking (the default): CLIENT TRACKING ON BCAST with one PREFIX per
//     distinct watched prefix (prefixes that contain one another are
//     merged: Redis refuses overlapping ones). It needs no server
//     configuration and reports every write, delete, expiry and eviction
//     of a key under the prefix, and FLUSHALL/FLUSHDB as an "everything"
//     invalidation.
//   - keyspace: keyspace notifications, one PSUBSCRIBE
//     __keyspace@DB__:PREFIX* per prefix (or __keyevent@DB__:* when the
//     server sends key-event notifications only). The server must have
//     notify-keyspace-events with K or E, and A or all of g, $, h, x and e;
//     every event on a key (set, del, hset, expired, evicted, rename_to, ...)
//     re-reads that key. FLUSHALL, FLUSHDB and SWAPDB send no notification:
//     they are found within Options.PollInterval by INFO commandstats
//     counters, and re-list the prefix.
//
// When the server refuses CLIENT TRACKING, the watch tries keyspace
// notifications; when notify-keyspace-events lacks what is needed (or
// cannot be read), it polls: every watch re-lists its prefix every
// Options.PollInterval, diffing each read against the last. Each fallback
// is logged at WARN once; Options.Watch "poll" polls from the start.
//
// Each notification costs one read of the keys it names (pipelined
// MGET/HGETALL); an "everything" notification re-lists the prefix.
// Notifications are coalesced while a read runs.
//
// Notifications are fire and forget, so whenever the connection is
// (re)made, every watch re-lists its prefix: after an outage it sends the
// result as a Reset (deletes made meanwhile included). While disconnected
// each watch sends one Update whose Err wraps ErrConnectionLost; the
// connection is retried with jittered backoff.
//
// rev is ignored (Redis has no revisions): the first Update is a Reset
// with the whole prefix, read once the connection covers it, so that a
// change made between the caller's Get and Watch is not lost.
func (c *Client) Watch(ctx context.Context, prefix string, _ uint64) (<-chan backends.Update, error) {
	prefix = backends.CleanKey(prefix)
	var t *tracker
	if !c.life.Enter(func() {
		if c.trk == nil {
			trk := newTracker(c)
			c.trk = trk
			c.life.Go(func() { trk.run(c.life.Context()) })
		}
		t = c.trk
	}) {
		return nil, fmt.Errorf("redis: watch %q: client closed", prefix)
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.life.Context(), cancel)
	w := &watch{c: c, t: t, prefix: prefix, rp: c.toRedis(prefix), out: make(chan backends.Update, 1), wake: make(chan struct{}, 1)}
	if prefix == "/" {
		w.rp = ""
	}
	// No starting view: Redis has no revision to resume from, so what
	// changed between the caller's read and this call is unknown. The first
	// re-list (once the connection covers the prefix) is sent whole, as a
	// Reset; a caller holding the same data sees no change.
	w.reset = true
	t.add(w)
	go func() {
		defer c.life.Done()
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

	mu         sync.Mutex
	watches    map[*watch]bool
	gen        uint64   // bumped on every new tracking connection
	covered    []string // Redis key prefixes tracked on the connection
	err        error    // non-nil while the connection is down
	polling    bool     // the server cannot push changes, or polling was asked for
	unverified bool     // logged: notify-keyspace-events could not be read
	// changed is cancelled at the next change of the connection's state
	// (a context, not a channel, so that a read bounded by it needs no
	// goroutine: readContext).
	changed       context.Context
	cancelChanged context.CancelFunc
}

func newTracker(c *Client) *tracker {
	t := &tracker{c: c, added: make(chan struct{}, 1), watches: map[*watch]bool{}}
	t.changed, t.cancelChanged = context.WithCancel(context.Background())
	return t
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

// state is what a watch reads: the polling flag, the generation that
// covers w, a context cancelled at the next change, and the connection
// error.
func (t *tracker) state(w *watch) (polling bool, armed uint64, changed context.Context, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.polling, w.armed, t.changed, t.err
}

// broadcast wakes every watch; t.mu held.
func (t *tracker) broadcast() {
	t.cancelChanged()
	t.changed, t.cancelChanged = context.WithCancel(context.Background())
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

// dispatch hands changed Redis keys (all: everything) to the watches whose
// prefix they fall under.
func (t *tracker) dispatch(keys []string, all bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for w := range t.watches {
		if all {
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

// invalidated is the tracking connection's callback: nil messages mean
// everything (FLUSHALL, FLUSHDB).
func (t *tracker) invalidated(msgs []rueidis.RedisMessage) {
	keys := make([]string, 0, len(msgs))
	for _, m := range msgs {
		if s, err := m.ToString(); err == nil {
			keys = append(keys, s)
		}
	}
	t.dispatch(keys, msgs == nil)
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
	mode := t.c.mode
	if mode == WatchPoll {
		t.c.log.Info("redis: watches poll", "node", t.c.node, "interval", t.c.poll)
		t.poll()
		return
	}
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
		err := t.connect(ctx, mode, cover, &attempt)
		if ctx.Err() != nil {
			return
		}
		var refused *rueidis.RedisError
		var off *keyspaceOffError
		switch {
		case mode == WatchTracking && errors.As(err, &refused):
			t.c.log.Warn("redis: CLIENT TRACKING unavailable; trying keyspace notifications", "node", t.c.node, "err", err)
			mode = WatchKeyspace
			continue
		case errors.As(err, &off), mode == WatchKeyspace && errors.As(err, &refused):
			t.c.log.Warn("redis: keyspace notifications unavailable; polling instead", "node", t.c.node,
				"interval", t.c.poll, "err", err)
			t.poll()
			return
		case err != nil:
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

// poll switches every watch to polling.
func (t *tracker) poll() {
	t.mu.Lock()
	t.polling = true
	t.broadcast()
	t.mu.Unlock()
}

// keyspaceOffError says the server's notify-keyspace-events lacks what a
// keyspace watch needs.
type keyspaceOffError struct {
	flags string
	err   error // CONFIG GET's error, if it failed
}

func (e *keyspaceOffError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("cannot read notify-keyspace-events: %v", e.err)
	}
	return fmt.Sprintf("notify-keyspace-events is %q; keyspace watches need K or E, and A or g$hxe (e.g. CONFIG SET notify-keyspace-events KEA)", e.flags)
}

func (e *keyspaceOffError) Unwrap() error { return e.err }

// keyspaceFlags reports whether notify-keyspace-events flags send what a
// keyspace watch needs, and whether keyspace (K) or only key-event (E)
// notifications are on.
func keyspaceFlags(flags string) (ok, keyspace bool) {
	keyspace = strings.Contains(flags, "K")
	if !keyspace && !strings.Contains(flags, "E") {
		return false, false
	}
	if strings.Contains(flags, "A") {
		return true, keyspace
	}
	for _, class := range "g$hxe" {
		if !strings.ContainsRune(flags, class) {
			return false, keyspace
		}
	}
	return true, keyspace
}

// flushes returns how many FLUSHALL, FLUSHDB and SWAPDB the server has run
// (INFO commandstats): a change means keys went without a notification.
func (t *tracker) flushes(ctx context.Context) (uint64, error) {
	info, err := t.c.cli.Do(ctx, t.c.cli.B().Info().Section("commandstats").Build()).ToString()
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, line := range strings.Split(info, "\n") {
		for _, cmd := range []string{"flushall", "flushdb", "swapdb"} {
			if rest, ok := strings.CutPrefix(line, "cmdstat_"+cmd+":calls="); ok {
				calls, _, _ := strings.Cut(rest, ",")
				v, _ := strconv.ParseUint(calls, 10, 64)
				n += v
			}
		}
	}
	return n, nil
}

// connect runs one connection with mode's notifications until it breaks,
// ctx ends, or a new prefix overlaps the covered ones (nil: reconnect with
// the new cover).
func (t *tracker) connect(ctx context.Context, mode string, cover []string, attempt *int) error {
	// The connection is closed, not handed back to the pool: handing it
	// back sends UNSUBSCRIBE/CLIENT TRACKING OFF and waits for the answers
	// without a deadline, forever from a frozen server.
	dc, _ := t.c.cli.Dedicate()
	defer dc.Close()
	var errs <-chan error
	var subscribe func(ps []string) error
	var flushCheck <-chan time.Time
	var lastFlushes uint64
	if mode == WatchTracking {
		errs = dc.SetOnInvalidations(t.invalidated)
		subscribe = func(ps []string) error {
			args := []string{"ON", "BCAST"}
			for _, p := range ps {
				if p != "" {
					args = append(args, "PREFIX", p)
				}
			}
			return dc.Do(ctx, dc.B().Arbitrary("CLIENT", "TRACKING").Args(args...).Build()).Error()
		}
	} else {
		keyspace := true
		flags, err := dc.Do(ctx, dc.B().ConfigGet().Parameter("notify-keyspace-events").Build()).AsStrMap()
		var rerr *rueidis.RedisError
		switch {
		case errors.As(err, &rerr) && t.c.mode == WatchKeyspace:
			// CONFIG is often disabled on managed Redis, where the
			// parameter is set elsewhere: asked for, keyspace it is.
			if !t.unverified {
				t.unverified = true
				t.c.log.Warn("redis: cannot read notify-keyspace-events; assuming the server sends keyspace notifications (K, and A or g$hxe): changes are missed if it does not",
					"node", t.c.node, "err", err)
			}
		case errors.As(err, &rerr):
			return &keyspaceOffError{err: err}
		case err != nil:
			return err
		default:
			var ok bool
			if ok, keyspace = keyspaceFlags(flags["notify-keyspace-events"]); !ok {
				return &keyspaceOffError{flags: flags["notify-keyspace-events"]}
			}
		}
		if lastFlushes, err = t.flushes(ctx); err != nil {
			return err
		}
		ticker := time.NewTicker(t.c.poll)
		defer ticker.Stop()
		flushCheck = ticker.C
		space := fmt.Sprintf("__keyspace@%d__:", t.c.db)
		event := fmt.Sprintf("__keyevent@%d__:", t.c.db)
		errs = dc.SetPubSubHooks(rueidis.PubSubHooks{OnMessage: func(m rueidis.PubSubMessage) {
			if k, ok := strings.CutPrefix(m.Channel, space); ok {
				t.dispatch([]string{k}, false)
			} else if strings.HasPrefix(m.Channel, event) {
				t.dispatch([]string{m.Message}, false)
			}
		}})
		subscribed := false
		subscribe = func(ps []string) error {
			var pats []string
			switch {
			case !keyspace && subscribed:
				return nil // every key-event is already received
			case !keyspace:
				pats = []string{event + "*"}
			default:
				for _, p := range ps {
					pats = append(pats, space+escapeGlob(p)+"*")
				}
			}
			subscribed = true
			return dc.Do(ctx, dc.B().Psubscribe().Pattern(pats...).Build()).Error()
		}
	}
	if err := subscribe(cover); err != nil {
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
	ping := time.NewTicker(pingInterval)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-errs:
			if !ok || err == nil {
				err = errors.New("notification connection closed")
			}
			return err
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, pingTimeout)
			err := dc.Do(pctx, dc.B().Ping().Build()).Error()
			cancel()
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("ping: %w", err)
			}
			continue
		case <-flushCheck:
			n, err := t.flushes(ctx)
			if err != nil {
				return fmt.Errorf("info commandstats: %w", err)
			}
			if n != lastFlushes {
				lastFlushes = n
				t.dispatch(nil, true)
			}
			continue
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
		if err := subscribe(extra); err != nil {
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

// readContext bounds one read of the watch by ConnTimeout, and ends it
// early when the connection's state changes (changed cancelled): a read
// started just before an outage would otherwise hold the watch until
// ConnTimeout before it says the watch is degraded. Nothing runs until
// changed is cancelled (context.AfterFunc), so a read costs no goroutine.
func readContext(ctx context.Context, changed context.Context) (context.Context, context.CancelFunc) {
	rctx, cancel := context.WithTimeout(ctx, ConnTimeout)
	stop := context.AfterFunc(changed, cancel)
	return rctx, func() { stop(); cancel() }
}

// readFailed handles a failed read: when the connection's state changed
// meanwhile, the loop looks at the new state (a re-list follows once the
// prefix is covered again); otherwise the watch is degraded.
func (w *watch) readFailed(ctx context.Context, changed context.Context, err error) {
	w.synced = 0
	select {
	case <-changed.Done():
	default:
		w.degraded(ctx, err)
	}
}

func (w *watch) run(ctx context.Context) {
	for ctx.Err() == nil {
		polling, armed, changed, terr := w.t.state(w)
		switch {
		case polling:
			if err := w.sync(ctx, changed); err != nil {
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
			case <-changed.Done():
			}
			continue
		case armed != 0 && armed != w.synced:
			// A new connection covers the prefix: what happened before it
			// is found by a re-list.
			if err := w.sync(ctx, changed); err != nil {
				w.readFailed(ctx, changed, err)
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
		case <-changed.Done():
			continue
		case <-w.wake:
		}
		if armed == 0 {
			continue // not covered yet: the re-list at arming covers it
		}
		w.mu.Lock()
		all, pending := w.all, w.pending
		w.all, w.pending = false, nil
		w.mu.Unlock()
		if all {
			if err := w.sync(ctx, changed); err != nil {
				w.readFailed(ctx, changed, err)
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
		rctx, cancel := readContext(ctx, changed)
		srcs, err := w.c.read(rctx, keys)
		cancel()
		if err != nil {
			w.readFailed(ctx, changed, fmt.Errorf("read: %w", err)) // re-lists once the server answers
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
// The read is bounded by readContext.
func (w *watch) sync(ctx context.Context, changed context.Context) error {
	rctx, cancel := readContext(ctx, changed)
	defer cancel()
	srcs, err := w.c.list(rctx, w.prefix)
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
