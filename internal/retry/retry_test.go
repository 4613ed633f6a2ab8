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
