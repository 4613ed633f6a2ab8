package consul

import (
	"time"

	"github.com/confit-dev/confit/internal/retry"
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
