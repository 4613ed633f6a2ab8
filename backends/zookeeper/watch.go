package zookeeper

import (
	"context"

	"github.com/confit-dev/confit/backends"
)

// Watch is not implemented yet: it returns backends.ErrWatchUnsupported,
// and the daemon polls with Get (-interval). The planned tree cache (one
// data and one child watch per znode, shared by every prefix, re-list and
// diff on session expiry) is described in docs/ARCHITECTURE.md.
func (c *Client) Watch(ctx context.Context, prefix string, rev uint64) (<-chan backends.Update, error) {
	return nil, backends.ErrWatchUnsupported
}

// closeWatches ends every watch; none exist yet.
func (c *Client) closeWatches() {}
