// Package redis is the Redis backend, registered as "redis". It speaks to
// Redis 6 and later and to Valkey (the same protocol), standalone or through
// Sentinel (Options.SentinelMaster); Redis Cluster is not supported yet.
//
// Keys follow confd: a string key holds a value, a hash at key k yields one
// entry k/field per field, and Options.Separator maps "/" ("/app/db" is the
// Redis key "app:db" with separator ":"). Get reads a prefix with SCAN
// (glob characters in the prefix escaped), then one pipelined MGET per
// thousand keys and one pipeline of HGETALL for the keys MGET found not to
// be strings, instead of a round trip per key. Redis has no multi-key
// snapshot here: Get is not atomic across keys and Snapshot.Rev is 0.
//
// A node is host:port, optionally followed by /db (confd's form,
// "127.0.0.1:6379/2"), or a Unix socket's path (as confd: "/run/redis.sock",
// or "/run/redis.sock/2"); the first node is used. With
// Options.SentinelMaster the nodes are Sentinels (asked without a
// password), the master they name is used and followed across failovers,
// and the database comes from the first node. The password is -password;
// confd's use of -client-key as the Redis password is accepted with a
// warning. TLS (the server's tls-port) is on for a rediss:// node or any
// TLS setting but client-key alone (see tlsConfig).
//
// Watch: see watch.go.
package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/backends/internal/lifecycle"
	"github.com/redis/rueidis"
)

// Name is the backend's registered name.
const Name = "redis"

// Timeouts and limits.
const (
	// DefaultNode is used when no node is given (confd's default).
	DefaultNode = "127.0.0.1:6379"
	// DialTimeout bounds connecting to the server.
	DialTimeout = 5 * time.Second
	// ConnTimeout bounds each command and detects a dead connection
	// (rueidis pings idle connections within it).
	ConnTimeout = 10 * time.Second
	// scanCount is SCAN's COUNT hint; batch is the most keys per MGET.
	scanCount = 1000
	batch     = 1000
	// connBuffer is each connection's read and write buffer size.
	connBuffer = 32 << 10
)

// Stats counts requests made to the server, for benchmarks.
type Stats struct {
	// Lists counts prefix reads (SCAN walks): Get calls and watch re-lists.
	Lists uint64
	// Reads counts keys read by a watch after a change notification.
	Reads uint64
}

// Client is a Redis Backend. It is safe for concurrent use.
type Client struct {
	cli  rueidis.Client
	node string // for errors
	sep  string
	poll time.Duration
	mode string // Options.Watch
	db   int
	log  *slog.Logger

	lists, reads atomic.Uint64

	life *lifecycle.Group
	trk  *tracker // the shared tracking connection, started by the first Watch (in life.Enter's locked func)
}

// parseNode splits "host:port[/db]" (a redis:// or rediss:// prefix is
// tolerated; rediss:// asks for TLS, see New), or
// a Unix socket's path as confd takes it ("/run/redis.sock", optionally
// followed by /db; a unix:// prefix is tolerated): unix is then true.
func parseNode(node string) (addr string, db int, unix bool, err error) {
	addr = strings.TrimPrefix(strings.TrimPrefix(node, "redis://"), "rediss://")
	if rest, ok := strings.CutPrefix(addr, "unix://"); ok || strings.HasPrefix(addr, "/") {
		addr, unix = rest, true
		if !ok {
			addr = node
		}
		if _, err := os.Stat(addr); err == nil {
			return addr, 0, true, nil // the socket itself
		}
	}
	if i := strings.LastIndex(addr, "/"); i >= 0 && !(unix && i == 0) {
		db, err = strconv.Atoi(addr[i+1:])
		if err != nil || db < 0 {
			if unix {
				return addr, 0, true, nil // a socket not there (yet): the dial says so
			}
			return "", 0, false, fmt.Errorf("redis: node %q: database %q is not a number >= 0", node, addr[i+1:])
		}
		addr = addr[:i]
	}
	if addr == "" {
		return "", 0, false, fmt.Errorf("redis: node %q: no address", node)
	}
	if !unix && !strings.Contains(addr, ":") {
		addr += ":6379"
	}
	return addr, db, unix, nil
}

// New connects to the first of cfg.Nodes (DefaultNode if none) and returns
// once the server answered, or an error naming the node. ctx bounds the
// connection attempt only.
func New(ctx context.Context, cfg backends.Config, opts Options) (*Client, error) {
	log := cfg.Logger // the daemon has named the backend in it already
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Separator == "" {
		opts.Separator = "/"
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 10 * time.Second
	}
	if opts.Watch == "" {
		opts.Watch = WatchTracking
	}
	nodes := cfg.Nodes
	if len(nodes) == 0 {
		nodes = []string{DefaultNode}
	}
	node := nodes[0]
	addr, db, unix, err := parseNode(node)
	if err != nil {
		return nil, err
	}
	addrs := []string{addr}
	if opts.SentinelMaster != "" {
		for _, n := range nodes[1:] {
			a, _, _, err := parseNode(n)
			if err != nil {
				return nil, err
			}
			addrs = append(addrs, a)
		}
		node = fmt.Sprintf("sentinel %s (%s)", opts.SentinelMaster, strings.Join(addrs, ","))
	}
	password := cfg.Password
	if password == "" && cfg.ClientKey != "" && cfg.ClientCert == "" {
		log.Warn("redis: using -client-key as the Redis password (confd's behaviour); use -password instead")
		password = cfg.ClientKey
	}
	tc, err := tlsConfig(cfg, nodes[0])
	if err != nil {
		return nil, err
	}
	if tc != nil && unix && opts.SentinelMaster == "" {
		return nil, fmt.Errorf("redis: node %q: TLS settings given for a Unix socket (Redis serves TLS on its tls-port only)", nodes[0])
	}
	o := rueidis.ClientOption{
		InitAddress:       addrs,
		SelectDB:          db,
		Username:          cfg.Username,
		Password:          password,
		DisableCache:      true,
		ForceSingleClient: true,
		// No retries inside rueidis: a read-only command would be retried
		// until its context ends (forever for a watch's re-list) while the
		// server is down. The watch retries with its own backoff, and says
		// meanwhile that it is degraded.
		DisableRetry:     true,
		ConnWriteTimeout: ConnTimeout,
		Dialer:           net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second},
		// Every watched prefix holds a connection: rueidis's defaults
		// (0.5 MiB read and write buffers, a 1024-slot ring) cost ~0.5 MB
		// each, 100 MB of RSS for 200 prefixes.
		ReadBufferEachConn:  connBuffer,
		WriteBufferEachConn: connBuffer,
		RingScaleEachConn:   8,
	}
	o.TLSConfig = tc
	if unix && opts.SentinelMaster == "" {
		o.DialCtxFn = func(ctx context.Context, path string, d *net.Dialer, _ *tls.Config) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		}
	}
	if opts.SentinelMaster != "" {
		o.Sentinel = rueidis.SentinelOption{
			MasterSet: opts.SentinelMaster,
			Dialer:    o.Dialer,
			// Besides +switch-master events (which a broken connection to
			// the Sentinel misses), ask every few seconds.
			TopologyRefreshInterval: 5 * time.Second,
			TLSConfig:               tc, // the Sentinels too
		}
	}
	// NewClient dials at once; bound it by ctx and DialTimeout.
	type result struct {
		c   rueidis.Client
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := rueidis.NewClient(o)
		done <- result{c, err}
	}()
	var r result
	dctx, cancel := context.WithTimeout(ctx, DialTimeout+time.Second)
	defer cancel()
	select {
	case r = <-done:
	case <-dctx.Done():
		go func() { // close the client should it still connect
			if r := <-done; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, fmt.Errorf("redis: connect %s: %w", node, dctx.Err())
	}
	if r.err != nil {
		if tc != nil && errors.Is(r.err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("redis: connect %s: %w (no answer to the TLS handshake: is it the server's tls-port?)", node, r.err)
		}
		return nil, fmt.Errorf("redis: connect %s: %w", node, r.err)
	}
	c := &Client{cli: r.c, node: node, sep: opts.Separator, poll: opts.PollInterval, mode: opts.Watch, db: db, log: log}
	c.life = lifecycle.New()
	return c, nil
}

// tlsConfig returns the TLS configuration, or nil for plain TCP. TLS is on
// when the first node is rediss:// or any TLS setting but client-key alone
// is given: client-ca-keys, client-cert (with client-key as its key) or
// client-insecure. client-key alone stays confd's Redis password.
func tlsConfig(cfg backends.Config, node string) (*tls.Config, error) {
	if cfg.ClientCert == "" {
		cfg.ClientKey = "" // the password (see New), not a certificate's key
	}
	if !cfg.WantsTLS() && !strings.HasPrefix(node, "rediss://") {
		return nil, nil
	}
	return cfg.TLSConfig("redis")
}

// Stats returns the requests made so far.
func (c *Client) Stats() Stats {
	return Stats{Lists: c.lists.Load(), Reads: c.reads.Load()}
}

// toRedis maps a confit key to a Redis key.
func (c *Client) toRedis(key string) string {
	if c.sep == "/" {
		return key
	}
	return strings.ReplaceAll(strings.TrimPrefix(key, "/"), "/", c.sep)
}

// fromRedis maps a Redis key to a confit key, false when it is not one
// (not clean once mapped).
func (c *Client) fromRedis(rk string) (string, bool) {
	k := rk
	if c.sep != "/" {
		k = "/" + strings.ReplaceAll(rk, c.sep, "/")
	}
	return k, backends.IsClean(k) && k != "/"
}

// escapeGlob escapes SCAN MATCH's special characters in s.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\', '^', '-':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// pattern is the SCAN MATCH pattern for the keys strictly below prefix.
func (c *Client) pattern(prefix string) string {
	if prefix == "/" {
		return "*"
	}
	return escapeGlob(c.toRedis(prefix)+c.sep) + "*"
}

// sources maps a Redis key to the entries it yields (one for a string, one
// per field for a hash).
type sources map[string]map[string]string

// flatten returns the entries of srcs under prefix, into dst.
func (s sources) flatten(dst map[string]string, prefix string) map[string]string {
	if dst == nil {
		dst = map[string]string{}
	}
	for _, kvs := range s {
		for k, v := range kvs {
			if backends.Under(k, prefix) {
				dst[k] = v
			}
		}
	}
	return dst
}

// staleTries bounds the attempts of a read that finds its connections
// closed: one per pooled connection a read may be given, and one more.
const staleTries = 3

// stale reports whether err is a connection the server (or something on
// the way) closed while it sat idle (CLIENT KILL, the server's timeout
// setting, a proxy's idle cut, a restart): rueidis notices only when the
// next command fails, and retries nothing (DisableRetry), so the read is
// tried again on a new connection. An error reply, or the caller's
// context ending, is not stale.
func stale(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	if _, ok := rueidis.IsRedisErr(err); ok {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// list reads every Redis key under prefix (the prefix's own key included),
// again (up to staleTries times) while it finds a connection closed.
func (c *Client) list(ctx context.Context, prefix string) (sources, error) {
	return readAgain(ctx, c, func() (sources, error) { return c.listOnce(ctx, prefix) })
}

// readAgain runs read, and again (up to staleTries times in all) while it
// finds a connection closed (stale).
func readAgain[T any](ctx context.Context, c *Client, read func() (T, error)) (T, error) {
	v, err := read()
	for i := 1; i < staleTries && stale(ctx, err); i++ {
		c.log.Debug("redis: a connection was closed while idle; reading again", "err", err)
		v, err = read()
	}
	return v, err
}

func (c *Client) listOnce(ctx context.Context, prefix string) (sources, error) {
	c.lists.Add(1)
	keys := []string{}
	if prefix != "/" {
		keys = append(keys, c.toRedis(prefix))
	}
	match := c.pattern(prefix)
	var cursor uint64
	for {
		e, err := c.cli.Do(ctx, c.cli.B().Scan().Cursor(cursor).Match(match).Count(scanCount).Build()).AsScanEntry()
		if err != nil {
			return nil, fmt.Errorf("redis: %s: scan %q: %w", c.node, prefix, err)
		}
		keys = append(keys, e.Elements...)
		if e.Cursor == 0 {
			break
		}
		cursor = e.Cursor
	}
	srcs, err := c.readOnce(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("redis: %s: read %q: %w", c.node, prefix, err)
	}
	return srcs, nil
}

// read fetches the given Redis keys: MGET in batches, then HGETALL for the
// keys MGET returned nil for (hashes, or keys gone meanwhile). A key
// missing from the result does not exist (or holds another type). A
// connection found closed is replaced, as in list.
func (c *Client) read(ctx context.Context, rkeys []string) (sources, error) {
	return readAgain(ctx, c, func() (sources, error) { return c.readOnce(ctx, rkeys) })
}

func (c *Client) readOnce(ctx context.Context, rkeys []string) (sources, error) {
	srcs := sources{}
	seen := make(map[string]bool, len(rkeys))
	var uniq []string
	for _, rk := range rkeys {
		if _, ok := c.fromRedis(rk); ok && !seen[rk] {
			seen[rk] = true
			uniq = append(uniq, rk)
		}
	}
	var cmds rueidis.Commands
	for i := 0; i < len(uniq); i += batch {
		cmds = append(cmds, c.cli.B().Mget().Key(uniq[i:min(i+batch, len(uniq))]...).Build())
	}
	var nils []string
	for i, r := range c.cli.DoMulti(ctx, cmds...) {
		vals, err := r.ToArray()
		if err != nil {
			return nil, fmt.Errorf("mget: %w", err)
		}
		for j, v := range vals {
			rk := uniq[i*batch+j]
			s, err := v.ToString()
			if err != nil { // nil: not a string
				nils = append(nils, rk)
				continue
			}
			k, _ := c.fromRedis(rk)
			srcs[rk] = map[string]string{k: s}
		}
	}
	if len(nils) == 0 {
		return srcs, nil
	}
	cmds = cmds[:0]
	for _, rk := range nils {
		cmds = append(cmds, c.cli.B().Hgetall().Key(rk).Build())
	}
	for i, r := range c.cli.DoMulti(ctx, cmds...) {
		m, err := r.AsStrMap()
		if err != nil {
			if _, ok := rueidis.IsRedisErr(err); ok { // WRONGTYPE: a list or set, skipped as confd does
				continue
			}
			return nil, fmt.Errorf("hgetall %q: %w", nils[i], err)
		}
		if len(m) == 0 {
			continue
		}
		k, _ := c.fromRedis(nils[i])
		kvs := make(map[string]string, len(m))
		for f, v := range m {
			if fk := backends.CleanKey(k + "/" + f); backends.Under(fk, k) && fk != k {
				kvs[fk] = v
			}
		}
		srcs[nils[i]] = kvs
	}
	return srcs, nil
}

// Get reads every key under each of prefixes. Redis gives no snapshot
// across keys: each key is read as it is when its batch runs; Rev is 0.
func (c *Client) Get(ctx context.Context, prefixes []string) (backends.Snapshot, error) {
	kvs := map[string]string{}
	for _, p := range backends.CoverPrefixes(prefixes) {
		srcs, err := c.list(ctx, p)
		if err != nil {
			return backends.Snapshot{}, err
		}
		srcs.flatten(kvs, p)
	}
	return backends.Snapshot{KVs: kvs}, nil
}

// Close stops every watch, waits for their goroutines and closes the
// connections. A second call does nothing.
func (c *Client) Close() error {
	if !c.life.Close() {
		return nil
	}
	c.cli.Close()
	return nil
}

var _ backends.Backend = (*Client)(nil)
