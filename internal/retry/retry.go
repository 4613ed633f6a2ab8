// Package retry is the one jittered backoff of every layer: the store
// clients wait it between failed requests or watches, the daemon between
// failed commits. Jitter spreads what a whole fleet would otherwise do at
// the same moment: the re-lists after a store came back.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff returns the jittered exponential delay after n consecutive
// failures: between half and all of min(hi, lo*2^(n-1)).
func Backoff(lo, hi time.Duration, n int) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// Sleep waits d; it reports false when ctx ended first.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Jitter returns a delay drawn uniformly from [0, window] ("full jitter"):
// N processes that each wait Jitter(window) before the same request, after
// the same event, send about N/window of them per second instead of N at
// once. A window of zero or less returns 0.
func Jitter(window time.Duration) time.Duration {
	if window <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(window) + 1))
}
