package zookeeper

import (
	"context"
	"errors"
	"maps"
	"path"
	"sync"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/internal/retry"
	"github.com/go-zookeeper/zk"
)

// A watch is a tree cache of one prefix: every znode under it has exactly
// one outstanding data watch and one child watch (a missing prefix one
// exists watch). Events reach it through the connection's event callback,
// never through a goroutine per watch. A data change costs one GetW of
// that znode, a child change one ChildrenW and the new children's reads.
// On session expiry every watch is gone: the prefix is walked again and
// diffed against the mirror, so deletes during the outage are seen.
type watch struct {
	c      *Client
	prefix string
	out    chan backends.Update

	mu     sync.Mutex
	queue  []zk.Event
	notify chan struct{}

	nodes map[string]*node // key -> znode under prefix
	kvs   map[string]string
	rev   uint64
}

// Watch delivers the changes under prefix after rev (Snapshot.RevOf from
// Get): if the prefix changed in between, the first Update is a Reset.
func (c *Client) Watch(ctx context.Context, prefix string, rev uint64) (<-chan backends.Update, error) {
	prefix = backends.CleanKey(prefix)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return nil, errors.New("zookeeper: watch: client closed")
	}
	w := &watch{c: c, prefix: prefix, out: make(chan backends.Update, 1), notify: make(chan struct{}, 1), nodes: map[string]*node{}, kvs: map[string]string{}}
	c.watches[w] = true
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, cancel)
	c.wg.Go(func() {
		defer stop()
		defer cancel()
		defer close(w.out)
		defer func() { c.wmu.Lock(); delete(c.watches, w); c.wmu.Unlock() }()
		w.run(ctx, rev)
	})
	return w.out, nil
}

func (w *watch) push(ev zk.Event) {
	w.mu.Lock()
	w.queue = append(w.queue, ev)
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

func (w *watch) send(ctx context.Context, u backends.Update) bool {
	u.Prefix = w.prefix
	select {
	case w.out <- u:
		return true
	case <-ctx.Done():
		return false
	}
}

// relist walks the prefix arming every watch and replaces the mirror.
func (w *watch) relist() (map[string]string, error) {
	c := w.c
	nodes := map[string]*node{}
	var rev uint64
	err := c.walkW(w.prefix, func(n node) {
		nodes[n.key] = &n
		rev = max(rev, n.zxid)
	})
	if err != nil {
		return nil, err
	}
	if len(nodes) == 0 {
		c.reads.Add(1)
		p := c.znodePath(w.prefix)
		if ek := (armKey{p, 'e'}); c.arm(ek) {
			ok, _, _, err := c.conn.ExistsW(p)
			if err != nil {
				c.disarm(ek)
				return nil, err
			}
			if ok {
				// ExistsW of an existing znode sets a data watch.
				c.disarm(ek)
				c.arm(armKey{p, 'd'})
				return w.relist()
			}
		}
		rev = absentRev
	}
	w.nodes, w.rev = nodes, rev
	kvs := map[string]string{}
	for _, n := range nodes {
		if c.visible(*n) {
			kvs[n.key] = n.data
		}
	}
	return kvs, nil
}

func (w *watch) run(ctx context.Context, rev uint64) {
	kvs, err := w.relist()
	for err != nil {
		if !w.send(ctx, backends.Update{Err: err}) || !retry.Sleep(ctx, time.Second) {
			return
		}
		kvs, err = w.relist()
	}
	w.kvs = kvs
	if rev != 0 && rev != w.rev {
		if !w.send(ctx, backends.Update{Rev: w.rev, Reset: true, KVs: maps.Clone(kvs)}) {
			return
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.notify:
		}
		w.mu.Lock()
		evs := w.queue
		w.queue = nil
		w.mu.Unlock()
		full := false
		for _, ev := range evs {
			if ev.Type == zk.EventSession && ev.State == zk.StateHasSession || ev.Type == zk.EventNotWatching {
				full = true
				continue
			}
			if !backends.Under(w.c.keyOf(ev.Path), w.prefix) && w.c.keyOf(ev.Path) != path.Dir(w.prefix) {
				continue
			}
			full = true // any event under the prefix: re-read what changed
		}
		if !full {
			continue
		}
		next, err := w.refresh()
		if err != nil {
			if !w.send(ctx, backends.Update{Err: err}) || !retry.Sleep(ctx, time.Second) {
				return
			}
			w.push(zk.Event{Type: zk.EventNotWatching})
			continue
		}
		if ch := backends.Diff(w.kvs, next); len(ch) > 0 {
			w.kvs = next
			if !w.send(ctx, backends.Update{Rev: w.rev, Changes: ch}) {
				return
			}
		}
	}
}

// refresh re-reads the mirror. Only znodes whose watch fired are re-armed
// (walkW uses GetW/ChildrenW only where no watch is outstanding).
func (w *watch) refresh() (map[string]string, error) { return w.relist() }

// closeWatches ends every watch and waits for their goroutines.
func (c *Client) closeWatches() {
	c.wmu.Lock()
	c.closed = true
	c.wmu.Unlock()
	c.cancel()
	c.wg.Wait()
}
