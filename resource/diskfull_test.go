package resource

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
)

// fullDir mounts a 64 KiB tmpfs on a new directory and returns it with the
// path of a file filling it, which the test removes to give the space back.
// A real full file system, not a fake: it needs root (mount); other users
// skip.
func fullDir(t *testing.T) (dir, filler string) {
	t.Helper()
	dir = t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("a full file system needs a tmpfs mount: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	filler = filepath.Join(dir, "filler")
	// dd stops at ENOSPC, having filled the file system.
	exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=4k").Run()
	return dir, filler
}

// TestCommitDiskFullSameError: every failed commit on a full file system
// fails with the same message (not naming its random stage file, so the
// daemon logs it once), marked ErrWrite; the destination stays and no stage
// file is left; once space returns the commit succeeds.
func TestCommitDiskFullSameError(t *testing.T) {
	dir, filler := fullDir(t)
	os.Remove(filler)
	dest := filepath.Join(dir, "app.conf")
	must(t, os.WriteFile(dest, []byte("old\n"), 0o644))
	exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=4k").Run()

	f := newFixture(t, "", Options{})
	f.r.Dest = dest
	var msgs []string
	for range 3 {
		_, err := f.r.Sync(t.Context(), kvs("pg://a-long-value-to-overflow-the-last-block"))
		if !errors.Is(err, ErrWrite) || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("got %v, want ErrWrite and ENOSPC", err)
		}
		msgs = append(msgs, err.Error())
	}
	if msgs[0] != msgs[1] || msgs[1] != msgs[2] {
		t.Errorf("messages differ between attempts:\n%s\n%s", msgs[0], msgs[1])
	}
	if regexp.MustCompile(`\.app\.conf[0-9]`).MatchString(msgs[0]) {
		t.Errorf("message names a random stage file: %s", msgs[0])
	}
	t.Logf("error: %s", msgs[0])
	if got := fileText(t, dest); got != "old\n" {
		t.Errorf("destination: got %q", got)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".app.conf*")); len(m) > 0 {
		t.Errorf("stage files left: %v", m)
	}
	os.Remove(filler)
	if _, err := f.r.Sync(t.Context(), kvs("pg://x")); err != nil {
		t.Fatal(err)
	}
	if got := fileText(t, dest); got != "db=pg://x\n" {
		t.Errorf("destination: got %q", got)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
