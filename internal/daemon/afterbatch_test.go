package daemon

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/backends/memory"
	"github.com/confit-dev/confit/resource"
)

// TestAfterBatch checks the hook exec mode uses: one call per batch with
// every resource whose new file is in place, none for a resource whose
// check_cmd failed, none when nothing was written.
func TestAfterBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		store := memory.New()
		store.Put("/k/a", "1", "/k/b", "1", "/k/c", "1")
		writeResource(t, dir, "a", `keys = ["/k"]`, `{{getv "/k/a"}}`)
		writeResource(t, dir, "b", `keys = ["/k"]`, `{{getv "/k/b"}}`)
		writeResource(t, dir, "c", "keys = [\"/k\"]\ncheck_cmd = \"false\"", `{{getv "/k/c"}}`)
		var mu sync.Mutex
		var calls [][]string
		h := start(t, dir, store, resource.Wait{}, func(c *Config) {
			c.AfterBatch = func(changed []*resource.Resource) {
				var names []string
				for _, r := range changed {
					names = append(names, r.Name)
				}
				slices.Sort(names)
				mu.Lock()
				calls = append(calls, names)
				mu.Unlock()
			}
		})
		settle()
		got := func() [][]string {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(calls)
		}
		if c := got(); len(c) != 1 || !slices.Equal(c[0], []string{"a.toml", "b.toml"}) {
			t.Fatalf("after the first render: calls %q, want one with a.toml and b.toml (c.toml's check fails)", c)
		}
		store.Put("/k/a", "2", "/k/b", "2", "/k/c", "2")
		settle()
		if c := got(); len(c) != 2 || !slices.Equal(c[1], []string{"a.toml", "b.toml"}) {
			t.Errorf("after a change of all three: calls %q, want a second one with a.toml and b.toml", c)
		}
		store.Put("/k/other", "x") // read by no template
		settle()
		if c := got(); len(c) != 2 {
			t.Errorf("after a change that writes nothing: calls %q, want still 2", c)
		}
		h.want("a", "2")
	})
}

// execReporter stands for exec mode's supervisor.
type execReporter struct {
	line string
	ok   bool
}

func (f execReporter) WriteMetrics(w io.Writer) { io.WriteString(w, "confit_exec_up 1\n") }
func (f execReporter) Health() (lines []string, failing int) {
	if !f.ok {
		failing = 1
	}
	return []string{f.line}, failing
}

func TestExtraReporter(t *testing.T) {
	for _, tc := range []struct {
		name       string
		rep        execReporter
		wantStatus int
	}{
		{name: "running", rep: execReporter{"exec: running pid 7, restarts 0, last exit none", true}, wantStatus: 200},
		{name: "restarting", rep: execReporter{"exec: restarting, restarts 2, last exit 1", false}, wantStatus: 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMetrics()
			m.reporters = []Reporter{tc.rep}
			rec := httptest.NewRecorder()
			m.serveHealth(rec, httptest.NewRequest("GET", "/health", nil))
			if rec.Code != tc.wantStatus || !strings.Contains(rec.Body.String(), tc.rep.line) {
				t.Errorf("/health = %d %q, want %d with %q", rec.Code, rec.Body.String(), tc.wantStatus, tc.rep.line)
			}
			rec = httptest.NewRecorder()
			m.serveHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			if !strings.Contains(rec.Body.String(), "confit_exec_up 1\n") {
				t.Errorf("/metrics lacks the reporter's metrics:\n%s", rec.Body.String())
			}
		})
	}
}

// TestAfterBatchOneshotInterval: the one-shot and interval path
// (syncGroup) calls the hook once, with the written resources only.
func TestAfterBatchOneshotInterval(t *testing.T) {
	dir := t.TempDir()
	store := memory.New()
	store.Put("/k/a", "1", "/k/b", "1")
	writeResource(t, dir, "a", `keys = ["/k"]`, `{{getv "/k/a"}}`)
	writeResource(t, dir, "b", "keys = [\"/k\"]\ncheck_cmd = \"false\"", `{{getv "/k/b"}}`)
	writeResource(t, dir, "c", "keys = [\"/k\"]\nreload_cmd = \"false\"", `{{getv "/k/a"}}`)
	writeResource(t, dir, "d", `keys = ["/k"]`, `{{getv "/k/missing"}}`)
	var calls [][]string
	cfg := Config{Resource: resource.Options{ConfDir: dir}, Backend: backends.Spec{Backend: "memory"}, Onetime: true,
		AfterBatch: func(changed []*resource.Resource) {
			var names []string
			for _, r := range changed {
				names = append(names, r.Name)
			}
			calls = append(calls, names)
		}}
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.Resource.Logger = cfg.Logger
	p := newPool(cfg.Backend)
	p.clients[p.key(nil)] = store
	_ = runOnce(context.Background(), cfg, p, newMetrics())
	if len(calls) != 1 || !slices.Equal(calls[0], []string{"a.toml"}) {
		t.Errorf("calls %q, want one with a.toml (b's check, c's reload and d's render fail)", calls)
	}
}
