// Package retry is the one jittered backoff of every layer: the store
// clients wait it between failed requests or watches, the daemon between
// failed reads, watches and commits.
//
// A delay is Exp's exponential growth, jittered in one of two ways:
// Backoff takes between half and all of it (store clients, commits the
// file system refused), Spread moves it by up to a fraction either way
// (the daemon's retries, Consul's blocking-query wait), so a fleet of
// clients does not retry in step. Jitter spreads what a whole fleet would
// otherwise do at the same moment: the re-lists after a store came back.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Exp returns the delay after n consecutive failures, before jitter:
// min(hi, lo*2^(n-1)), lo for n < 1.
func Exp(lo, hi time.Duration, n int) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}

// Backoff returns the jittered exponential delay after n consecutive
// failures: between half and all of Exp(lo, hi, n).
func Backoff(lo, hi time.Duration, n int) time.Duration {
	d := Exp(lo, hi, n)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// Spread returns d moved by a random amount of up to frac of d either way
// (frac 0.2: between 0.8 and 1.2 times d).
func Spread(d time.Duration, frac float64) time.Duration {
	j := int64(float64(d) * frac)
	if j <= 0 {
		return d
	}
	return d + time.Duration(rand.Int64N(2*j+1)-j)
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
