// Package etcd is the etcd v3 backend, registered as "etcd" and "etcdv3".
//
// Get reads all requested prefixes at one store revision: the first range
// request fixes the revision, every later one (other prefixes, further pages
// of a large prefix) is pinned to it. Watch keeps one etcd watch per call,
// converts events to Changes with their values, resumes after a lost stream
// from the last revision it saw, and after a compaction re-reads the prefix
// and sends a Reset.
//
// The etcd client reconnects by itself and resumes its watches silently, so
// the backend watches the client's gRPC connection state as well (event
// driven: no requests while the store is healthy). When the connection leaves
// Ready, or fails to connect, every watch sends one Update whose Err wraps
// ErrConnectionLost; when it is Ready again, every watch that reported an
// error re-reads its prefix, sends a Reset and streams on from the Reset's
// revision (unless the client's resumed stream delivered a change first:
// that change is the healthy Update, and nothing was skipped). Watches also require a leader, so a member cut off from its
// cluster cancels them (ErrNoLeader, reported the same way), and the client
// sends keepalive pings, so a silently dropped connection is noticed too.
//
// Keys with a "." or ".." element ("/a/../b/secret") are skipped, by Get and
// by watches, with a warning naming the key (backends.HasDotSegment): they
// would name a path outside the prefix they were listed under.
package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/backends/internal/lifecycle"
	"github.com/confit-dev/confit/internal/retry"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
)

// ErrConnectionLost is wrapped by the Err of the Update a watch sends when
// the client lost its connection to the cluster (or could not connect).
var ErrConnectionLost = errors.New("connection lost")

// errReconnected ends a watch stream that reported an error once the store
// is reachable again, so that the prefix is re-read and sent as a Reset.
var errReconnected = errors.New("reconnected")

func init() {
	backends.Register("etcd", factory)
	backends.Register("etcdv3", factory)
}

// factory builds a Client: etcd's settings are the shared network ones,
// backends.Config, declared there.
func factory(ctx context.Context, cfg *backends.Config, log *slog.Logger) (backends.Backend, error) {
	cfg.Logger = log
	return New(ctx, *cfg)
}

// Timeouts and limits.
const (
	// DefaultNode is used when neither Nodes nor SRV discovery are set.
	DefaultNode = "http://127.0.0.1:2379"
	// DialTimeout bounds connecting to the cluster.
	DialTimeout = 5 * time.Second
	// RequestTimeout bounds each range request (a ctx deadline that comes
	// sooner wins).
	RequestTimeout = 10 * time.Second
	// PageSize is how many keys one range request returns at most.
	PageSize = 10000

	backoffMin = 100 * time.Millisecond
	backoffMax = 5 * time.Second

	// ConnectBackoffMax caps gRPC's backoff between connection attempts
	// (its default grows to 120 s): after an outage of any length the
	// client is connected again within about this long of etcd answering.
	// The delays keep gRPC's 20 % jitter, so a fleet does not reconnect in
	// step; a refused TCP connection a second per client costs the
	// restarting server little.
	ConnectBackoffMax = time.Second
)

// connectParams bounds gRPC's connection backoff (see ConnectBackoffMax).
var connectParams = grpc.ConnectParams{
	Backoff: backoff.Config{
		BaseDelay:  100 * time.Millisecond,
		Multiplier: 1.6,
		Jitter:     0.2,
		MaxDelay:   ConnectBackoffMax,
	},
	MinConnectTimeout: DialTimeout,
}

// Stats counts requests made to the store, for benchmarks.
type Stats struct {
	// Gets is the number of Get calls plus the prefix re-reads watches made
	// after a compaction or a lost connection.
	Gets uint64
	// Ranges is the number of range requests sent (pages included).
	Ranges uint64
}

// Client is an etcd v3 Backend. It is safe for concurrent use.
type Client struct {
	cli      *clientv3.Client
	pageSize int64
	nodes    string // the endpoints, comma-separated, for errors

	dialErr atomic.Pointer[error] // the last failed dial, nil after a good one
	dots    backends.DotKeys      // keys skipped for a "." or ".." element

	gets, ranges atomic.Uint64

	link link // the gRPC connection state, kept by monitor

	// reconnectJitter is backends.Config.ReconnectJitter; jitter draws the
	// wait from it (retry.Jitter; tests replace it).
	reconnectJitter time.Duration
	jitter          func(window time.Duration) time.Duration

	life *lifecycle.Group // watch goroutines and monitor; its context is the parent of every watch
}

// link is the latest gRPC connectivity state of the client's connection,
// shared by every watch.
type link struct {
	mu      sync.Mutex
	state   connectivity.State // Idle until monitor's first reading
	changed chan struct{}      // closed and replaced when state changes
}

// get returns the current state and a channel closed when it changes.
func (l *link) get() (connectivity.State, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.changed == nil {
		l.changed = make(chan struct{})
	}
	return l.state, l.changed
}

func (l *link) set(s connectivity.State) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s == l.state {
		return
	}
	l.state = s
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
}

// monitor keeps c.link up to date until ctx ends or the connection shuts
// down. It only waits for gRPC state changes: no polling, no requests.
func (c *Client) monitor(ctx context.Context) {
	conn := c.cli.ActiveConnection()
	for {
		s := conn.GetState()
		if s == connectivity.Shutdown {
			return
		}
		c.link.set(s)
		if !conn.WaitForStateChange(ctx, s) {
			return
		}
	}
}

// New connects to etcd as cfg says: Nodes (default DefaultNode; "host:port"
// gets cfg.Scheme or http), or SRV discovery (SRVRecord, or
// _<backend>._tcp.<SRVDomain> as confd does); TLS when any of ClientCert,
// ClientKey, ClientCAKeys is set or the scheme is https (ClientInsecure skips
// server verification); Username/Password or AuthToken for etcd auth.
// On error nothing is left running.
func New(ctx context.Context, cfg backends.Config) (*Client, error) {
	if cfg.ReconnectJitter < 0 {
		return nil, fmt.Errorf("etcd: setting reconnect-jitter: %v must not be negative", cfg.ReconnectJitter)
	}
	endpoints, err := endpoints(ctx, cfg)
	if err != nil {
		return nil, err
	}
	ccfg := clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          DialTimeout,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		Username:             cfg.Username,
		Password:             cfg.Password,
		Token:                cfg.AuthToken,
		Logger:               zap.NewNop(),
		Context:              context.WithoutCancel(ctx),
	}
	useTLS := cfg.ClientCert != "" || cfg.ClientKey != "" || cfg.ClientCAKeys != ""
	for _, e := range endpoints {
		useTLS = useTLS || strings.HasPrefix(e, "https://")
	}
	if useTLS {
		if ccfg.TLS, err = cfg.TLSConfig("etcd"); err != nil {
			return nil, err
		}
	}
	c := &Client{pageSize: PageSize, nodes: strings.Join(endpoints, ","), reconnectJitter: cfg.ReconnectJitter, jitter: retry.Jitter}
	c.dots.Log = cfg.Logger
	ccfg.DialOptions = []grpc.DialOption{grpc.WithConnectParams(connectParams)}
	if !slices.ContainsFunc(endpoints, func(e string) bool { return strings.HasPrefix(e, "unix") }) {
		ccfg.DialOptions = append(ccfg.DialOptions, grpc.WithContextDialer(c.dial))
	}
	cli, err := clientv3.New(ccfg)
	if err != nil {
		return nil, fmt.Errorf("etcd: connect %s: %w", c.nodes, err)
	}
	c.cli, c.life = cli, lifecycle.New()
	c.life.Go(func() { c.monitor(c.life.Context()) })
	return c, nil
}

// dial is gRPC's TCP dialer, keeping the last failure for errors: the etcd
// client retries until the request's deadline and then reports only
// "context deadline exceeded".
func (c *Client) dial(ctx context.Context, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		c.dialErr.Store(&err)
		return nil, err
	}
	c.dialErr.Store(nil)
	return conn, nil
}

// Endpoints returns the nodes the client talks to.
func (c *Client) Endpoints() []string { return c.cli.Endpoints() }

// explain adds to a request's error the nodes asked and, when the request
// ran out of time while the client could not connect, the last dial error
// ("connect: connection refused").
func (c *Client) explain(err error) error {
	if e := c.dialErr.Load(); e != nil && (errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded || status.Code(err) == codes.Unavailable) {
		return fmt.Errorf("node %s: %w (last connection attempt: %v)", c.nodes, err, *e)
	}
	return fmt.Errorf("node %s: %w", c.nodes, err)
}

// endpoints resolves the node list: SRV when asked, else Nodes, else the
// default; a node without a scheme gets cfg.Scheme (or https when TLS files
// are given and no scheme was set, else http).
func endpoints(ctx context.Context, cfg backends.Config) ([]string, error) {
	nodes := cfg.Nodes
	if cfg.SRVRecord != "" || cfg.SRVDomain != "" {
		var (
			addrs []*net.SRV
			err   error
			name  = cfg.SRVRecord
		)
		if name != "" {
			_, addrs, err = net.DefaultResolver.LookupSRV(ctx, "", "", name)
		} else {
			service := cfg.Backend
			if service == "" {
				service = "etcd"
			}
			name = "_" + service + "._tcp." + cfg.SRVDomain
			_, addrs, err = net.DefaultResolver.LookupSRV(ctx, service, "tcp", cfg.SRVDomain)
		}
		if err != nil {
			return nil, fmt.Errorf("etcd: SRV lookup %s: %w", name, err)
		}
		nodes = nil
		for _, a := range addrs {
			nodes = append(nodes, net.JoinHostPort(strings.TrimSuffix(a.Target, "."), strconv.Itoa(int(a.Port))))
		}
		if len(nodes) == 0 {
			return nil, fmt.Errorf("etcd: SRV lookup %s: no records", name)
		}
	}
	if len(nodes) == 0 {
		nodes = []string{DefaultNode}
	}
	scheme := strings.TrimSuffix(cfg.Scheme, "://")
	if scheme == "" {
		scheme = "http"
	}
	if scheme != "http" && scheme != "https" {
		return nil, fmt.Errorf("etcd: scheme %q: want http or https", cfg.Scheme)
	}
	out := make([]string, 0, len(nodes))
	for _, n := range nodes {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if !strings.Contains(n, "://") {
			n = scheme + "://" + n
		}
		out = append(out, strings.TrimSuffix(n, "/"))
	}
	if len(out) == 0 {
		return nil, errors.New("etcd: no nodes")
	}
	return out, nil
}

// Stats returns the request counts so far.
func (c *Client) Stats() Stats {
	return Stats{Gets: c.gets.Load(), Ranges: c.ranges.Load()}
}

// keyRange returns the etcd range [start, end) holding prefix and every key
// below prefix + "/". It may also hold siblings such as prefix + "-x"
// (characters before '0'); callers filter with backends.Under.
func keyRange(prefix string) (start, end string) {
	if prefix == "/" {
		return "/", "0"
	}
	return prefix, prefix + "0"
}

// Get implements backends.Backend: every key under prefixes at one revision.
func (c *Client) Get(ctx context.Context, prefixes []string) (backends.Snapshot, error) {
	c.gets.Add(1)
	ps := backends.CoverPrefixes(prefixes)
	for attempt := 0; ; attempt++ {
		snap, err := c.read(ctx, ps, 0)
		// The pinned revision was compacted between pages: start over.
		if errors.Is(err, rpctypes.ErrCompacted) && attempt < 3 && ctx.Err() == nil {
			continue
		}
		return snap, err
	}
}

// read ranges over ps at rev (0: the current revision, fixed by the first
// request).
func (c *Client) read(ctx context.Context, ps []string, rev int64) (backends.Snapshot, error) {
	kvs := map[string]string{}
	var keys []string // in the order read: sorted within each range
	for _, p := range ps {
		start, end := keyRange(p)
		for {
			opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(c.pageSize)}
			if rev != 0 {
				opts = append(opts, clientv3.WithRev(rev))
			}
			rctx, cancel := context.WithTimeout(ctx, RequestTimeout)
			resp, err := c.cli.Get(rctx, start, opts...)
			cancel()
			c.ranges.Add(1)
			if err != nil {
				return backends.Snapshot{}, fmt.Errorf("etcd: get %q: %w", p, c.explain(err))
			}
			if rev == 0 {
				rev = resp.Header.Revision
			}
			for _, kv := range resp.Kvs {
				k := string(kv.Key)
				switch {
				case !backends.Under(k, p):
				case backends.HasDotSegment(k):
					c.dots.Skip(k, "")
				default:
					kvs[k] = string(kv.Value)
					keys = append(keys, k)
				}
			}
			if !resp.More || len(resp.Kvs) == 0 {
				break
			}
			start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		}
	}
	if rev == 0 {
		// No prefixes: report the current revision anyway.
		rctx, cancel := context.WithTimeout(ctx, RequestTimeout)
		defer cancel()
		resp, err := c.cli.Get(rctx, "/", clientv3.WithCountOnly())
		c.ranges.Add(1)
		if err != nil {
			return backends.Snapshot{}, fmt.Errorf("etcd: get revision: %w", c.explain(err))
		}
		rev = resp.Header.Revision
	}
	// Ranges come back sorted by key; so are they all together when the
	// prefixes are in order and apart, as the daemon asks for them.
	for i := 1; i < len(keys); i++ {
		if keys[i-1] >= keys[i] {
			keys = nil
			break
		}
	}
	return backends.Snapshot{Rev: uint64(rev), KVs: kvs, Keys: keys}, nil
}

// Watch implements backends.Backend. With rev 0 it first reads the current
// revision, so every change made after Watch returns is delivered.
//
// While the store is unreachable the watch sends one Update with Err (see
// ErrConnectionLost) and nothing else; once it is reachable again it sends a
// Reset with the whole prefix, then the changes made after the Reset's
// revision. (When a change made after the outage arrives before the
// connection is seen Ready, that change comes instead of the Reset: the
// stream resumed where it stopped.)
func (c *Client) Watch(ctx context.Context, prefix string, rev uint64) (<-chan backends.Update, error) {
	prefix = backends.CleanKey(prefix)
	out := make(chan backends.Update)
	if !c.life.Enter(nil) {
		close(out)
		return out, nil
	}
	if rev == 0 {
		start, _ := keyRange(prefix)
		rctx, cancel := context.WithTimeout(ctx, RequestTimeout)
		resp, err := c.cli.Get(rctx, start, clientv3.WithCountOnly())
		cancel()
		c.ranges.Add(1)
		if err != nil {
			c.life.Done()
			return nil, fmt.Errorf("etcd: watch %q: %w", prefix, c.explain(err))
		}
		rev = uint64(resp.Header.Revision)
	}
	wctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.life.Context(), cancel)
	go func() {
		defer c.life.Done()
		defer close(out)
		defer stop()
		defer cancel()
		w := &watch{c: c, prefix: prefix, out: out, last: rev}
		w.run(wctx)
	}()
	return out, nil
}

// watch is the state of one Watch call's goroutine.
type watch struct {
	c        *Client
	prefix   string
	out      chan<- backends.Update
	last     uint64 // every change up to last was delivered (or is not ours)
	degraded bool   // an Err update was sent and nothing healthy since
	failures int    // consecutive failures, for backoff
	// sawReady: the connection was Ready (or a stream answered) since the
	// watch started, so Idle or Connecting now means it was lost rather
	// than not yet opened.
	sawReady bool
	linkDown bool // the connection was seen down and not Ready since
}

func (w *watch) run(ctx context.Context) {
	for ctx.Err() == nil {
		err := w.stream(ctx)
		if ctx.Err() != nil {
			return
		}
		switch {
		case errors.Is(err, rpctypes.ErrCompacted):
			if !w.spread(ctx) {
				return
			}
			if w.reset(ctx, "re-read after compaction") {
				continue
			}
		case errors.Is(err, errReconnected):
			if !w.spread(ctx) {
				return
			}
			if w.reset(ctx, "re-read after reconnecting") {
				continue
			}
		default:
			w.fail(ctx, fmt.Errorf("etcd: watch %q: %w", w.prefix, err))
			if isAuthError(err) {
				// A unary request refreshes the client's auth token
				// before the watch is opened again.
				rctx, cancel := context.WithTimeout(ctx, RequestTimeout)
				_, _ = w.c.cli.Get(rctx, "/", clientv3.WithCountOnly())
				cancel()
			}
		}
		if !w.sleep(ctx) {
			return
		}
	}
}

func isAuthError(err error) bool {
	return errors.Is(err, rpctypes.ErrInvalidAuthToken) || errors.Is(err, rpctypes.ErrAuthOldRevision) ||
		errors.Is(err, rpctypes.ErrUserEmpty) || errors.Is(err, rpctypes.ErrPermissionDenied)
}

// stream runs one etcd watch from w.last+1 until it ends, delivering its
// events; it returns why it ended: errReconnected when the watch had
// reported an error and the store is reachable again.
func (w *watch) stream(ctx context.Context) error {
	sctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	start, end := keyRange(w.prefix)
	// clientv3's Watch blocks until the server created the watch: open it
	// aside, so that a connection lost meanwhile is reported too.
	opened := make(chan clientv3.WatchChan, 1)
	go func() {
		opened <- w.c.cli.Watch(sctx, start, clientv3.WithRange(end), clientv3.WithRev(int64(w.last+1)),
			clientv3.WithProgressNotify(), clientv3.WithCreatedNotify())
	}()
	var wch clientv3.WatchChan // nil until opened
	defer func() {
		cancel()
		if wch == nil {
			<-opened // Watch returns once sctx is canceled
		}
	}()
	for {
		state, changed := w.c.link.get()
		if w.checkLink(ctx, state) {
			return errReconnected
		}
		var resp clientv3.WatchResponse
		var ok bool
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
			continue
		case wch = <-opened:
			continue
		case resp, ok = <-wch:
		}
		if !ok {
			return errors.New("watch stream closed")
		}
		if resp.CompactRevision != 0 {
			return rpctypes.ErrCompacted
		}
		if err := resp.Err(); err != nil {
			return err
		}
		if resp.Canceled {
			return errors.New("watch canceled by the server")
		}
		// The server answered, so the connection is (or was just) up.
		w.sawReady = true
		if resp.Created {
			if w.degraded {
				// A watch opened after an error: healthy again, but
				// what changed meanwhile is read again as a whole.
				return errReconnected
			}
			continue
		}
		w.failures = 0
		if !w.deliver(ctx, resp.Events) {
			return ctx.Err()
		}
		if resp.IsProgressNotify() && resp.Header.Revision > 0 {
			// Nothing of ours changed up to here: resume after it.
			w.last = max(w.last, uint64(resp.Header.Revision))
		}
	}
}

// checkLink reports a lost connection once, and whether the watch should
// recover: it reported an error and the connection is Ready again after
// having been seen down.
func (w *watch) checkLink(ctx context.Context, state connectivity.State) (reconnected bool) {
	switch state {
	case connectivity.Ready:
		w.sawReady = true
		if w.linkDown {
			w.linkDown = false
			return w.degraded
		}
	case connectivity.TransientFailure, connectivity.Idle, connectivity.Connecting:
		// Idle and Connecting are also what a client that never needed
		// its connection yet reports: down only after having been up.
		if w.linkDown || (state != connectivity.TransientFailure && !w.sawReady) {
			return false
		}
		w.linkDown = true
		if !w.degraded {
			w.fail(ctx, fmt.Errorf("etcd: watch %q: %w (gRPC connection %s)", w.prefix, ErrConnectionLost, state))
		}
	}
	return false
}

// deliver sends events as one Update per revision. It returns false when
// ctx ended first.
func (w *watch) deliver(ctx context.Context, events []*clientv3.Event) bool {
	for i := 0; i < len(events); {
		rev := uint64(events[i].Kv.ModRevision)
		var changes []backends.Change
		for ; i < len(events) && uint64(events[i].Kv.ModRevision) == rev; i++ {
			ev := events[i]
			key := string(ev.Kv.Key)
			if rev <= w.last || !backends.Under(key, w.prefix) {
				continue
			}
			if backends.HasDotSegment(key) {
				w.c.dots.Skip(key, "")
				continue
			}
			if ev.Type == mvccpb.DELETE {
				changes = append(changes, backends.Change{Key: key, Deleted: true})
			} else {
				changes = append(changes, backends.Change{Key: key, Value: string(ev.Kv.Value)})
			}
		}
		if rev <= w.last {
			continue
		}
		if len(changes) > 0 && !w.send(ctx, backends.Update{Prefix: w.prefix, Rev: rev, Changes: changes}) {
			return false
		}
		w.last = rev
		w.degraded = false
	}
	return true
}

// reset re-reads the whole prefix and sends it as a Reset; why names the
// occasion in errors. It reports whether that worked; on failure it has sent
// an Err (unless one was sent already).
func (w *watch) reset(ctx context.Context, why string) bool {
	w.c.gets.Add(1)
	snap, err := w.c.read(ctx, []string{w.prefix}, 0)
	if err != nil {
		w.fail(ctx, fmt.Errorf("etcd: watch %q: %s: %w", w.prefix, why, err))
		return false
	}
	rev := max(snap.Rev, w.last)
	if !w.send(ctx, backends.Update{Prefix: w.prefix, Rev: rev, Reset: true, KVs: snap.KVs}) {
		return false
	}
	w.last, w.degraded, w.failures = rev, false, 0
	return true
}

// fail sends err once per healthy-to-degraded transition.
func (w *watch) fail(ctx context.Context, err error) {
	w.failures++
	if w.degraded {
		return
	}
	if w.send(ctx, backends.Update{Prefix: w.prefix, Rev: w.last, Err: err}) {
		w.degraded = true
	}
}

// spread waits a random part of the reconnect-jitter window before a
// re-list (backends.Config.ReconnectJitter), so that a fleet whose store
// came back, or whose watches were all compacted, does not re-read at
// once. False when ctx ended.
func (w *watch) spread(ctx context.Context) bool {
	if w.c.reconnectJitter <= 0 {
		return ctx.Err() == nil
	}
	return retry.Sleep(ctx, w.c.jitter(w.c.reconnectJitter))
}

// sleep waits a jittered exponential backoff; false when ctx ended.
func (w *watch) sleep(ctx context.Context) bool {
	return retry.Sleep(ctx, retry.Backoff(backoffMin, backoffMax, w.failures))
}

func (w *watch) send(ctx context.Context, u backends.Update) bool {
	select {
	case w.out <- u:
		return true
	case <-ctx.Done():
		return false
	}
}

// Close implements backends.Backend: it ends every watch and the connection
// monitor, waits until the watch channels are closed, then closes the
// connection. Later calls do nothing.
func (c *Client) Close() error {
	if !c.life.Close() {
		return nil
	}
	if err := c.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("etcd: close: %w", err)
	}
	return nil
}

var _ backends.Backend = (*Client)(nil)
