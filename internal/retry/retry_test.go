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
