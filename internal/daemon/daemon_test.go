package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
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

// The mirror's index, rebuilt lazily after resets and large updates and
// kept up to date by small ones, always lists exactly the mirror's keys.
func TestStoreIndexFollowsMirror(t *testing.T) {
	s := &store{kvs: map[string]string{}, idx: &keyIndex{}}
	check := func(step string) {
		t.Helper()
		want := newKeyIndex(s.kvs).keys
		if got := s.index().keys; !slices.Equal(got, want) {
			t.Fatalf("%s: index %q, want %q", step, got, want)
		}
	}
	snap := map[string]string{}
	for i := range 200 {
		for j := range 3 {
			snap[fmt.Sprintf("/apps/app%03d/k%d", i, j)] = "v"
		}
	}
	for i := range 200 {
		s.reset(fmt.Sprintf("/apps/app%03d", i), snap)
	}
	check("200 resets")
	s.apply([]backends.Change{{Key: "/apps/app007/k1", Deleted: true}, {Key: "/apps/app007/new", Value: "x"}})
	check("small update")
	var big []backends.Change
	for i := range 100 {
		big = append(big, backends.Change{Key: fmt.Sprintf("/apps/app010/n%03d", i), Value: "y"})
	}
	s.apply(big)
	s.apply([]backends.Change{{Key: "/apps/app010/n005", Deleted: true}}) // while stale
	check("large update, then a delete")
	s.reset("/apps/app011", map[string]string{"/apps/app011/k0": "changed"})
	check("reset dropping keys")
	check("rebuilt") // the index is kept from here
	var dels []backends.Change
	for i := range 100 {
		dels = append(dels, backends.Change{Key: fmt.Sprintf("/apps/app%03d/k0", 100+i), Deleted: true})
	}
	s.apply(dels)
	check("many deletes")
	s.reset("/apps/app012", map[string]string{"/apps/app012/k0": "v", "/apps/app012/k9": "added"})
	check("reset adding a key")
}

// resetAll over several prefixes does what reset does for each of them.
func TestStoreResetAll(t *testing.T) {
	mirror := func() *store {
		s := &store{kvs: map[string]string{}, idx: &keyIndex{}}
		for _, k := range []string{"/", "/a/x", "/a/y", "/ab/x", "/b/c/d", "/b/cd", "/c"} {
			s.kvs[k] = "old"
		}
		return s
	}
	snap := map[string]string{"/a/x": "new", "/a/z": "new", "/ab/x": "new", "/b/c/d": "old", "/b/c/e": "new", "/c": "new", "/": "new"}
	prefixes := []string{"/a", "/b/c"}
	one, all := mirror(), mirror()
	var want []string
	for _, p := range prefixes {
		want = append(want, one.reset(p, snap)...)
	}
	got := all.resetAll(prefixes, snap)
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) || !maps.Equal(one.kvs, all.kvs) {
		t.Errorf("resetAll changed %q, mirror %v; reset per prefix changed %q, mirror %v", got, all.kvs, want, one.kvs)
	}
	if all := mirror(); all.resetAll([]string{"/"}, snap) == nil || !maps.Equal(all.kvs, snap) {
		t.Errorf("resetAll(/) left %v, want %v", all.kvs, snap)
	}
}
