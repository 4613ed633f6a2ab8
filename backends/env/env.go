// Package env is the "env" backend: it serves the process environment as
// keys, with confd's mapping.
//
// A requested key "/myapp/database" becomes the environment-name prefix
// MYAPP_DATABASE (leading "/" stripped, "/" replaced by "_", upper-cased).
// Every variable whose name starts with that prefix is returned, its name
// lower-cased with "_" turned into "/": MYAPP_DATABASE_URL=x is the key
// "/myapp/database/url" with value "x". Keys are then cleaned with
// backends.CleanKey, so MYAPP__URL and MYAPP_URL_ both give "/myapp/url"
// (when two names give one key, the lexically greater name wins).
//
// Confd matches with a plain string prefix on the variable name, so
// "/myapp/foo" would also return MYAPP_FOOBAR as "/myapp/foobar". confit
// keeps the name matching but applies its key-boundary rule to the result:
// a returned key is always backends.Under the requested prefix, so
// "/myapp/foo" returns "/myapp/foo" and "/myapp/foo/..." only, and
// "/myapp/foobar" needs to be asked for.
//
// As in confd, keys cannot contain "_" or upper-case letters (confd issue
// #531): a requested "/my_app" maps to MY_APP, whose variables come back as
// "/my/app/...", which is not under "/my_app", so nothing is returned; a
// requested "/MyApp" likewise returns nothing, since keys are lower-case.
// Variable names containing lower-case letters never match a prefix with
// letters in it, since the prefix is upper-case.
//
// The environment is read with os.Environ on every Get. The backend has no
// revisions (Snapshot.Rev is 0) and cannot watch: Watch returns
// backends.ErrWatchUnsupported, and callers poll with Get.
package env

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/confit-dev/confit/backends"
)

func init() {
	// No settings.
	backends.Register("env", func(context.Context, *struct{}, *slog.Logger) (backends.Backend, error) {
		return New(), nil
	})
}

// Backend reads keys from the process environment. It holds no state and is
// safe for concurrent use.
type Backend struct{}

// New returns an environment backend.
func New() *Backend { return &Backend{} }

// NamePrefix returns the environment-name prefix confd derives from key:
// "/myapp/database" gives "MYAPP_DATABASE", "/" gives "" (every variable).
func NamePrefix(key string) string {
	k := strings.TrimPrefix(backends.CleanKey(key), "/")
	return strings.ToUpper(strings.ReplaceAll(k, "/", "_"))
}

// KeyOf returns the key confd derives from an environment variable name:
// "MYAPP_DATABASE_URL" gives "/myapp/database/url". The result is clean.
func KeyOf(name string) string {
	return backends.CleanKey(strings.ReplaceAll(strings.ToLower(name), "_", "/"))
}

// Get implements backends.Backend. It returns, for each prefix, every
// variable whose name starts with NamePrefix(prefix) and whose key (KeyOf)
// is under the prefix. Rev is always 0.
func (b *Backend) Get(ctx context.Context, prefixes []string) (backends.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return backends.Snapshot{}, fmt.Errorf("env: get: %w", err)
	}
	environ := os.Environ()
	sort.Strings(environ) // deterministic winner when two names give one key
	snap := backends.Snapshot{KVs: map[string]string{}}
	for _, p := range prefixes {
		p = backends.CleanKey(p)
		namePrefix := NamePrefix(p)
		for _, kv := range environ {
			name, value, ok := strings.Cut(kv, "=")
			if !ok || name == "" || !strings.HasPrefix(name, namePrefix) {
				continue
			}
			if key := KeyOf(name); backends.Under(key, p) {
				snap.KVs[key] = value
			}
		}
	}
	return snap, nil
}

// Watch implements backends.Backend: the environment cannot be watched, so
// it returns a nil channel and backends.ErrWatchUnsupported.
func (b *Backend) Watch(ctx context.Context, prefix string, rev uint64) (<-chan backends.Update, error) {
	return nil, backends.ErrWatchUnsupported
}

// Close implements backends.Backend. There is nothing to release.
func (b *Backend) Close() error { return nil }

var _ backends.Backend = (*Backend)(nil)
