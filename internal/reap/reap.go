// Package reap lets confit be PID 1 of a container (or a child subreaper)
// without stealing the exit status of its own children.
//
// Orphaned processes (a reload_cmd's daemon, the exec child's workers)
// are re-parented to PID 1, which must wait for them or they stay zombies.
// A reaper that calls wait4(-1) takes whichever child exits first, also
// one os/exec is about to Wait for, which then fails with ECHILD (remco's
// race). Here, every child confit starts goes through Start, which records
// its pid as owned while holding (shared) the lock the reaper holds
// (exclusively) for each pass;
// a pass peeks at the next zombie with waitid(P_ALL, WNOWAIT) and reaps it
// only when it is not owned, stopping at the first owned one (its own Wait
// reaps it, and Wait's return starts another pass).
package reap

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var (
	// mu is held shared by each Start, from before the fork until the pid
	// is in owned, and exclusively by a reaper pass: a pass never sees a
	// child of Start that is not in owned yet, and Starts run in parallel.
	mu    sync.RWMutex
	omu   sync.Mutex
	owned = map[int]bool{} // pids of the children confit waits for itself
	kick  = make(chan struct{}, 1)
	// reaped counts the orphans reaped, for tests and logs.
	reaped atomic.Uint64
)

// Start starts cmd and records its process as one of confit's own, which
// the reaper leaves to Wait. Every process confit starts and waits for
// must be started by Start (or StartProcess) and waited for by Wait.
func Start(cmd *exec.Cmd) error {
	mu.RLock()
	defer mu.RUnlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	omu.Lock()
	owned[cmd.Process.Pid] = true
	omu.Unlock()
	return nil
}

// Wait waits for cmd, started by Start, then forgets its pid and asks the
// reaper for another pass (SIGCHLDs coalesce: an orphan that exited while
// cmd was the first zombie is reaped now).
func Wait(cmd *exec.Cmd) error {
	err := cmd.Wait()
	release(cmd.Process.Pid)
	return err
}

// Run is Start then Wait.
func Run(cmd *exec.Cmd) error {
	if err := Start(cmd); err != nil {
		return err
	}
	return Wait(cmd)
}

func release(pid int) {
	omu.Lock()
	delete(owned, pid)
	omu.Unlock()
	select {
	case kick <- struct{}{}:
	default:
	}
}

// Reaped returns how many orphans the reaper reaped.
func Reaped() uint64 { return reaped.Load() }

// Needed reports whether this process must reap orphans: it is PID 1.
func Needed() bool { return os.Getpid() == 1 }

// Reap reaps orphans until ctx is done: on each SIGCHLD, after each Wait of
// an owned child, and every second (a SIGCHLD that came while an owned
// zombie blocked a pass is not lost). Call it only as PID 1 or after
// SetSubreaper: otherwise orphans are not re-parented to confit and there
// is nothing to reap.
func Reap(ctx context.Context, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGCHLD)
	defer signal.Stop(ch)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if n := pass(); n > 0 {
			log.Debug("reaped orphaned processes", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-kick:
		case <-t.C:
		}
	}
}

func isOwned(pid int) bool {
	omu.Lock()
	defer omu.Unlock()
	return owned[pid]
}

// pass reaps every zombie that is not confit's own, up to the first one
// that is, and returns how many it reaped.
func pass() int {
	mu.Lock()
	defer mu.Unlock()
	n := 0
	for {
		pid, err := peek()
		if err != nil || pid <= 0 || isOwned(pid) {
			return n
		}
		var ws syscall.WaitStatus
		if got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); err != nil || got != pid {
			return n
		}
		reaped.Add(1)
		n++
	}
}
