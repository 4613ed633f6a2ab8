package daemon

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/confit-dev/confit/resource"
)

// schedule moves a resource between phases as the engine's diagram says;
// a change while it is in a batch is kept for when the batch is done.
func TestSchedulePhases(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	wait := resource.Wait{Min: time.Second, Max: 3 * time.Second}
	tests := []struct {
		name      string
		from      phase
		first     time.Time // of a pending resource
		immediate bool
		want      phase
		wantDue   time.Time // when want is pending
	}{
		{name: "idle: after min of quiet", from: idle, want: pending, wantDue: t0.Add(time.Second)},
		{name: "idle, immediate", from: idle, immediate: true, want: pending, wantDue: t0},
		{name: "pending: quiet again", from: pending, first: t0.Add(-time.Second), want: pending, wantDue: t0.Add(time.Second)},
		{name: "pending: at most max after the first change", from: pending, first: t0.Add(-2500 * time.Millisecond), want: pending, wantDue: t0.Add(500 * time.Millisecond)},
		{name: "running", from: running, want: runningAgain},
		{name: "running again", from: runningAgain, want: runningAgain},
		{name: "running, immediate", from: running, immediate: true, want: runningAgain},
		{name: "gone", from: gone, want: gone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := &engine{cfg: Config{Wait: wait}}
			rs := &resState{r: &resource.Resource{}, phase: tc.from, first: tc.first}
			e.schedule(rs, t0, tc.immediate)
			if rs.phase != tc.want {
				t.Fatalf("phase %d, want %d", rs.phase, tc.want)
			}
			if tc.want == pending && !rs.due.Equal(tc.wantDue) {
				t.Errorf("due %v, want %v", rs.due.Sub(t0), tc.wantDue.Sub(t0))
			}
		})
	}
}

// The retry delays keep their values: a failed render, check or reload
// waits from 1 s, doubling, up to a minute, ±20 %; a commit the file system
// refused from 125-250 ms up to 1-2 s; a failed read or watch start from
// 100 ms, doubling, up to 30 s, ±20 %.
func TestRetryDelays(t *testing.T) {
	other := errors.New("check_cmd: exit status 1")
	full := fmt.Errorf("resource a: %w", resource.ErrWrite)
	tests := []struct {
		name   string
		delay  func() time.Duration
		lo, hi time.Duration
	}{
		{"failure 1", func() time.Duration { return retryDelay(other, 1) }, 800 * time.Millisecond, 1200 * time.Millisecond},
		{"failure 3", func() time.Duration { return retryDelay(other, 3) }, 3200 * time.Millisecond, 4800 * time.Millisecond},
		{"failure 7", func() time.Duration { return retryDelay(other, 7) }, 48 * time.Second, 72 * time.Second},
		{"failure 1000", func() time.Duration { return retryDelay(other, 1000) }, 48 * time.Second, 72 * time.Second},
		{"write failure 1", func() time.Duration { return retryDelay(full, 1) }, 125 * time.Millisecond, 250 * time.Millisecond},
		{"write failure 100", func() time.Duration { return retryDelay(full, 100) }, time.Second, 2 * time.Second},
		{"read failure 1", func() time.Duration { return feedRetryDelay(1) }, 80 * time.Millisecond, 120 * time.Millisecond},
		{"read failure 9", func() time.Duration { return feedRetryDelay(9) }, 20480 * time.Millisecond, 30720 * time.Millisecond},
		{"read failure 100", func() time.Duration { return feedRetryDelay(100) }, 24 * time.Second, 36 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range 200 {
				if d := tc.delay(); d < tc.lo || d > tc.hi {
					t.Fatalf("delay %v, want in [%v, %v]", d, tc.lo, tc.hi)
				}
			}
		})
	}
}
