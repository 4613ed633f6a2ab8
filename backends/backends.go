// Package backends defines the contract between confit and the key-value
// stores it reads: the Backend interface, the value types that cross it, and
// a registry where each store's package registers a constructor by name.
//
// A backend knows nothing of templates or resources. It reads consistent
// snapshots of key prefixes and, when the store supports it, pushes what
// changed under a prefix after a given revision.
//
// Keys are absolute, slash-separated paths ("/app/db/url"). A requested
// prefix P matches the key P itself and every key below P + "/"; it never
// matches a sibling that merely shares the string prefix ("/app/foobar" is
// not under "/app/foo"). Use Under to apply that rule.
package backends

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// ErrWatchUnsupported is returned by Watch on stores that cannot push
// changes (env, for example). Callers fall back to polling with Get.
var ErrWatchUnsupported = errors.New("watch not supported by this backend")

// ErrUnknownBackend is returned by New for a name no package registered.
var ErrUnknownBackend = errors.New("unknown backend")

// KV is one key and its value.
type KV struct {
	Key   string
	Value string
}

// Snapshot is a consistent read of one or more prefixes: every key in KVs
// was read at the same store revision Rev. Stores without revisions use 0.
type Snapshot struct {
	// Rev is the store's revision (etcd) or index (Consul) of the read.
	Rev uint64
	// KVs maps absolute keys to values. It is read-only: a backend may
	// hand the same map to several readers.
	KVs map[string]string
	// Keys, when not nil, are the keys of KVs in sorted order, from a
	// backend that has them in order anyway (a values file written
	// sorted): a consumer needing them sorted is spared a sort. Read-only.
	Keys []string
	// Revs, when set, gives the revision each requested prefix was read
	// at, for stores without one revision across prefixes (Consul's
	// per-query index). Watch each prefix from its own entry; Rev is then
	// the highest of them.
	Revs map[string]uint64
}

// RevOf returns the revision prefix was read at: Revs[prefix] when the
// store reports per-prefix revisions, else Rev.
func (s Snapshot) RevOf(prefix string) uint64 {
	if r, ok := s.Revs[prefix]; ok {
		return r
	}
	return s.Rev
}

// Change is one key that was put or deleted.
type Change struct {
	Key     string
	Value   string
	Deleted bool
}

// Update is what a watch delivers for one prefix.
//
// Exactly one of the following holds:
//   - Err != nil: the watch is degraded (store unreachable, stream lost).
//     The backend keeps retrying by itself; the receiver keeps its last good
//     view. A later Update with Err == nil means the watch is healthy again.
//   - Reset: the backend could not tell what changed (compaction, an index
//     that went backwards, a file rewritten). KVs holds the complete current
//     contents of the prefix at Rev and replaces what the receiver had.
//   - otherwise: Changes lists what changed after the previous Update, in
//     store order, all at revision Rev.
type Update struct {
	Prefix  string
	Rev     uint64
	Changes []Change
	Reset   bool
	KVs     map[string]string
	Err     error
}

// Backend is one connection to one store. Implementations are safe for
// concurrent use.
type Backend interface {
	// Get reads every key under each of prefixes in one consistent snapshot.
	// A prefix with no keys is not an error: it just adds nothing.
	// Errors name the backend and the prefix that failed.
	Get(ctx context.Context, prefixes []string) (Snapshot, error)

	// Watch delivers changes under prefix made after revision rev (0 means
	// "from now"). The returned channel is closed by the backend when ctx is
	// done or Close is called, and only then. A backend that cannot watch
	// returns ErrWatchUnsupported and a nil channel.
	//
	// The receiver must keep reading the channel until it is closed;
	// a backend may coalesce Updates when the receiver is slow, but never
	// drops a change without sending a Reset.
	Watch(ctx context.Context, prefix string, rev uint64) (<-chan Update, error)

	// Close releases connections and goroutines. Watch channels are closed
	// before Close returns.
	Close() error
}

// Config holds the settings that network backends share (etcd, Consul,
// ZooKeeper, Redis):
// nodes, TLS and authentication. A backend's options struct embeds it, so
// each setting is declared once, here (see Register for the tags).
type Config struct {
	// Backend is the name the backend was asked for by ("etcd", "etcdv3"):
	// SRV discovery builds the record name from it. Not a setting.
	Backend string

	Nodes  []string `setting:"node" alias:"nodes" usage:"backend address (repeatable)"`
	Scheme string   `setting:"scheme" default:"http" usage:"URL scheme for nodes given without one (http or https)"`

	ClientCert     string `setting:"client-cert" env:"CONFD_CLIENT_CERT" usage:"client certificate file (also $CONFD_CLIENT_CERT)"`
	ClientKey      string `setting:"client-key" env:"CONFD_CLIENT_KEY" usage:"client key file (also $CONFD_CLIENT_KEY)"`
	ClientCAKeys   string `setting:"client-ca-keys" alias:"client_cakeys" env:"CONFD_CLIENT_CAKEYS" usage:"client CA key file (also $CONFD_CLIENT_CAKEYS)"`
	ClientInsecure bool   `setting:"client-insecure" usage:"skip TLS certificate verification (etcd, consul, zookeeper, redis)"`

	BasicAuth bool   `setting:"basic-auth" usage:"consul: send -username and -password as HTTP basic auth (etcd, zookeeper and redis use them without it)"`
	Username  string `setting:"username" usage:"user name: etcd auth, consul HTTP basic auth (with -basic-auth), zookeeper digest auth, redis ACL user"`
	Password  string `setting:"password" secret:"true" usage:"password: etcd auth, consul HTTP basic auth (with -basic-auth), zookeeper digest auth (with -username), redis AUTH"`
	AuthToken string `setting:"auth-token" secret:"true" usage:"Consul ACL token (default $CONSUL_HTTP_TOKEN); etcd auth token"`

	SRVDomain string `setting:"srv-domain" usage:"domain to discover backend nodes by SRV records"`
	SRVRecord string `setting:"srv-record" usage:"SRV record to discover backend nodes"`

	// ReconnectJitter spreads a fleet's re-lists after an outage: a watch
	// that lost its store (or, on etcd, its revision to a compaction) waits
	// a random 0..ReconnectJitter before it reads its prefix again
	// (retry.Jitter), so N sidecars re-list at about N/ReconnectJitter per
	// second instead of at once. 0 re-lists at once.
	ReconnectJitter time.Duration `setting:"reconnect-jitter" usage:"etcd, consul: after an outage wait a random 0..DURATION before re-reading (spreads a fleet's re-lists; docs/SCALE.md)"`

	// Logger receives the backend's logs; nil discards them. Not a setting.
	Logger *slog.Logger
}

var (
	registryMu sync.RWMutex
	registry   = map[string]*registration{}
	omitted    = map[string]string{} // backends left out of this build: why
)

// RegisterOmitted records that the backend name exists but was left out of
// this build, and why (e.g. "built with -tags confit_no_etcd"), so that
// asking for it says so instead of "unknown backend".
func RegisterOmitted(name, why string) {
	registryMu.Lock()
	defer registryMu.Unlock()
	omitted[name] = why
}

// Check returns nil when name is registered, else an error wrapping
// ErrUnknownBackend that says whether the backend was left out of this
// build or lists the known ones.
func Check(name string) error {
	registryMu.RLock()
	_, ok := registry[name]
	why, out := omitted[name]
	registryMu.RUnlock()
	switch {
	case ok:
		return nil
	case out:
		return fmt.Errorf("%w %q: not in this build of confit (%s)", ErrUnknownBackend, name, why)
	}
	return fmt.Errorf("%w %q (known: %s)", ErrUnknownBackend, name, strings.Join(Names(), ", "))
}

// Names lists the registered backends, sorted.
func Names() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// CleanKey returns key as an absolute, cleaned slash path: "app//db/" becomes
// "/app/db", "" becomes "/".
func CleanKey(key string) string {
	if IsClean(key) {
		return key // the common case, without building a copy
	}
	return path.Join("/", key)
}

// IsClean reports whether key is absolute and clean, that is
// CleanKey(key) == key, without building the cleaned key: a key with no
// empty, "." or ".." element and no trailing slash (other than "/" itself).
func IsClean(key string) bool {
	if key == "/" {
		return true
	}
	if len(key) < 2 || key[0] != '/' || key[len(key)-1] == '/' {
		return false
	}
	// Each element starts after a '/': reject "//", "/./", "/../" and a
	// final "/." or "/..".
	for i := 0; i < len(key); i++ {
		if key[i] != '/' {
			continue
		}
		rest := key[i+1:]
		if rest == "" || rest[0] == '/' {
			return false
		}
		if rest[0] == '.' && (len(rest) == 1 || rest[1] == '/' || rest[1] == '.' && (len(rest) == 2 || rest[2] == '/')) {
			return false
		}
	}
	return true
}

// HasDotSegment reports whether key, a slash-separated path (absolute or
// not), has an element "." or "..". Cleaned, such a key names another
// path: "/a/../b/secret", listed under "/a", would become "/b/secret", and
// a YAML key "../../etc/passwd" "/etc/passwd". Backends skip keys from the
// store that have one (see DotKeys); empty elements ("a//b", a Consul
// folder marker "app/") only collapse, staying under their parent.
func HasDotSegment(key string) bool {
	for len(key) > 0 {
		i := strings.IndexByte(key, '/')
		elem := key
		if i >= 0 {
			elem, key = key[:i], key[i+1:]
		} else {
			key = ""
		}
		if elem == "." || elem == ".." {
			return true
		}
	}
	return false
}

// DotKeys logs the keys a backend skipped for a "." or ".." element
// (HasDotSegment), once per key and source: a store read every interval
// does not repeat the warning. The zero value logs nothing until Log is
// set; it is safe for concurrent use.
type DotKeys struct {
	Log  *slog.Logger
	seen sync.Map // source + "\x00" + key → struct{}
}

// Skip records that key, from source (a file name, or "" for the store),
// was skipped, and warns the first time.
func (d *DotKeys) Skip(key, source string) {
	if d == nil || d.Log == nil {
		return
	}
	if _, dup := d.seen.LoadOrStore(source+"\x00"+key, struct{}{}); dup {
		return
	}
	attrs := []any{"key", key}
	if source != "" {
		attrs = append(attrs, "file", source)
	}
	d.Log.Warn("skipping a key with a \".\" or \"..\" element: it would name a path outside its prefix", attrs...)
}

// Under reports whether key is prefix itself or lies below prefix + "/".
// Both must be clean (see CleanKey). Every key is under "/".
func Under(key, prefix string) bool {
	if prefix == "/" {
		return true
	}
	if !strings.HasPrefix(key, prefix) {
		return false
	}
	return len(key) == len(prefix) || key[len(prefix)] == '/'
}

// PrefixRun returns the run sorted[lo:hi] of a sorted key list that holds
// every key starting with the string p ("/": every key). The keys Under p
// are all in that run, but not every key in it is: "/app/foo-bar" sorts
// between "/app/foo" and "/app/foo/x"; callers filter with Under.
func PrefixRun(sorted []string, p string) (lo, hi int) {
	if p == "/" {
		return 0, len(sorted)
	}
	lo, _ = slices.BinarySearch(sorted, p)
	hi = lo + sort.Search(len(sorted)-lo, func(i int) bool { return !strings.HasPrefix(sorted[lo+i], p) })
	return lo, hi
}

// UnderSet reports whether the clean key is under a prefix in set: it
// looks up key and each of its parents, not every prefix of the set.
func UnderSet(key string, set map[string]bool) bool {
	for {
		if set[key] {
			return true
		}
		i := strings.LastIndexByte(key, '/')
		if i < 0 || key == "/" {
			return false
		}
		if key = key[:i]; key == "" {
			key = "/"
		}
	}
}

// CoverPrefixes returns the smallest set of prefixes covering ps, sorted:
// each cleaned (CleanKey), a prefix under another one dropped.
func CoverPrefixes(ps []string) []string {
	clean := make([]string, len(ps))
	for i, p := range ps {
		clean[i] = CleanKey(p)
	}
	// A prefix sorts before every key under it.
	slices.Sort(clean)
	kept := make(map[string]bool, len(clean))
	var out []string
	for _, p := range clean {
		if !UnderSet(p, kept) {
			kept[p] = true
			out = append(out, p)
		}
	}
	return out
}

// UnderAny reports whether key is under any of prefixes.
func UnderAny(key string, prefixes []string) bool {
	for _, p := range prefixes {
		if Under(key, p) {
			return true
		}
	}
	return false
}

// Diff lists the changes that turn old into cur (puts with their values,
// deletes), sorted by key. Backends that see whole states rather than
// events (a re-read file, a Consul blocking-query answer) use it to build
// an Update.
func Diff(old, cur map[string]string) []Change {
	var out []Change
	for k, v := range cur {
		if ov, ok := old[k]; !ok || ov != v {
			out = append(out, Change{Key: k, Value: v})
		}
	}
	for k := range old {
		if _, ok := cur[k]; !ok {
			out = append(out, Change{Key: k, Deleted: true})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}
