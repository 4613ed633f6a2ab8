package consul

import (
	"time"

	"github.com/confit-dev/confit/internal/retry"
	"github.com/hashicorp/consul/api"
)

// retryWait is how long a blocking query waits after failures consecutive
// failed attempts: the jittered exponential backoff, plus a random part of
// the reconnect-jitter window (backends.Config.ReconnectJitter). Every
// retry after a failure is a full list of the query's prefix or service,
// so when an agent comes back the fleet's re-lists arrive spread over the
// window instead of within one backoff step of each other.
func (c *Client) retryWait(failures int) time.Duration {
	return retry.Backoff(c.opts.BackoffMin, c.opts.BackoffMax, failures) + c.jitter(c.reconnectJitter)
}

// cachedHealth makes a plain read (index 0: a Get, the first read of a
// watch, the re-list after a failure) of service health a ?cached one
// when the user allows stale reads (-consul-stale): the agent answers from
// its streaming view of the service instead of asking the servers, so a
// fleet's re-lists after an outage cost the servers one subscription per
// agent. Blocking reads (index > 0) are served by streaming anyway. The
// cached answer can be stale while the agent is cut off from the servers,
// which is what -consul-stale accepts.
func cachedHealth(q *api.QueryOptions, index uint64) {
	if index == 0 && q.AllowStale {
		q.UseCache = true
	}
}
