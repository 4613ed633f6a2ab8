package resource

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int{0, 1, 4095, 4096, 100_000} {
		p := filepath.Join(dir, "f")
		want := bytes.Repeat([]byte("x"), size)
		if err := os.WriteFile(p, want, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := readFile(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("size %d: got %d bytes, %v", size, len(got), err)
		}
		// A size hint that is out of date (the file changed since the
		// stat) still reads the whole file.
		for _, hint := range []int64{0, int64(size / 2), int64(size) * 2} {
			if got, err := readFileSize(p, hint); err != nil || !bytes.Equal(got, want) {
				t.Errorf("size %d, hint %d: got %d bytes, %v", size, hint, len(got), err)
			}
		}
	}
	// /proc files report size 0 but have content.
	if got, err := readFile("/proc/self/status"); err != nil || !bytes.Contains(got, []byte("Name:")) {
		t.Errorf("/proc/self/status: %q, %v", got, err)
	}
	if _, err := readFile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
}

// TestCommitCreatesDestDir checks that a destination directory that does
// not exist yet is created (as consul-template does).
func TestCommitCreatesDestDir(t *testing.T) {
	f := newFixture(t, "", Options{})
	f.r.Dest = filepath.Join(f.destDir, "a", "b", "app.conf")
	res, err := f.r.Sync(context.Background(), kvs("pg://x"))
	if err != nil || !res.Written {
		t.Fatalf("Sync = %+v, %v", res, err)
	}
	if got := fileText(t, f.r.Dest); got != "db=pg://x\n" {
		t.Errorf("dest = %q", got)
	}
}

// TestDeferDirSync checks that SyncDirs reports a directory it cannot
// fsync for each resource in it, and nothing for one it can.
func TestDeferDirSync(t *testing.T) {
	f := newFixture(t, "", Options{})
	res, err := f.r.Apply(context.Background(), kvs("pg://x"), InstallOptions{DeferDirSync: true})
	if err != nil || !res.Written {
		t.Fatalf("Apply = %+v, %v", res, err)
	}
	SyncDirs([]*Resource{f.r, f.r})
	if strings.Contains(f.logs.String(), "fsync directory failed") {
		t.Errorf("SyncDirs logged a failure: %s", f.logs)
	}
	if err := os.RemoveAll(f.destDir); err != nil {
		t.Fatal(err)
	}
	SyncDirs([]*Resource{f.r})
	if !strings.Contains(f.logs.String(), "fsync directory failed") {
		t.Errorf("SyncDirs did not log the missing directory: %s", f.logs)
	}
}

// TestRawFileModes: a mode set through rawFile.chmod reads back through
// fileMode as the same modeBits, setuid, setgid and sticky included, and
// setOwnerMode leaves a file that has its mode already alone.
func TestRawFileModes(t *testing.T) {
	dir := t.TempDir()
	for _, m := range []os.FileMode{0o644, 0o600, 0o750 | os.ModeSetuid, 0o755 | os.ModeSetgid, 0o777 | os.ModeSticky} {
		p := filepath.Join(dir, "f")
		os.Remove(p)
		f, err := openRaw(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if err := setOwnerMode(f, target{mode: m, uid: -1, gid: -1}); err != nil {
			t.Fatal(err)
		}
		st, err := f.stat()
		if err != nil {
			t.Fatal(err)
		}
		if got := fileMode(st.Mode); got != m {
			t.Errorf("mode %v: fileMode reads %v", m, got)
		}
		if err := f.close(); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(p); err != nil || fi.Mode()&modeBits != m {
			t.Errorf("mode %v: os.Stat reads %v, %v", m, fi.Mode(), err)
		}
	}
}

// TestRawFileErrors: rawFile's and renameFile's errors are os.File's and
// os.Rename's: an *fs.PathError naming the operation and the file, an
// *os.LinkError, both wrapping the errno.
func TestRawFileErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := openRaw(p, os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	var pe *fs.PathError
	if err := f.write([]byte("y")); !errors.As(err, &pe) || pe.Op != "write" || pe.Path != p || !errors.Is(err, syscall.EBADF) {
		t.Errorf("write to a read-only file: %v", err)
	}
	if _, err := openRaw(filepath.Join(dir, "missing"), os.O_RDONLY, 0); !errors.As(err, &pe) || pe.Op != "open" || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("open of a missing file: %v", err)
	}
	var le *os.LinkError
	if err := renameFile(filepath.Join(dir, "missing"), p); !errors.As(err, &le) || le.Op != "rename" || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("rename of a missing file: %v", err)
	}
}

// TestRawFileCloseOnce: a second close of a rawFile does not close the
// descriptor again (by then its number may be another file's).
func TestRawFileCloseOnce(t *testing.T) {
	dir := t.TempDir()
	f, err := openRaw(filepath.Join(dir, "a"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.close(); err != nil {
		t.Fatal(err)
	}
	g, err := openRaw(filepath.Join(dir, "b"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	if err := f.close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if err := g.write([]byte("x")); err != nil {
		t.Errorf("the file opened after the first close: %v", err)
	}
}
