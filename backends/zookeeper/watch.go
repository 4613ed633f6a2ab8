package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/internal/retry"
	"github.com/go-zookeeper/zk"
)

// beforeRead, when set (by tests), runs after an event and before the
// read it causes: a write there is one made while the watch is re-armed.
var beforeRead func(zk.Event)

// A cache is the tree cache of one watched prefix, shared (refcounted) by
// every Watch of that prefix or of a prefix below it on the same Client.
// Every znode under the prefix has exactly one outstanding data watch and
// one child watch (a missing prefix one exists watch). Events reach it
// through the connection's event callback, never through a goroutine per
// znode, and are handled on its one goroutine (run):
//
//   - a data change costs one GetW of that znode, which also re-arms its
//     data watch;
//   - a child change one ChildrenW of that znode, then GetW and ChildrenW
//     of the added children only; removed subtrees leave the mirror;
//   - a session expiry (every watch gone) a walk of the prefix, diffed
//     against the mirror once a new session is up, so deletes made during
//     the outage are seen; meanwhile subscribers keep their last view.
//
// Each batch of events becomes one Update per subscriber carrying only the
// keys that changed under the subscriber's prefix.
type cache struct {
	c      *Client
	prefix string // key
	root   string // znode path of prefix
	stop   context.CancelFunc
	refs   int // subscribers; guarded by c.wmu

	mu     sync.Mutex
	queue  []zk.Event
	joins  []*sub
	subs   map[*sub]bool
	notify chan struct{}

	// Owned by run.
	nodes    map[string]*znode // key -> znode under prefix
	kvs      map[string]string // the values (visible znodes)
	rev      uint64            // highest zxid seen
	touched  map[string]bool   // keys whose value may have changed in this batch
	expired  bool              // a session expired: re-list on the next session
	broken   bool              // a read failed: the mirror may be behind; re-list
	degraded bool              // subscribers were sent an Err
}

// znode is the mirror of one znode.
type znode struct {
	data string
	kids map[string]bool // child names
}

// sub is one Watch: the updates for its prefix. The cache hands one over
// directly when the channel has room and nothing is queued; otherwise it
// is queued (and coalesced) and a drain goroutine, which lives only while
// the queue is not empty, sends it: an idle watch costs no goroutine, and
// a slow receiver holds up no other.
type sub struct {
	prefix string
	rev    uint64 // the revision the caller read at
	out    chan backends.Update
	done   chan struct{} // closed when the watch ends

	mu       sync.Mutex
	pending  []pendingUpdate
	erred    bool // an Err was queued
	draining bool // a drain goroutine runs
	closed   bool
	drainer  sync.WaitGroup
}

// fromNowTimeout bounds the read that gives a Watch from rev 0 its start.
const fromNowTimeout = 5 * time.Second

// pendingUpdate is an Update not yet sent, with an index of its Changes by
// key, so that later changes to the same key replace rather than append.
type pendingUpdate struct {
	u   backends.Update
	idx map[string]int
}

// Watch delivers the changes under prefix after rev (Snapshot.RevOf from
// Get): if the prefix changed in between, the first Update is a Reset.
// Watches of the same prefix, or of prefixes below an already watched one,
// share one tree cache (and so one set of ZooKeeper watches).
//
// rev 0 means from now: Watch reads the prefix's revision first (one Get,
// bounded by fromNowTimeout), so a change made as soon as Watch returns is
// not folded into the tree cache's first listing unseen. If that read
// fails, the watch starts from the cache's first listing.
func (c *Client) Watch(ctx context.Context, prefix string, rev uint64) (<-chan backends.Update, error) {
	prefix = backends.CleanKey(prefix)
	if rev == 0 {
		gctx, cancel := context.WithTimeout(ctx, fromNowTimeout)
		if snap, err := c.Get(gctx, []string{prefix}); err == nil {
			rev = snap.RevOf(prefix)
		}
		cancel()
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return nil, errors.New("zookeeper: watch: client closed")
	}
	ca := c.cacheFor(prefix)
	s := &sub{prefix: prefix, rev: rev, out: make(chan backends.Update, 1), done: make(chan struct{})}
	ca.refs++
	ca.mu.Lock()
	ca.joins = append(ca.joins, s)
	ca.mu.Unlock()
	ca.poke()
	// The watch ends with ctx or the client: no goroutine waits for it.
	ctx, cancel := context.WithCancel(ctx)
	unhook := context.AfterFunc(c.ctx, cancel)
	c.wg.Add(1)
	context.AfterFunc(ctx, func() {
		defer c.wg.Done()
		unhook()
		s.stop()
		c.wmu.Lock()
		ca.mu.Lock()
		delete(ca.subs, s)
		ca.joins = slices.DeleteFunc(ca.joins, func(j *sub) bool { return j == s })
		ca.mu.Unlock()
		if ca.refs--; ca.refs == 0 {
			ca.stop()
			delete(c.caches, ca.prefix)
		}
		c.wmu.Unlock()
	})
	return s.out, nil
}

// cacheFor returns the cache covering prefix, starting one for prefix if
// none does. c.wmu is held.
func (c *Client) cacheFor(prefix string) *cache {
	var best *cache
	for p, ca := range c.caches {
		if backends.Under(prefix, p) && (best == nil || len(p) > len(best.prefix)) {
			best = ca
		}
	}
	if best != nil {
		return best
	}
	ca := &cache{
		c: c, prefix: prefix, root: c.znodePath(prefix),
		subs: map[*sub]bool{}, notify: make(chan struct{}, 1),
		nodes: map[string]*znode{}, kvs: map[string]string{}, touched: map[string]bool{},
	}
	ctx, cancel := context.WithCancel(c.ctx)
	ca.stop = cancel
	c.caches[prefix] = ca
	c.wg.Go(func() { ca.run(ctx) })
	return ca
}

// push queues ev; it runs on the library's receive goroutine and must not
// block.
func (ca *cache) push(ev zk.Event) {
	ca.mu.Lock()
	ca.queue = append(ca.queue, ev)
	ca.mu.Unlock()
	ca.poke()
}

func (ca *cache) poke() {
	select {
	case ca.notify <- struct{}{}:
	default:
	}
}

// run lists the prefix, then applies events until ctx ends.
func (ca *cache) run(ctx context.Context) {
	loaded := false
	failures := 0
	for {
		ca.mu.Lock()
		evs, joins := ca.queue, ca.joins
		ca.queue, ca.joins = nil, nil
		ca.mu.Unlock()

		relist := !loaded || ca.broken
		for _, ev := range evs {
			if ca.event(ev) {
				relist = true
			}
		}
		recovering := loaded && (ca.broken || ca.expired)
		if ca.expired {
			if ca.c.conn.State() == zk.StateHasSession {
				ca.expired, relist = false, true
			} else {
				// Wait for the new session: its event wakes run.
				ca.broken, relist = true, false
			}
		}
		if relist {
			if recovering {
				ca.c.relists.Add(1)
			}
			ca.c.log.Debug("zookeeper: listing a watched prefix", "prefix", ca.prefix, "loaded", loaded, "recovering", recovering)
			if err := ca.list(); err != nil {
				failures++
				ca.broken = true
				ca.mu.Lock()
				ca.joins = append(joins, ca.joins...)
				ca.mu.Unlock()
				ca.fail(fmt.Errorf("zookeeper: %s: watch %q: %w", ca.c.addrList(), ca.prefix, err))
				if !retry.Sleep(ctx, retry.Backoff(100*time.Millisecond, 5*time.Second, failures)) {
					return
				}
				continue
			}
			failures = 0
			ca.broken = false
			loaded = true
		}
		if loaded {
			ca.emit()
			for _, s := range joins {
				ca.join(s)
			}
		} else if len(joins) > 0 {
			ca.mu.Lock()
			ca.joins = append(joins, ca.joins...)
			ca.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-ca.notify:
		}
	}
}

// event applies one event to the mirror and reports whether the prefix
// must be listed again.
func (ca *cache) event(ev zk.Event) bool {
	switch ev.Type {
	case zk.EventSession:
		ca.c.log.Debug("zookeeper: session event", "prefix", ca.prefix, "state", ev.State.String(), "broken", ca.broken)
		if ev.State == zk.StateExpired {
			ca.expired = true
			ca.fail(fmt.Errorf("zookeeper: %s: session expired; watch %q re-lists when a new session is up", ca.c.addrList(), ca.prefix))
		}
		return ev.State == zk.StateHasSession && ca.broken
	case zk.EventNotWatching:
		ca.expired = true
		return false
	}
	if !backends.Under(ev.Path, ca.root) {
		return false
	}
	key := ca.c.keyOf(ev.Path)
	if beforeRead != nil {
		beforeRead(ev)
	}
	switch ev.Type {
	case zk.EventNodeCreated:
		return ev.Path == ca.root // the prefix's exists watch: load it
	case zk.EventNodeDataChanged:
		n := ca.nodes[key]
		if n == nil {
			return false
		}
		data, err := ca.c.getW(ev.Path, &ca.rev)
		switch {
		case errors.Is(err, zk.ErrNoNode):
			ca.drop(key) // its delete event follows
			return ev.Path == ca.root
		case err != nil:
			return ca.readFailed(ev, err)
		default:
			n.data = data
			ca.touched[key] = true
		}
	case zk.EventNodeChildrenChanged:
		n := ca.nodes[key]
		if n == nil {
			return false
		}
		kids, err := ca.c.childrenW(ev.Path, &ca.rev)
		switch {
		case errors.Is(err, zk.ErrNoNode):
			ca.drop(key)
			return false
		case err != nil:
			return ca.readFailed(ev, err)
		}
		now := make(map[string]bool, len(kids))
		for _, k := range kids {
			now[k] = true
		}
		for k := range n.kids {
			if !now[k] {
				ca.drop(path.Join(key, k))
			}
		}
		var added []string
		for k := range now {
			if !n.kids[k] {
				added = append(added, k)
			}
		}
		n.kids = now
		ca.touched[key] = true // it may have become, or stopped being, a leaf
		for _, k := range added {
			if err := ca.load(path.Join(key, k)); err != nil {
				return ca.readFailed(ev, err)
			}
		}
	case zk.EventNodeDeleted:
		ca.drop(key)
	}
	// The prefix itself gone: list it again, which sets its exists watch
	// (or loads it if it is back already).
	return ev.Type == zk.EventNodeDeleted && ev.Path == ca.root
}

// readFailed notes that the read an event caused failed: that znode's
// watch is not armed, so the mirror may fall behind until the prefix is
// listed again. It reports true (list it).
func (ca *cache) readFailed(ev zk.Event, err error) bool {
	ca.c.log.Debug("zookeeper: read after a watch event failed; listing the prefix again", "prefix", ca.prefix, "znode", ev.Path, "err", err)
	ca.broken = true
	return true
}

// load reads the subtree at key into the mirror, setting its watches.
func (ca *cache) load(key string) error {
	return ca.c.walkW(key, func(n node) {
		ca.put(n)
	})
}

// put records one znode as read.
func (ca *cache) put(n node) {
	kids := make(map[string]bool, len(n.children))
	for _, k := range n.children {
		kids[k] = true
	}
	ca.nodes[n.key] = &znode{data: n.data, kids: kids}
	ca.rev = max(ca.rev, n.zxid)
	ca.touched[n.key] = true
	if n.key != ca.prefix {
		if p := ca.nodes[path.Dir(n.key)]; p != nil && !p.kids[path.Base(n.key)] {
			p.kids[path.Base(n.key)] = true
			ca.touched[path.Dir(n.key)] = true
		}
	}
}

// drop removes key and its subtree from the mirror.
func (ca *cache) drop(key string) {
	n := ca.nodes[key]
	if n == nil {
		return
	}
	for k := range n.kids {
		ca.drop(path.Join(key, k))
	}
	delete(ca.nodes, key)
	ca.touched[key] = true
	if key != ca.prefix {
		if p := ca.nodes[path.Dir(key)]; p != nil {
			delete(p.kids, path.Base(key))
			ca.touched[path.Dir(key)] = true
		}
	}
}

// list walks the whole prefix, arming the watches not outstanding, and
// replaces the mirror; emit then sends the difference.
func (ca *cache) list() error {
	c := ca.c
	nodes := map[string]*znode{}
	var rev uint64
	err := c.walkW(ca.prefix, func(n node) {
		kids := make(map[string]bool, len(n.children))
		for _, k := range n.children {
			kids[k] = true
		}
		nodes[n.key] = &znode{data: n.data, kids: kids}
		rev = max(rev, n.zxid)
	})
	if err != nil {
		return err
	}
	if len(nodes) == 0 {
		ok, err := c.existsW(ca.root)
		if err != nil {
			return err
		}
		if ok {
			return ca.list() // created meanwhile
		}
	}
	for k := range ca.nodes {
		ca.touched[k] = true
	}
	for k := range nodes {
		ca.touched[k] = true
	}
	ca.nodes = nodes
	if rev < ca.rev && len(nodes) > 0 {
		// zxids went backwards: a server that lost its data. Tell
		// every subscriber to start over.
		ca.rev = rev
		ca.resetAll()
		return nil
	}
	ca.rev = max(ca.rev, rev)
	return nil
}

// visible reports whether key's znode is a value, and its value.
func (ca *cache) visible(key string) (string, bool) {
	n := ca.nodes[key]
	if n == nil {
		return "", false
	}
	if len(n.kids) == 0 || ca.c.opts.InteriorValues && n.data != "" {
		return n.data, true
	}
	return "", false
}

// emit turns the keys touched since the last emit into Changes and queues
// them for the subscribers under whose prefix they are. After a failure
// every subscriber gets an Update (empty if nothing changed for it), so
// that its receiver knows the watch is healthy again.
func (ca *cache) emit() {
	var changes []backends.Change
	for _, k := range slices.Sorted(maps.Keys(ca.touched)) {
		v, ok := ca.visible(k)
		old, had := ca.kvs[k]
		switch {
		case ok && (!had || old != v):
			ca.kvs[k] = v
			changes = append(changes, backends.Change{Key: k, Value: v})
		case !ok && had:
			delete(ca.kvs, k)
			changes = append(changes, backends.Change{Key: k, Deleted: true})
		}
	}
	clear(ca.touched)
	healed := ca.degraded && !ca.broken && !ca.expired
	if len(changes) == 0 && !healed {
		return
	}
	if healed {
		ca.degraded = false
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	for s := range ca.subs {
		var mine []backends.Change
		if s.prefix == ca.prefix {
			mine = changes
		} else {
			for _, ch := range changes {
				if backends.Under(ch.Key, s.prefix) {
					mine = append(mine, ch)
				}
			}
		}
		if len(mine) > 0 || healed {
			s.enqueue(backends.Update{Rev: ca.rev, Changes: mine})
		}
	}
}

// fail tells every subscriber (and those waiting to join) the watch is
// degraded.
func (ca *cache) fail(err error) {
	ca.degraded = true
	ca.mu.Lock()
	defer ca.mu.Unlock()
	for s := range ca.subs {
		s.enqueue(backends.Update{Err: err})
	}
	for _, s := range ca.joins {
		s.enqueue(backends.Update{Err: err})
	}
}

// resetAll queues a Reset with the current values for every subscriber.
func (ca *cache) resetAll() {
	ca.emitQuiet()
	ca.mu.Lock()
	defer ca.mu.Unlock()
	for s := range ca.subs {
		s.enqueue(backends.Update{Rev: ca.rev, Reset: true, KVs: ca.under(s.prefix)})
	}
}

// emitQuiet brings kvs up to date with the mirror without sending.
func (ca *cache) emitQuiet() {
	for k := range ca.touched {
		if v, ok := ca.visible(k); ok {
			ca.kvs[k] = v
		} else {
			delete(ca.kvs, k)
		}
	}
	clear(ca.touched)
}

// under returns a copy of the values under prefix.
func (ca *cache) under(prefix string) map[string]string {
	kvs := make(map[string]string)
	for k, v := range ca.kvs {
		if backends.Under(k, prefix) {
			kvs[k] = v
		}
	}
	return kvs
}

// join adds s once the mirror is current: if its prefix changed since the
// revision s's caller read, s starts with a Reset.
func (ca *cache) join(s *sub) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	ca.subs[s] = true
	if s.rev == 0 {
		if s.erred {
			s.enqueue(backends.Update{Rev: ca.rev})
		}
		return
	}
	if ca.revUnder(s.prefix) != s.rev {
		s.enqueue(backends.Update{Rev: ca.rev, Reset: true, KVs: ca.under(s.prefix)})
	} else if s.erred {
		s.enqueue(backends.Update{Rev: ca.rev}) // healthy again
	}
}

// revUnder is what Get reports for prefix: the highest zxid under it as
// last listed, or ca.rev for the cache's own prefix (which includes
// deletes, seen in the parents' child zxids).
func (ca *cache) revUnder(prefix string) uint64 {
	if len(ca.nodes) == 0 {
		return absentRev
	}
	if prefix == ca.prefix {
		return ca.rev
	}
	for k := range ca.nodes {
		if backends.Under(k, prefix) {
			return ca.rev // changes under a narrower prefix are not tracked apart
		}
	}
	return absentRev
}

// enqueue hands u to s's receiver, or queues it, merging it into the last
// queued Update where both carry data (see merge). s.mu is taken; the
// cache's mu may be held. It never blocks.
func (s *sub) enqueue(u backends.Update) {
	u.Prefix = s.prefix
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.erred = s.erred || u.Err != nil
	if !s.draining {
		select {
		case s.out <- u:
			return
		default:
		}
	}
	if n := len(s.pending); n == 0 || !s.pending[n-1].merge(u) {
		s.pending = append(s.pending, pendingUpdate{u: u})
	}
	if !s.draining {
		s.draining = true
		s.drainer.Go(s.drain)
	}
}

// drain sends the queued updates, and returns once none is left or the
// watch ended.
func (s *sub) drain() {
	for {
		s.mu.Lock()
		if len(s.pending) == 0 || s.closed {
			s.pending = nil
			s.draining = false
			s.mu.Unlock()
			return
		}
		u := s.pending[0].u
		s.pending[0] = pendingUpdate{}
		s.pending = s.pending[1:]
		s.mu.Unlock()
		select {
		case s.out <- u:
		case <-s.done:
		}
	}
}

// stop ends the watch: nothing is sent after it, and it closes the channel.
func (s *sub) stop() {
	close(s.done)
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.drainer.Wait()
	close(s.out)
}

// merge folds u into p when the receiver sees the same result either way:
// an Err replaces an Err, a Reset replaces data, changes are applied to a
// pending Reset's values or replace pending changes of the same keys. It
// reports false (u must be queued after p) otherwise.
func (p *pendingUpdate) merge(u backends.Update) bool {
	switch {
	case u.Err != nil || p.u.Err != nil:
		if u.Err == nil || p.u.Err == nil {
			return false
		}
		p.u = u
	case u.Reset:
		*p = pendingUpdate{u: u}
	case p.u.Reset:
		for _, ch := range u.Changes {
			if ch.Deleted {
				delete(p.u.KVs, ch.Key)
			} else {
				p.u.KVs[ch.Key] = ch.Value
			}
		}
		p.u.Rev = u.Rev
	default:
		if p.idx == nil {
			p.idx = make(map[string]int, len(p.u.Changes))
			p.u.Changes = slices.Clone(p.u.Changes)
			for i, ch := range p.u.Changes {
				p.idx[ch.Key] = i
			}
		}
		for _, ch := range u.Changes {
			if i, ok := p.idx[ch.Key]; ok {
				p.u.Changes[i] = ch
			} else {
				p.idx[ch.Key] = len(p.u.Changes)
				p.u.Changes = append(p.u.Changes, ch)
			}
		}
		p.u.Rev = u.Rev
	}
	return true
}

// closeWatches ends every watch and waits for their goroutines.
func (c *Client) closeWatches() {
	c.wmu.Lock()
	c.closed = true
	c.wmu.Unlock()
	c.cancel()
	c.wg.Wait()
}
