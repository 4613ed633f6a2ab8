package retry

import (
	"context"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	for range 1000 {
		if d := Backoff(100*time.Millisecond, time.Second, 10); d < 500*time.Millisecond || d > time.Second {
			t.Fatalf("backoff after 10 failures = %v, want in [0.5s, 1s]", d)
		}
		if d := Backoff(100*time.Millisecond, time.Second, 1); d < 50*time.Millisecond || d > 100*time.Millisecond {
			t.Fatalf("backoff after 1 failure = %v, want in [50ms, 100ms]", d)
		}
		if d := Backoff(100*time.Millisecond, time.Second, 0); d < 50*time.Millisecond || d > 100*time.Millisecond {
			t.Fatalf("backoff before any failure = %v, want in [50ms, 100ms]", d)
		}
	}
}

func TestExp(t *testing.T) {
	tests := []struct {
		name   string
		lo, hi time.Duration
		n      int
		want   time.Duration
	}{
		{"no failure yet", time.Second, time.Minute, 0, time.Second},
		{"first failure", time.Second, time.Minute, 1, time.Second},
		{"doubles", time.Second, time.Minute, 3, 4 * time.Second},
		{"last below the cap", time.Second, time.Minute, 6, 32 * time.Second},
		{"capped", time.Second, time.Minute, 7, time.Minute},
		{"far past the cap", time.Second, time.Minute, 1000, time.Minute},
		{"100ms to 30s", 100 * time.Millisecond, 30 * time.Second, 9, 25600 * time.Millisecond},
		{"100ms to 30s capped", 100 * time.Millisecond, 30 * time.Second, 10, 30 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Exp(tc.lo, tc.hi, tc.n); got != tc.want {
				t.Errorf("Exp(%v, %v, %d) = %v, want %v", tc.lo, tc.hi, tc.n, got, tc.want)
			}
		})
	}
}

func TestSpread(t *testing.T) {
	for range 1000 {
		// Consul's blocking-query wait: ±1/16.
		if d := Spread(16*time.Minute, 1.0/16); d < 15*time.Minute || d > 17*time.Minute {
			t.Fatalf("Spread(16m, 1/16) = %v, want within ±1m", d)
		}
		// The daemon's retries: ±20 %.
		if d := Spread(10*time.Second, 0.2); d < 8*time.Second || d > 12*time.Second {
			t.Fatalf("Spread(10s, 0.2) = %v, want in [8s, 12s]", d)
		}
	}
	if d := Spread(10, 0.01); d != 10 {
		t.Errorf("Spread(10ns, 0.01) = %v, want 10ns (nothing to spread)", d)
	}
}

func TestSleep(t *testing.T) {
	if !Sleep(context.Background(), time.Millisecond) {
		t.Error("Sleep(1ms) = false")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Error("Sleep with a done context = true")
	}
}

func TestJitter(t *testing.T) {
	tests := []struct {
		name   string
		window time.Duration
	}{
		{"zero", 0},
		{"negative", -time.Second},
		{"one nanosecond", 1},
		{"ten seconds", 10 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range 1000 {
				if d := Jitter(tc.window); d < 0 || d > max(tc.window, 0) {
					t.Fatalf("Jitter(%v) = %v, want in [0, %v]", tc.window, d, max(tc.window, 0))
				}
			}
		})
	}
	// Full jitter: the draws cover the whole window, not a band near its
	// end (a fleet of N spreads over all of it). Each tenth of the window
	// gets about 1,000 of 10,000 draws; fewer than 700 means a band.
	const window, draws = 10 * time.Second, 10000
	var tenths [10]int
	for range draws {
		tenths[min(int(Jitter(window)*10/window), 9)]++
	}
	for i, got := range tenths {
		if got < 700 {
			t.Errorf("tenth %d of the window got %d of %d draws, want about %d", i, got, draws, draws/10)
		}
	}
}
