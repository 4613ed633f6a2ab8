package file

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/confit-dev/confit/backends/backendtest"
)

// TestConformance runs the shared backend suite against one JSON file whose
// top-level keys are the absolute keys themselves ({"/ns/a/b": "v"}), which
// flattens to exactly those keys and lets a key be both a value and a
// directory, as the suite needs.
//
// Put and Delete rewrite the file atomically (write a temporary file, then
// rename) and then call Get. A file store only knows states, not writes:
// two writes made faster than it re-reads are seen as one change. The Get
// makes every write a state of its own, as the suite's exact change
// sequences require; the watch tests in watch_test.go exercise delivery
// through fsnotify alone.
func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backendtest.Harness {
		dir := t.TempDir()
		p := filepath.Join(dir, "store.json")
		store := map[string]string{}
		write := func(t *testing.T) {
			t.Helper()
			data, err := json.Marshal(store)
			if err != nil {
				t.Fatal(err)
			}
			tmp := filepath.Join(dir, ".store.json.tmp")
			if err := os.WriteFile(tmp, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, p); err != nil {
				t.Fatal(err)
			}
		}
		write(t)
		b, err := New([]string{p}, "")
		if err != nil {
			t.Fatal(err)
		}
		observe := func(t *testing.T) {
			t.Helper()
			if _, err := b.Get(t.Context(), []string{"/"}); err != nil {
				t.Fatalf("Get after write: %v", err)
			}
		}
		return backendtest.Harness{
			Backend: b,
			Put: func(t *testing.T, key, value string) {
				store[key] = value
				write(t)
				observe(t)
			},
			Delete: func(t *testing.T, key string) {
				delete(store, key)
				write(t)
				observe(t)
			},
			Caps: backendtest.Caps{
				Watch:     true,
				Delete:    true,
				Revisions: true,
				Snapshot:  true, // one file replaced by rename is read whole
			},
		}
	})
}
