package daemon

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/confit-dev/confit/backends/memory"
	"github.com/confit-dev/confit/resource"
)

// mountFull mounts a 64 KiB tmpfs on dir and fills it; it returns the
// filler's path, which the test removes to give the space back. A real
// full file system, not a fake: it needs root (mount); other users skip.
func mountFull(t *testing.T, dir string) string {
	t.Helper()
	must(t, os.MkdirAll(dir, 0o755))
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("a full file system needs a tmpfs mount: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	filler := filepath.Join(dir, "filler")
	exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=4k").Run() // stops at ENOSPC
	return filler
}

// TestWatchDiskFull: while the destination's file system is full, every
// commit fails but the failure is logged once (not once per attempt, each
// of which names a new stage file), and once space returns the file follows
// within the write backoff's bound (2 s), not the minute of other failures.
func TestWatchDiskFull(t *testing.T) {
	dir := t.TempDir()
	filler := mountFull(t, filepath.Join(dir, "out"))
	synctest.Test(t, func(t *testing.T) {
		store := memory.New()
		store.Put("/v", strings.Repeat("x", 8<<10))
		writeResource(t, dir, "a", `keys = ["/v"]`, `v={{getv "/v"}}`)
		h := start(t, dir, store, resource.Wait{})
		for range 60 { // a minute of virtual time, full all along
			time.Sleep(time.Second)
			settle()
		}
		fails := h.m.failures.Load()
		logs := h.logText()
		logged := strings.Count(logs, "sync failed")
		if fails < 30 {
			t.Errorf("%d attempts in a minute, want one at least every 2 s", fails)
		}
		if logged != 1 {
			t.Errorf("failure logged %d times over %d attempts, want once:\n%s", logged, fails, logs)
		}
		if !strings.Contains(logs, "no space left on device") {
			t.Errorf("the error does not say what failed:\n%s", logs)
		}
		must(t, os.Remove(filler))
		start := time.Now()
		for h.read("a") != "v="+strings.Repeat("x", 8<<10) {
			if time.Since(start) > 3*time.Second {
				t.Fatalf("file not written %v after space returned: %s", time.Since(start), h.read("a"))
			}
			time.Sleep(50 * time.Millisecond)
			settle()
		}
		t.Logf("converged %v (virtual) after space returned; %d failed attempts, logged %d", time.Since(start), fails, logged)
	})
}

// logText returns the logs so far.
func (h *harness) logText() string {
	logMu.Lock()
	defer logMu.Unlock()
	return h.logs.String()
}
