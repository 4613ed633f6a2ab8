package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/backends/internal/retry"
	"github.com/redis/rueidis"
)

// ErrConnectionLost is wrapped by the Err of the Update a watch sends when
// its connection to the server broke (or could not be made).
var ErrConnectionLost = errors.New("connection lost")

// errNoTracking means the server refused CLIENT TRACKING (RESP2 only, or
// a proxy that does not pass it): the watch polls instead.
var errNoTracking = errors.New("client tracking unavailable")

// Watch watches prefix with server-assisted invalidation: one dedicated
// RESP3 connection per Watch call runs CLIENT TRACKING ON BCAST PREFIX
// <prefix>, which needs no server configuration and reports every write,
// delete and expiry of a key under the prefix (FLUSHALL and FLUSHDB as a
// "everything" invalidation). Each notification costs one read of the keys
// it names (pipelined MGET/HGETALL); an "everything" notification re-lists
// the prefix. Notifications are coalesced while a read runs.
//
// Invalidation messages are fire and forget, so on every (re)connect the
// watch re-lists the prefix: after an outage it sends the result as a
// Reset (deletes made meanwhile included). While disconnected it sends one Update whose Err
// wraps ErrConnectionLost and retries with jittered backoff.
//
// When the server refuses CLIENT TRACKING, the watch logs so once at
// start and polls the prefix every Options.PollInterval, diffing each
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
	c.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.closeCtx, cancel)
	w := &watch{c: c, prefix: prefix, out: make(chan backends.Update, 1)}
	// The starting view: from now. If the server is down, the first
	// successful read is sent as a Reset.
	if srcs, err := c.list(ctx, prefix); err == nil {
		w.srcs = srcs
	} else {
		w.reset = true
	}
	go func() {
		defer c.wg.Done()
		defer cancel()
		defer stop()
		defer close(w.out)
		w.run(ctx)
	}()
	return w.out, nil
}

type watch struct {
	c      *Client
	prefix string
	out    chan backends.Update
	srcs   sources // the last view, by Redis key
	reset  bool    // the next good view is sent as a Reset
	failed bool    // an Err was sent since the last good view

	mu      sync.Mutex
	pending map[string]bool // Redis keys invalidated, not yet read
	all     bool            // everything invalidated (FLUSHALL)
	wake    chan struct{}   // signalled (cap 1) when pending grows
}

func (w *watch) run(ctx context.Context) {
	w.wake = make(chan struct{}, 1)
	attempt := 0
	polling := false
	for ctx.Err() == nil {
		var err error
		if !polling {
			err = w.track(ctx, &attempt)
			if errors.Is(err, errNoTracking) {
				w.c.log.Warn("redis: CLIENT TRACKING unavailable; polling instead", "prefix", w.prefix,
					"interval", w.c.poll, "err", err)
				polling = true
				continue
			}
		} else {
			err = w.pollOnce(ctx)
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if !w.failed {
				w.failed = true
				w.send(ctx, backends.Update{Prefix: w.prefix, Err: fmt.Errorf("redis: %s: watch %q: %w: %w", w.c.node, w.prefix, ErrConnectionLost, err)})
			}
			attempt++
			if !retry.Sleep(ctx, retry.Backoff(backoffMin, backoffMax, attempt)) {
				return
			}
			continue
		}
		attempt = 0
		if polling && !retry.Sleep(ctx, w.c.poll) {
			return
		}
	}
}

// Backoff bounds between reconnection attempts.
const (
	backoffMin = 100 * time.Millisecond
	backoffMax = 5 * time.Second
)

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
	changes := backends.Diff(old, cur)
	if len(changes) == 0 {
		return
	}
	w.send(ctx, backends.Update{Prefix: w.prefix, Changes: changes})
}

func (w *watch) pollOnce(ctx context.Context) error {
	return w.sync(ctx)
}

// notify records invalidated Redis keys (nil: everything).
func (w *watch) notify(msgs []rueidis.RedisMessage) {
	w.mu.Lock()
	if msgs == nil {
		w.all = true
	}
	for _, m := range msgs {
		if s, err := m.ToString(); err == nil {
			if w.pending == nil {
				w.pending = map[string]bool{}
			}
			w.pending[s] = true
		}
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// track runs one tracking connection until it breaks or ctx ends.
func (w *watch) track(ctx context.Context, attempt *int) error {
	dc, release := w.c.cli.Dedicate()
	defer release()
	errs := dc.SetOnInvalidations(w.notify)
	rp := w.c.toRedis(w.prefix)
	if w.prefix == "/" {
		rp = ""
	}
	args := []string{"ON", "BCAST"}
	if rp != "" {
		args = append(args, "PREFIX", rp)
	}
	if err := dc.Do(ctx, dc.B().Arbitrary("CLIENT", "TRACKING").Args(args...).Build()).Error(); err != nil {
		if _, ok := rueidis.IsRedisErr(err); ok {
			return fmt.Errorf("%w: %w", errNoTracking, err)
		}
		return err
	}
	// Notifications are fire and forget: whatever happened before tracking
	// was on is found by a re-list.
	if err := w.sync(ctx); err != nil {
		return err
	}
	*attempt = 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-errs:
			if !ok || err == nil {
				err = errors.New("tracking connection closed")
			}
			return err
		case <-w.wake:
		}
		w.mu.Lock()
		all, pending := w.all, w.pending
		w.all, w.pending = false, nil
		w.mu.Unlock()
		if all {
			if err := w.sync(ctx); err != nil {
				return err
			}
			continue
		}
		keys := make([]string, 0, len(pending))
		for rk := range pending {
			keys = append(keys, rk)
		}
		w.c.reads.Add(uint64(len(keys)))
		srcs, err := w.c.read(ctx, keys)
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		w.apply(ctx, srcs, keys)
	}
}
