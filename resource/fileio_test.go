package resource

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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
