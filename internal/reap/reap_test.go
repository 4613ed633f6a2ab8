package reap

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// zombies lists this process's children that are zombies, from /proc.
func zombies(t *testing.T) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	me := os.Getpid()
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
		f := strings.Fields(rest)
		if len(f) > 1 && f[0] == "Z" && f[1] == strconv.Itoa(me) {
			out = append(out, pid)
		}
	}
	return out
}

// TestOwnedStatusesKept runs many commands at once, each leaving an orphan
// that exits soon after it, with the reaper running as child subreaper
// (the test process is not PID 1): every command's own exit status
// arrives (a reaper that took any zombie makes Wait fail with ECHILD),
// and no orphan is left a zombie.
func TestOwnedStatusesKept(t *testing.T) {
	if err := SetSubreaper(); err != nil {
		t.Skipf("prctl(PR_SET_CHILD_SUBREAPER): %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { Reap(ctx, nil); close(done) }()
	defer func() { cancel(); <-done }()

	before := Reaped()
	const n = 60
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			code := i % 7
			// The shell exits at once with code; its background child is
			// orphaned and exits a moment later.
			cmd := exec.Command("/bin/sh", "-c", fmt.Sprintf("(sleep 0.0%d; exit 3) & exit %d", i%5, code))
			err := Run(cmd)
			var ee *exec.ExitError
			switch {
			case code == 0 && err != nil:
				errs <- fmt.Errorf("command %d: %v, want success", i, err)
			case code != 0 && (!errors.As(err, &ee) || ee.ExitCode() != code):
				errs <- fmt.Errorf("command %d: %v, want exit status %d", i, err, code)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for Reaped()-before < n || len(zombies(t)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %d orphans reaped of %d, zombies left: %v", Reaped()-before, n, zombies(t))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
