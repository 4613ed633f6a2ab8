package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/backends/memory"
	"github.com/confit-dev/confit/resource"
)

// A one-shot batch larger than the commit pool, with resources that fail
// to render, fail their check and succeed, side by side: every good file
// is written and reloaded, every failed destination is left as it was,
// and no stage file is left behind (stage files are written for the whole
// batch before any is fsynced and committed).
func TestOneshotBatchFailuresLeaveNoStageFiles(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	must(t, os.MkdirAll(out, 0o755))
	reloads := filepath.Join(dir, "reloads")
	store := memory.New()
	const n = 70
	wantFailed := 0
	for i := range n {
		name := fmt.Sprintf("r%02d", i)
		toml := fmt.Sprintf("keys = [\"/k\"]\nreload_cmd = \"echo %s >> %s\"\n", name, reloads)
		tmpl := fmt.Sprintf("%s={{getv \"/k/%d\"}}\n", name, i)
		switch i % 5 {
		case 1: // missing key: render fails
			tmpl = fmt.Sprintf("{{getv \"/k/missing%d\"}}\n", i)
			wantFailed++
		case 2: // check_cmd rejects it
			toml += "check_cmd = \"false {{.src}}\"\n"
			wantFailed++
		}
		writeResource(t, dir, name, toml, tmpl)
		must(t, os.WriteFile(filepath.Join(out, name), []byte("old\n"), 0o644))
		store.Put(fmt.Sprintf("/k/%d", i), fmt.Sprint("v", i))
	}
	cfg := Config{Resource: resource.Options{ConfDir: dir}, Backend: backends.Spec{Backend: "memory"}, Onetime: true}
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.Resource.Logger = cfg.Logger
	p := newPool(cfg.Backend)
	p.clients[p.key(nil)] = store
	err := runOnce(context.Background(), cfg, p, newMetrics())
	if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), fmt.Sprintf("%d of %d", wantFailed, n)) {
		t.Fatalf("runOnce: %v, want %d of %d failed", err, wantFailed, n)
	}
	ran, _ := os.ReadFile(reloads)
	for i := range n {
		name := fmt.Sprintf("r%02d", i)
		got, want := readString(t, filepath.Join(out, name)), fmt.Sprintf("%s=v%d\n", name, i)
		if i%5 == 1 || i%5 == 2 {
			want = "old\n"
		}
		if got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
		if reloaded := strings.Contains(string(ran), name+"\n"); reloaded != (want != "old\n") {
			t.Errorf("%s: reloaded %v", name, reloaded)
		}
	}
	entries, err := os.ReadDir(out)
	must(t, err)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("stage file left: %s", e.Name())
		}
	}
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	return string(b)
}
