// Package zookeeper is the ZooKeeper backend (github.com/go-zookeeper/zk).
//
// Keys are znode paths below the chroot given as "host:port/chroot" in a
// node. As in confd, only leaf znodes (no children) are values; with
// Options.InteriorValues the data of znodes that have children is a value
// too.
//
// Get sends a sync for each prefix (the server catches up with the leader,
// so the read sees every write acknowledged before Get began), then walks
// the prefix. Every znode read is atomic, but ZooKeeper has no multi-znode
// snapshot read, so a walk that races writes may mix states; Snapshot.Revs
// holds, per prefix, the highest zxid the walk saw.
//
// Watch keeps one tree cache per watched prefix, shared by every Watch on
// it or below it: one data and one child watch per znode, one read per
// changed znode, a walk only after a session expiry or a failed read (see
// watch.go).
//
// With any TLS setting (client-cert and client-key, client-ca-keys,
// client-insecure) the client speaks TLS to every node: ZooKeeper's
// secureClientPort, which needs the server's Netty connection factory.
package zookeeper

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/go-zookeeper/zk"
)

// dialer, when set (by tests), connects to the servers instead of
// net.DialTimeout: a test cuts the client off the network with it.
var dialer zk.Dialer

// absentRev is the revision reported for a prefix that does not exist.
const absentRev = 1

// Client is a backends.Backend over one ZooKeeper session. It is safe for
// concurrent use.
type Client struct {
	opts   Options
	log    *slog.Logger
	conn   *zk.Conn
	addrs  []string
	chroot string

	// dialErr is the last connection attempt's error, nil once one
	// succeeded: a request that times out while no session is up says why.
	dialErr atomic.Pointer[error]

	reads   atomic.Uint64 // requests sent (reads, syncs and watch (re-)arms)
	relists atomic.Uint64 // walks of a watched prefix after an expiry or a failed read

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	wmu    sync.Mutex
	closed bool
	caches map[string]*cache // by prefix

	amu   sync.Mutex
	armed map[armKey]bool // watches outstanding on the server

	closeOnce sync.Once
}

// armKey is one outstanding ZooKeeper watch: a znode path and its kind.
type armKey struct {
	path string
	kind byte // 'd' data (GetW, or ExistsW of an existing znode), 'c' child, 'e' exists
}

// onEvent runs on the library's receive goroutine: it must not block. It
// clears the armed watches the event fired, as the library does, and hands
// the event to every watch.
func (c *Client) onEvent(ev zk.Event) {
	c.amu.Lock()
	switch ev.Type {
	case zk.EventNodeCreated:
		delete(c.armed, armKey{ev.Path, 'e'})
	case zk.EventNodeDataChanged:
		delete(c.armed, armKey{ev.Path, 'e'})
		delete(c.armed, armKey{ev.Path, 'd'})
	case zk.EventNodeChildrenChanged:
		delete(c.armed, armKey{ev.Path, 'c'})
	case zk.EventNodeDeleted:
		for _, k := range []byte{'e', 'd', 'c'} {
			delete(c.armed, armKey{ev.Path, k})
		}
	case zk.EventSession:
		if ev.State == zk.StateExpired {
			clear(c.armed)
		}
	case zk.EventNotWatching:
		clear(c.armed)
	}
	c.amu.Unlock()
	c.wmu.Lock()
	for _, ca := range c.caches {
		ca.push(ev)
	}
	c.wmu.Unlock()
}

// arm marks a watch about to be set and reports whether one was not
// already outstanding (marking before the request means an event that
// fires it is never missed).
func (c *Client) arm(k armKey) bool {
	c.amu.Lock()
	defer c.amu.Unlock()
	if c.armed[k] {
		return false
	}
	c.armed[k] = true
	return true
}

func (c *Client) disarm(k armKey) {
	c.amu.Lock()
	delete(c.armed, k)
	c.amu.Unlock()
}

// WatchCount returns the number of ZooKeeper watches this client has
// outstanding (data, child and exists).
func (c *Client) WatchCount() int {
	c.amu.Lock()
	defer c.amu.Unlock()
	return len(c.armed)
}

// keyOf maps a znode path back to its key.
func (c *Client) keyOf(p string) string {
	if c.chroot == "" {
		return p
	}
	if p == c.chroot {
		return "/"
	}
	return strings.TrimPrefix(p, c.chroot)
}

// readNodeW is readNode, setting a data and a child watch where none is
// outstanding.
func (c *Client) readNodeW(key string) (n node, ok bool, err error) {
	p := c.znodePath(key)
	var zxid uint64
	data, err := c.getW(p, &zxid)
	if err == zk.ErrNoNode {
		return n, false, nil
	}
	if err != nil {
		return n, false, err
	}
	kids, err := c.childrenW(p, &zxid)
	if err == zk.ErrNoNode {
		return n, false, nil
	}
	if err != nil {
		return n, false, err
	}
	return node{key: key, data: data, zxid: zxid, children: kids}, true, nil
}

// getW reads znode p's data, with a data watch unless one is outstanding,
// and raises *zxid to the znode's.
func (c *Client) getW(p string, zxid *uint64) (string, error) {
	c.reads.Add(1)
	var data []byte
	var st *zk.Stat
	var err error
	if dk := (armKey{p, 'd'}); c.arm(dk) {
		data, st, _, err = c.conn.GetW(p)
		if err != nil {
			c.disarm(dk)
		}
	} else {
		data, st, err = c.conn.Get(p)
	}
	*zxid = max(*zxid, statZxid(st))
	return string(data), err
}

// childrenW lists znode p's children, with a child watch unless one is
// outstanding, and raises *zxid to the znode's.
func (c *Client) childrenW(p string, zxid *uint64) ([]string, error) {
	c.reads.Add(1)
	var kids []string
	var st *zk.Stat
	var err error
	if ck := (armKey{p, 'c'}); c.arm(ck) {
		kids, st, _, err = c.conn.ChildrenW(p)
		if err != nil {
			c.disarm(ck)
		}
	} else {
		kids, st, err = c.conn.Children(p)
	}
	*zxid = max(*zxid, statZxid(st))
	return kids, err
}

// existsW reports whether znode p exists, setting an exists watch unless
// one is outstanding (then it does not, or its creation event is queued).
func (c *Client) existsW(p string) (bool, error) {
	ek := armKey{p, 'e'}
	if !c.arm(ek) {
		return false, nil
	}
	c.reads.Add(1)
	ok, _, _, err := c.conn.ExistsW(p)
	if err != nil || ok {
		c.disarm(ek)
	}
	if ok {
		c.arm(armKey{p, 'd'}) // ExistsW of an existing znode sets a data watch
	}
	return ok, err
}

// addrList names the servers, for errors.
func (c *Client) addrList() string { return strings.Join(c.addrs, ",") }

// New connects to the servers in o.Nodes (default DefaultAddress). The
// session is established in the background; requests wait for it. With
// o.Username it adds digest credentials, bounded by ctx.
func New(ctx context.Context, o Options) (*Client, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Password != "" && o.Username == "" {
		return nil, errors.New("zookeeper: setting password: needs username (digest auth is username:password)")
	}
	addrs, chroot, _ := splitNodes(o.Nodes)
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var tc *tls.Config
	if o.WantsTLS() {
		var err error
		if tc, err = o.TLSConfig(Name); err != nil {
			return nil, err
		}
	}
	if o.SessionTimeout == 0 {
		o.SessionTimeout = 10 * time.Second
	}
	c := &Client{opts: o, log: log, addrs: addrs, chroot: chroot, caches: map[string]*cache{}, armed: map[armKey]bool{}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	conn, _, err := zk.Connect(addrs, o.SessionTimeout, zk.WithLogger(zkLogger{log}), zk.WithLogInfo(false), zk.WithEventCallback(c.onEvent), zk.WithDialer(c.dialer(tc)))
	if err != nil {
		c.cancel()
		return nil, fmt.Errorf("zookeeper: connect %s: %w", strings.Join(addrs, ","), err)
	}
	c.conn = conn
	if o.Username != "" {
		err := c.call(ctx, func() error { return conn.AddAuth("digest", []byte(o.Username+":"+o.Password)) })
		if err != nil {
			c.cancel()
			conn.Close()
			return nil, c.notConnected(fmt.Errorf("zookeeper: digest auth as %q on %s: %w", o.Username, strings.Join(addrs, ","), err))
		}
	}
	return c, nil
}

// dialer returns the library's dialer: TCP (or the tests' dialer), then a
// TLS handshake when tc is set, within the library's timeout; it records
// each attempt's error in c.dialErr.
func (c *Client) dialer(tc *tls.Config) zk.Dialer {
	base := dialer
	if base == nil {
		base = net.DialTimeout
	}
	return func(network, addr string, timeout time.Duration) (net.Conn, error) {
		conn, err := c.dial(base, tc, network, addr, timeout)
		if err != nil {
			err = fmt.Errorf("%s: %w", addr, err)
			c.dialErr.Store(&err)
			return nil, err
		}
		c.dialErr.Store(nil)
		return conn, nil
	}
}

func (c *Client) dial(base zk.Dialer, tc *tls.Config, network, addr string, timeout time.Duration) (net.Conn, error) {
	start := time.Now()
	conn, err := base(network, addr, timeout)
	if err != nil || tc == nil {
		return conn, err
	}
	cfg := tc.Clone()
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		cfg.ServerName = host
	}
	tconn := tls.Client(conn, cfg)
	ctx, cancel := context.WithDeadline(c.ctx, start.Add(timeout))
	defer cancel()
	if err := tconn.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tconn, nil
}

// notConnected returns err with the last connection attempt's error when
// there is one (no session is up): a request that timed out then says why.
func (c *Client) notConnected(err error) error {
	if p := c.dialErr.Load(); p != nil {
		return fmt.Errorf("%w (not connected: %w)", err, *p)
	}
	return err
}

// zkLogger sends the client library's logs to slog at debug level.
type zkLogger struct{ log *slog.Logger }

func (l zkLogger) Printf(format string, a ...any) { l.log.Debug(fmt.Sprintf(format, a...)) }

// call runs f, returning early with ctx's error (f then finishes in the
// background: the library fails pending requests on disconnect or Close).
func (c *Client) call(ctx context.Context, f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// znodePath maps a key to its znode below the chroot.
func (c *Client) znodePath(key string) string {
	if c.chroot == "" {
		return key
	}
	if key == "/" {
		return c.chroot
	}
	return c.chroot + key
}

// node is one znode as read.
type node struct {
	key      string
	data     string
	zxid     uint64
	children []string
}

func statZxid(s *zk.Stat) uint64 {
	if s == nil {
		return 0
	}
	return uint64(max(s.Mzxid, s.Pzxid, s.Czxid))
}

// readNode reads key's data and children; ok is false if it does not exist.
func (c *Client) readNode(key string) (n node, ok bool, err error) {
	p := c.znodePath(key)
	c.reads.Add(2)
	data, st, err := c.conn.Get(p)
	if err == zk.ErrNoNode {
		return n, false, nil
	}
	if err != nil {
		return n, false, err
	}
	kids, st2, err := c.conn.Children(p)
	if err == zk.ErrNoNode {
		return n, false, nil
	}
	if err != nil {
		return n, false, err
	}
	return node{key: key, data: string(data), zxid: max(statZxid(st), statZxid(st2)), children: kids}, true, nil
}

// walk reads root and every znode below it, level by level with up to 32
// requests in flight, calling visit for each (from one goroutine at a time).
func (c *Client) walk(root string, visit func(node)) error {
	return c.walkWith(root, c.readNode, visit)
}

// walkW is walk with watches (readNodeW).
func (c *Client) walkW(root string, visit func(node)) error {
	return c.walkWith(root, c.readNodeW, visit)
}

func (c *Client) walkWith(root string, read func(string) (node, bool, error), visit func(node)) error {
	level := []string{root}
	var mu sync.Mutex
	for len(level) > 0 {
		var next []string
		var firstErr error
		var wg sync.WaitGroup
		sem := make(chan struct{}, 32)
		for _, key := range level {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				n, ok, err := read(key)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if firstErr == nil {
						firstErr = fmt.Errorf("get %q: %w", key, err)
					}
					return
				}
				if !ok {
					return
				}
				visit(n)
				for _, k := range n.children {
					next = append(next, path.Join(key, k))
				}
			})
		}
		wg.Wait()
		if firstErr != nil {
			return firstErr
		}
		level = next
	}
	return nil
}

// visible reports whether n's data is a value: a leaf's always, an
// interior znode's when InteriorValues is set and it holds data (the
// parents ZooKeeper makes a writer create are not values).
func (c *Client) visible(n node) bool {
	return len(n.children) == 0 || c.opts.InteriorValues && n.data != ""
}

// Get reads every value under prefixes. Snapshot.Revs holds, for each
// requested prefix, the highest zxid seen below it (1 if it is absent);
// Watch uses it to tell whether the prefix changed since.
func (c *Client) Get(ctx context.Context, prefixes []string) (backends.Snapshot, error) {
	snap := backends.Snapshot{KVs: map[string]string{}, Revs: map[string]uint64{}}
	zx := map[string]uint64{}
	err := c.call(ctx, func() error {
		for _, p := range backends.CoverPrefixes(prefixes) {
			// sync: the server this session reads from catches up with
			// the leader first, so the walk sees every write acknowledged
			// before Get was called (ZooKeeper's reads are otherwise only
			// sequentially consistent per session).
			c.reads.Add(1)
			if _, err := c.conn.Sync(c.znodePath(p)); err != nil && !errors.Is(err, zk.ErrNoNode) {
				return fmt.Errorf("zookeeper: %s: get %q: sync: %w", strings.Join(c.addrs, ","), p, err)
			}
			var kvs = map[string]string{}
			var zs = map[string]uint64{}
			if err := c.walk(p, func(n node) {
				zs[n.key] = n.zxid
				if c.visible(n) {
					kvs[n.key] = n.data
				}
			}); err != nil {
				return fmt.Errorf("zookeeper: %s: %w", strings.Join(c.addrs, ","), err)
			}
			for k, v := range kvs {
				snap.KVs[k] = v
			}
			for k, v := range zs {
				zx[k] = v
			}
		}
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("zookeeper: get %q from %s: %w", prefixes, strings.Join(c.addrs, ","), err)
		}
		return backends.Snapshot{}, c.notConnected(err)
	}
	for _, p := range prefixes {
		p = backends.CleanKey(p)
		rev := uint64(0)
		for k, z := range zx {
			if backends.Under(k, p) {
				rev = max(rev, z)
			}
		}
		if rev == 0 {
			rev = absentRev
		}
		snap.Revs[p] = rev
		snap.Rev = max(snap.Rev, rev)
	}
	return snap, nil
}

// Metrics reports the client's counters (see backends.MetricsReporter).
func (c *Client) Metrics() map[string]uint64 {
	return map[string]uint64{"reads_total": c.reads.Load(), "relists_total": c.relists.Load()}
}

// Close ends the session; watch channels are closed before it returns.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closeWatches()
		c.conn.Close()
	})
	return nil
}

var (
	_ backends.Backend         = (*Client)(nil)
	_ backends.MetricsReporter = (*Client)(nil)
)
