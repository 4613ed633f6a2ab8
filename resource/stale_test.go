package resource

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRemoveStaleStages: stage files as a kill -9 leaves them are removed;
// every other file, including look-alikes and another destination's, stays.
func TestRemoveStaleStages(t *testing.T) {
	tests := []struct {
		name   string
		file   string
		remove bool
	}{
		{name: "stage file", file: ".app.conf123456", remove: true},
		{name: "short random", file: ".app.conf7", remove: true},
		{name: "max uint32", file: ".app.conf4294967295", remove: true},
		{name: "other managed destination's stage file", file: ".app.conf1987654321", remove: true},
		{name: "sanitized stage of a hostile name", file: ".a_b.conf42", remove: true},
		{name: "destination itself", file: "app.conf"},
		{name: "other destination", file: "app.conf1"},
		{name: "no random part", file: ".app.conf"},
		{name: "not digits", file: ".app.conf.bak"},
		{name: "digits then more", file: ".app.conf123.swp"},
		{name: "more than a uint32", file: ".app.conf4294967296"},
		{name: "eleven digits", file: ".app.conf92345678901"},
		{name: "unmanaged name", file: ".other.conf123"},
		{name: "user file", file: "notes123"},
	}
	dir := t.TempDir()
	for _, tc := range tests {
		must(t, os.WriteFile(filepath.Join(dir, tc.file), []byte("s3cret\n"), 0o600))
	}
	must(t, os.Symlink("app.conf", filepath.Join(dir, ".app.conf555")))
	must(t, os.Mkdir(filepath.Join(dir, ".app.conf666"), 0o755))

	var all []*Resource
	for _, dest := range []string{"app.conf", "app.conf1", "a b.conf"} {
		f := newFixture(t, "", Options{})
		f.r.Dest = filepath.Join(dir, dest)
		all = append(all, f.r)
	}
	logger, logs := logBuffer()
	for _, r := range all {
		r.log = logger
	}
	got := RemoveStaleStages(all[:1], all)
	removed := 0
	for _, tc := range tests {
		_, err := os.Lstat(filepath.Join(dir, tc.file))
		if gone := err != nil; gone != tc.remove {
			t.Errorf("%s (%s): removed = %v, want %v", tc.name, tc.file, gone, tc.remove)
		}
		if tc.remove {
			removed++
		}
	}
	if got != removed {
		t.Errorf("returned %d, want %d", got, removed)
	}
	for _, kept := range []string{".app.conf555", ".app.conf666"} {
		if _, err := os.Lstat(filepath.Join(dir, kept)); err != nil {
			t.Errorf("%s (symlink or directory) removed", kept)
		}
	}
	if got := fileText(t, filepath.Join(dir, "app.conf")); got != "s3cret\n" {
		t.Errorf("destination changed: %q", got)
	}
	if !strings.Contains(logs.String(), filepath.Join(dir, ".app.conf123456")) {
		t.Errorf("removal not logged with its path:\n%s", logs)
	}
}

// TestRemoveStaleStagesKeepStageFile: with -keep-stage-file nothing is
// removed: stage files are kept on purpose.
func TestRemoveStaleStagesKeepStageFile(t *testing.T) {
	f := newFixture(t, "", Options{KeepStageFile: true})
	stale := filepath.Join(f.destDir, ".app.conf123")
	must(t, os.WriteFile(stale, nil, 0o600))
	if n := RemoveStaleStages([]*Resource{f.r}, []*Resource{f.r}); n != 0 {
		t.Errorf("removed %d", n)
	}
	if _, err := os.Stat(stale); err != nil {
		t.Error(err)
	}
}
