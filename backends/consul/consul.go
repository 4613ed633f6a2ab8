// Package consul is the Consul backend: KV prefixes, and service health and
// the service catalog presented as a read-only virtual key space, all read
// and watched through Consul's HTTP API (github.com/hashicorp/consul/api).
//
// # Keys
//
// A confit key "/app/db/url" is the Consul KV key "app/db/url". A prefix
// matches itself and the keys below it + "/", never a sibling that shares the
// string prefix ("/app/foobar" is not under "/app/foo"; confd gets this
// wrong). Consul folder markers ("app/") are cleaned like confd does
// (path.Join), so they appear as the key "/app" with an empty value unless a
// real key "app" exists. A key with a "." or ".." element ("app/../b") is
// skipped with a warning naming it: cleaned, it would name a path outside
// its prefix (backends.HasDotSegment).
//
// # Services as virtual keys
//
// So that the engine and templates stay store-agnostic, service discovery is
// served under reserved prefixes whose first segment starts with "@" (see
// [ServicePrefix], [ServiceAnyPrefix], [ServicesPrefix]):
//
//	/@service/<name>/<instance>      passing instances of <name>     (/v1/health/service/<name>?passing)
//	/@service-any/<name>/<instance>  every instance, any health      (/v1/health/service/<name>)
//	/@services/<name>                every service in the catalog    (/v1/catalog/services)
//
// An instance's value is the JSON of [Instance]; a catalog entry's value is
// the JSON list of its tags, sorted. <instance> is the service ID (path
// escaped); when two nodes register the same ID it becomes "<ID>@<node>".
// Tag filtering is left to templates. Virtual keys are served only for
// prefixes inside them: "/" lists the KV store, not the services.
//
// # Revisions and consistency
//
// Consul has no multi-key snapshot. Get lists each prefix separately; every
// prefix is internally consistent at its own X-Consul-Index, which Get
// returns in Snapshot.Revs under the requested prefix (cleaned with
// [backends.CleanKey]); Snapshot.Rev is the highest of those indexes.
// Watch(prefix, rev) first lists the prefix: if its index is above rev,
// something changed after rev and the first Update is a Reset with the full
// contents; otherwise the watch continues from that list. Watch each prefix
// from its own Snapshot.RevOf(prefix) and nothing is missed, however many
// prefixes one Get read. (Watching every prefix from Rev instead can miss a
// change that landed in a prefix while Get was still reading later ones:
// its index can be at or below Rev.)
//
// # Watches and connections
//
// Watches are Consul blocking queries (index + wait, the wait jittered by up
// to ±1/16 so a fleet of sidecars does not hit the servers in lockstep). KV
// watches of one Client whose prefixes share a first path segment share ONE
// blocking query on their longest common parent, filtered locally per
// prefix; prefixes with nothing in common get a query each, up to
// [Options.MaxKVQueries] and while every blocking query has a connection of
// its own within MaxBlockingConns, beyond which the nearest merge (see
// kvgroups.go). A dense group (16 or more prefixes) is split by string
// prefix while queries are left over, "sus/r0" and "sus/r1" for
// /sus/r000 ... /sus/r199, each answer half the size; a new group's query
// undoes the split. Their roots do not overlap, so a change wakes one query; each distinct
// service (per health mode) and the catalog get one blocking query each,
// shared by every watcher of it. Blocking queries run over their own
// http.Transport bounded to [Options.MaxBlockingConns] connections, reads
// (Get and the first list of a Watch) over a second transport bounded to
// [Options.MaxReadConns], so 200 watched KV prefixes hold at most
// MaxBlockingConns+MaxReadConns connections (8 by default) instead of 200
// (Consul's http_max_conns_per_client is 200: exceeding it makes the agent
// answer 429 to every client on the host). To a loopback agent over plain
// HTTP, each KV query's connection (one of the MaxBlockingConns) is its
// own, written and read by the hub goroutine (direct.go). The cost of sharing: a change
// anywhere under a query's root transfers the root's listing. A watch
// on more distinct services than MaxBlockingConns-1 queues behind the
// others; raise MaxBlockingConns for such templates.
//
// Each answer is compared with the previous one key by key: a KV answer by
// ModifyIndex, walking the JSON without decoding the values of unchanged
// keys, or, when the state is the previous answer's listing, parsing only
// the entries listed above its index (kvskim.go); a service answer by value. Only the keys that changed are handed to
// the watches whose prefix covers them, so a change costs O(changed keys)
// however many prefixes share the query. Connections to a loopback agent
// ask for uncompressed answers.
//
// A blocking query answers with the whole current list, so a watch delivers
// the difference between what it last delivered and the current state:
// values a key held only between two answers are never seen (Consul keeps
// no history), and a key set twice in quick succession may arrive as one
// Change with the last value.
//
// Consul's blocking-query rules are followed: an index that goes backwards
// resets it to 0 for a full read and the prefix gets a Reset; an index of 0
// after the first read is treated as 1; a re-query after an answer that
// changed a watched key goes out at once, while re-queries after index churn
// (answers that changed no watched key) are rate-limited to one per
// [Options.MinRequeryInterval] on average, with bursts of 10; a wake-up with
// unchanged data sends nothing;
// each request's deadline exceeds wait plus both jitters (ours and the
// server's wait/16). While a query runs, the agent is asked for its leader
// every [Options.ProbeInterval] (15s): an agent that accepts connections but
// does not answer (SIGSTOPped, wedged) fails the query within
// ProbeInterval+ProbeTimeout (25s by default) with [ErrAgentNotAnswering]
// instead of at the query's own deadline minutes later. Errors send one
// Update{Err} per transition to degraded and are retried with jittered
// exponential backoff; recovery sends a Reset with the full contents, read
// again and compared by value rather than by ModifyIndex, because an agent
// restarted and re-populated (a -dev agent) can give a changed key the
// index it had before. (An agent restarted between two answers without any
// query failing would go unseen; a query is always in flight, so the
// restart breaks its connection.)
//
// # Empty lists
//
// A prefix or service list that shrinks from non-empty to empty is held back
// for [Options.EmptyGrace] (default 10s, env CONFIT_CONSUL_EMPTY_GRACE when
// built through the registry) with a warning, because Consul answers empty
// lists during leader elections and right after an agent restart. If it is
// still empty after the grace, the empty state is delivered (a real scale to
// zero).
package consul

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/internal/retry"
	"github.com/hashicorp/consul/api"
)

// Name is the name the backend registers under.
const Name = "consul"

// DefaultAddress is the agent address used when cfg.Nodes is empty.
const DefaultAddress = "127.0.0.1:8500"

// Virtual prefixes (see the package documentation).
const (
	// ServicePrefix serves the passing instances of a service:
	// "/@service/<name>/<instance>" = JSON of [Instance].
	ServicePrefix = backends.ServicePrefix
	// ServiceAnyPrefix serves every instance of a service whatever its
	// health, with Instance.Status set: "/@service-any/<name>/<instance>".
	ServiceAnyPrefix = backends.ServiceAnyPrefix
	// ServicesPrefix serves the catalog: "/@services/<name>" = JSON list of
	// the service's tags, sorted.
	ServicesPrefix = backends.ServicesPrefix
)

// EnvEmptyGrace names the environment variable read by the registered
// factory for [Options.EmptyGrace] (a time.ParseDuration string; "0"
// disables the grace).
const EnvEmptyGrace = "CONFIT_CONSUL_EMPTY_GRACE"

// Options tunes a Client beyond backends.Config. The zero value means the
// defaults documented on each field.
type Options struct {
	// Datacenter to read from (default: the agent's).
	Datacenter string `setting:"datacenter" usage:"consul: datacenter"`
	// Stale allows stale reads from any server (AllowStale), which spreads
	// the load of large fleets at the cost of possibly stale data.
	Stale bool `setting:"consul-stale" usage:"consul: allow stale reads from any server"`

	// Logger receives warnings (empty-list grace, watch errors). Default
	// backends.Config.Logger, used as given (the daemon already names the
	// backend in it); when both are nil the logs are discarded.
	Logger *slog.Logger
	// EmptyGrace is how long a prefix or service list that shrinks to empty
	// is held back before the empty state is delivered. Default 10s;
	// negative disables the grace.
	EmptyGrace time.Duration
	// WaitTime is the blocking-query wait before jitter. Default 5m.
	WaitTime time.Duration
	// MinRequeryInterval is the average spacing of the requests of one
	// blocking query when its index keeps changing without changing any
	// watched key (bursts of 10 go out at once). A re-query after a real
	// change is never delayed. Default 50ms.
	MinRequeryInterval time.Duration
	// BackoffMin and BackoffMax bound the jittered exponential backoff after
	// an error. Defaults 250ms and 10s.
	BackoffMin, BackoffMax time.Duration
	// MaxBlockingConns bounds the connections used by blocking queries,
	// the KV queries' direct connections to a loopback agent included.
	// Default 6.
	MaxBlockingConns int
	// MaxReadConns bounds the connections used by Get and by the first read
	// of each Watch. Default 2.
	MaxReadConns int
	// MaxKVQueries bounds the blocking queries that KV watches share: KV
	// prefixes with no first path segment in common get a query each, up
	// to this many, while every blocking query still fits
	// MaxBlockingConns (see the package documentation). Default
	// MaxBlockingConns; 1 makes every KV watch share one query on their
	// common parent.
	MaxKVQueries int
	// ProbeInterval is how often, while a blocking query waits, the agent
	// is asked for its leader (a request it answers at once) to tell a
	// frozen agent from a quiet one: a blocking query to an agent that
	// accepts connections but never answers would otherwise only end with
	// its own deadline, minutes later. Default 15s; negative disables.
	ProbeInterval time.Duration
	// ProbeTimeout bounds each probe; a probe without an answer ends the
	// blocking query with an error (reported as a degraded watch, retried
	// with backoff). Default 10s.
	ProbeTimeout time.Duration
	// DialContext, when set, dials every connection (tests count them).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.EmptyGrace == 0 {
		o.EmptyGrace = 10 * time.Second
	}
	if o.WaitTime <= 0 {
		o.WaitTime = 5 * time.Minute
	}
	if o.MinRequeryInterval <= 0 {
		o.MinRequeryInterval = 50 * time.Millisecond
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = 250 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 10 * time.Second
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = o.BackoffMin
	}
	if o.ProbeInterval == 0 {
		o.ProbeInterval = 15 * time.Second
	}
	if o.ProbeTimeout <= 0 {
		o.ProbeTimeout = 10 * time.Second
	}
	if o.MaxBlockingConns <= 0 {
		o.MaxBlockingConns = 6
	}
	if o.MaxReadConns <= 0 {
		o.MaxReadConns = 2
	}
	if o.MaxKVQueries <= 0 {
		o.MaxKVQueries = o.MaxBlockingConns
	}
	return o
}

// settings are the consul backend's options as a user sets them: the
// shared network settings and the consul ones (see backends.Register).
type settings struct {
	backends.Config
	Options
}

func init() {
	backends.Register(Name, func(ctx context.Context, s *settings, log *slog.Logger) (backends.Backend, error) {
		s.Config.Logger = log
		if v := os.Getenv(EnvEmptyGrace); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return nil, fmt.Errorf("consul: %s=%q: %w", EnvEmptyGrace, v, err)
			}
			if d == 0 {
				d = -1
			}
			s.EmptyGrace = d
		}
		return New(ctx, s.Config, s.Options)
	})
}

// Client is a backends.Backend over one Consul agent. It is safe for
// concurrent use.
type Client struct {
	opts Options
	log  *slog.Logger
	addr string           // the agent's address, for errors
	dots backends.DotKeys // keys skipped for a "." or ".." element
	// anonymous: no ACL token configured (Consul does not tell anonymous
	// requests that results were filtered).
	anonymous bool
	read      *api.Client // Get and first reads
	block     *api.Client // blocking queries
	trs       []*http.Transport
	kvConn    *direct          // KV hubs get direct connections dialled as this one's (it never connects itself); nil: none (see newAPI)
	query     api.QueryOptions // template: datacenter, stale
	// reconnectJitter is backends.Config.ReconnectJitter; jitter draws
	// from it (retry.Jitter; tests replace it). See retryWait.
	reconnectJitter time.Duration
	jitter          func(window time.Duration) time.Duration

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	hubs   map[string]*hub // service and catalog hubs, by root
	kvHubs []*hub          // KV hubs, their parents disjoint (kvgroups.go)
}

// New builds a Client from cfg: cfg.Nodes[0] (default [DefaultAddress]),
// cfg.Scheme, ClientCert/ClientKey/ClientCAKeys, AuthToken (else
// CONSUL_HTTP_TOKEN), BasicAuth with Username/Password and Logger (unless
// opts.Logger is set); opts.Datacenter and opts.Stale. It does not contact the agent.
func New(ctx context.Context, cfg backends.Config, opts Options) (*Client, error) {
	if cfg.ReconnectJitter < 0 {
		return nil, fmt.Errorf("consul: setting reconnect-jitter: %v must not be negative", cfg.ReconnectJitter)
	}
	if opts.Logger == nil {
		opts.Logger = cfg.Logger
	}
	opts = opts.withDefaults()
	ac := api.DefaultConfig() // reads CONSUL_HTTP_TOKEN and friends
	ac.Address = DefaultAddress
	if len(cfg.Nodes) > 0 && cfg.Nodes[0] != "" {
		ac.Address = cfg.Nodes[0]
	}
	if cfg.Scheme != "" {
		ac.Scheme = cfg.Scheme
	}
	if cfg.ClientCert != "" || cfg.ClientKey != "" || cfg.ClientCAKeys != "" {
		if cfg.Scheme == "" {
			ac.Scheme = "https"
		}
		ac.TLSConfig.CertFile = cfg.ClientCert
		ac.TLSConfig.KeyFile = cfg.ClientKey
		ac.TLSConfig.CAFile = cfg.ClientCAKeys
	}
	if cfg.ClientInsecure {
		ac.TLSConfig.InsecureSkipVerify = true
	}
	if cfg.AuthToken != "" {
		ac.Token = cfg.AuthToken
	}
	if cfg.BasicAuth {
		ac.HttpAuth = &api.HttpBasicAuth{Username: cfg.Username, Password: cfg.Password}
	}
	ac.Datacenter = opts.Datacenter
	ac.WaitTime = opts.WaitTime

	c := &Client{opts: opts, log: opts.Logger, addr: ac.Address, hubs: map[string]*hub{},
		reconnectJitter: cfg.ReconnectJitter, jitter: retry.Jitter}
	c.dots.Log = opts.Logger
	c.anonymous = ac.Token == "" && ac.TokenFile == ""
	c.query = api.QueryOptions{Datacenter: opts.Datacenter, AllowStale: opts.Stale}
	var err error
	if c.read, err = c.newAPI(*ac, opts.MaxReadConns, false); err != nil {
		return nil, err
	}
	if c.block, err = c.newAPI(*ac, opts.MaxBlockingConns, true); err != nil {
		c.closeIdle()
		return nil, err
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// newAPI builds one api.Client on its own bounded transport. With
// withDirect, a loopback agent and maxConns of 2 or more, each KV hub's
// blocking query gets a direct connection of its own (direct.go) and the
// transport gets maxConns-1 for the service hubs: every blocking query
// holds one connection, and kvHubRoom keeps the queries within maxConns.
func (c *Client) newAPI(ac api.Config, maxConns int, withDirect bool) (*api.Client, error) {
	var d *direct
	if withDirect && maxConns >= 2 && isLoopback(ac.Address) {
		maxConns--
		d = &direct{}
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxConnsPerHost:     maxConns,
		MaxIdleConnsPerHost: maxConns,
		MaxIdleConns:        maxConns,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	if c.opts.DialContext != nil {
		tr.DialContext = c.opts.DialContext
	}
	// A local agent answers faster than it compresses, and every change
	// transfers a whole listing: gzip would only cost CPU on both sides.
	tr.DisableCompression = isLoopback(ac.Address)
	hc, err := api.NewHttpClient(tr, ac.TLSConfig)
	if err != nil {
		return nil, fmt.Errorf("consul: tls: %w", err)
	}
	if d != nil {
		d.dial = tr.DialContext
		c.kvConn = d
	}
	hc.Transport = tapTransport{base: tr}
	ac.Transport = tr
	ac.HttpClient = hc
	cl, err := api.NewClient(&ac)
	if err != nil {
		tr.CloseIdleConnections()
		return nil, fmt.Errorf("consul: %w", err)
	}
	c.trs = append(c.trs, tr)
	return cl, nil
}

// isLoopback reports whether the agent address (host:port, a URL or a unix
// socket) is on this machine.
func isLoopback(addr string) bool {
	if strings.HasPrefix(addr, "unix://") {
		return true
	}
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		addr = u.Host
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *Client) closeIdle() {
	for _, tr := range c.trs {
		tr.CloseIdleConnections()
	}
	c.kvConn.close()
}

// Get implements backends.Backend. Each prefix is listed separately (see the
// package documentation on consistency): Revs maps each requested prefix,
// cleaned, to the index it was read at; Rev is the highest of them.
func (c *Client) Get(ctx context.Context, prefixes []string) (backends.Snapshot, error) {
	snap := backends.Snapshot{KVs: map[string]string{}, Revs: make(map[string]uint64, len(prefixes))}
	for _, p := range prefixes {
		src, err := sourceFor(backends.CleanKey(p))
		if err != nil {
			return backends.Snapshot{}, err
		}
		kvs, idx, err := src.fetch(ctx, c, c.read, 0, 0)
		if err != nil {
			return backends.Snapshot{}, err
		}
		for _, k := range kvs.keys {
			if backends.Under(k, src.prefix) {
				snap.KVs[k] = kvs.vals[k]
			}
		}
		snap.Revs[src.prefix] = idx
		snap.Rev = max(snap.Rev, idx)
	}
	return snap, nil
}

// Close implements backends.Backend: it stops every watch, closes their
// channels and returns when all goroutines are gone.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	c.closeIdle()
	return nil
}

// Endpoints returns the agent's address.
func (c *Client) Endpoints() []string { return []string{c.addr} }

// queryOptions returns the per-request options for one request.
func (c *Client) queryOptions(ctx context.Context, index uint64, wait time.Duration) *api.QueryOptions {
	q := c.query
	q.WaitIndex = index
	q.WaitTime = wait
	return q.WithContext(ctx)
}

// kvList is a sorted key list with values.
type kvList struct {
	keys []string // sorted
	vals map[string]string
}

func newKVList(vals map[string]string) kvList {
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return kvList{keys: keys, vals: vals}
}

// under returns the keys under prefix as a new map, by binary search.
func (l kvList) under(prefix string) map[string]string {
	out := map[string]string{}
	lo, hi := backends.PrefixRun(l.keys, prefix)
	for _, k := range l.keys[lo:hi] {
		if backends.Under(k, prefix) {
			out[k] = l.vals[k]
		}
	}
	return out
}

// source is what one prefix is read from: a KV subtree, a service's health
// or the catalog.
type source struct {
	kind   sourceKind
	prefix string // the requested clean prefix
	root   string // the virtual root ("/@service/web") or "" for KV
	name   string // service name
}

type sourceKind int

const (
	kindKV sourceKind = iota
	kindService
	kindServiceAny
	kindServices
)

// hubKey names the shared blocking query serving s.
func (s source) hubKey() string {
	switch s.kind {
	case kindKV:
		return "kv"
	default:
		return s.root
	}
}

// sourceFor classifies a clean prefix.
func sourceFor(prefix string) (source, error) {
	first, rest, _ := strings.Cut(strings.TrimPrefix(prefix, "/"), "/")
	name, _, _ := strings.Cut(rest, "/")
	switch "/" + first {
	case ServicesPrefix:
		return source{kind: kindServices, prefix: prefix, root: ServicesPrefix}, nil
	case ServicePrefix, ServiceAnyPrefix:
		if name == "" {
			return source{}, fmt.Errorf("consul: prefix %q: a service name is required (%s/<name>)", prefix, "/"+first)
		}
		k := kindService
		if "/"+first == ServiceAnyPrefix {
			k = kindServiceAny
		}
		return source{kind: k, prefix: prefix, root: "/" + first + "/" + name, name: name}, nil
	}
	return source{kind: kindKV, prefix: prefix}, nil
}

// blockingContext bounds a blocking query waiting up to wait (none for a
// plain read, wait 0): the server adds up to wait/16 itself; stay well
// above it.
func blockingContext(ctx context.Context, wait time.Duration) (context.Context, context.CancelFunc) {
	if wait <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, wait+wait/8+15*time.Second)
}

// fetch reads s (for KV: the subtree at s.prefix) through cl. index 0 is
// a plain read; otherwise a blocking query waiting up to wait.
func (s source) fetch(ctx context.Context, c *Client, cl *api.Client, index uint64, wait time.Duration) (kvList, uint64, error) {
	ctx, cancel := blockingContext(ctx, wait)
	defer cancel()
	q := c.queryOptions(ctx, index, wait)
	switch s.kind {
	case kindKV:
		root := s.prefix
		pairs, meta, err := cl.KV().List(strings.TrimPrefix(root, "/"), q)
		if err != nil {
			return kvList{}, 0, c.wrap("list", root, err)
		}
		if meta.ResultsFilteredByACLs {
			return kvList{}, 0, fmt.Errorf("consul: list %q: %w: the ACL token cannot read some keys under this prefix", root, ErrPermissionDenied)
		}
		if len(pairs) == 0 && c.anonymous && meta.DefaultACLPolicy == "deny" {
			// Consul hides filtering from anonymous requests: an empty
			// answer may only mean "not allowed".
			return kvList{}, 0, fmt.Errorf("consul: list %q: %w: no ACL token given (-auth-token or CONSUL_HTTP_TOKEN) and the agent's default ACL policy is deny", root, ErrPermissionDenied)
		}
		vals := make(map[string]string, len(pairs))
		for _, p := range pairs {
			if backends.HasDotSegment(p.Key) {
				c.dots.Skip("/"+p.Key, "")
				continue
			}
			k := backends.CleanKey(p.Key)
			if _, dup := vals[k]; dup && strings.HasSuffix(p.Key, "/") {
				continue // a folder marker never hides a real key
			}
			if backends.Under(k, root) {
				vals[k] = string(p.Value)
			}
		}
		return newKVList(vals), meta.LastIndex, nil
	case kindService, kindServiceAny:
		cachedHealth(q, index)
		entries, meta, err := cl.Health().Service(s.name, "", s.kind == kindService, q)
		if err != nil {
			return kvList{}, 0, c.wrap("health service", s.root, err)
		}
		vals, err := encodeInstances(s.root, entries)
		if err != nil {
			return kvList{}, 0, err
		}
		return newKVList(vals), meta.LastIndex, nil
	default:
		svcs, meta, err := cl.Catalog().Services(q)
		if err != nil {
			return kvList{}, 0, c.wrap("catalog services", ServicesPrefix, err)
		}
		vals, err := encodeServices(svcs)
		if err != nil {
			return kvList{}, 0, err
		}
		return newKVList(vals), meta.LastIndex, nil
	}
}

// ErrPermissionDenied is wrapped by errors caused by the ACL token: a 403
// from the agent, or a KV listing the agent filtered by ACLs.
var ErrPermissionDenied = errors.New("permission denied")

func (c *Client) wrap(op, prefix string, err error) error {
	var se api.StatusError
	if errors.As(err, &se) && se.Code == http.StatusForbidden {
		return fmt.Errorf("consul: %s %q: %w (check the ACL token): %s", op, prefix, ErrPermissionDenied, strings.TrimSpace(se.Body))
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL may carry the token in old clients; keep the cause
	}
	return fmt.Errorf("consul: %s %q: %w", op, prefix, err)
}

var _ backends.Backend = (*Client)(nil)
