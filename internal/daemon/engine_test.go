package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/backends/memory"
	"github.com/confit-dev/confit/resource"
)

// harness runs the watch engine against an in-memory store inside a
// synctest bubble: time is virtual, so debounce and backoff are tested
// without sleeping.
type harness struct {
	t      *testing.T
	dir    string
	store  *memory.Store
	m      *metrics
	reload chan struct{}
	cancel context.CancelFunc
	done   chan error
	logs   *strings.Builder
}

// writeResource writes conf.d/NAME.toml (the [template] body given) and
// templates/NAME.tmpl.
func writeResource(t *testing.T, dir, name, toml, tmpl string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Join(dir, "conf.d"), 0o755))
	must(t, os.MkdirAll(filepath.Join(dir, "templates"), 0o755))
	body := fmt.Sprintf("[template]\nsrc = %q\ndest = %q\n%s\n", name+".tmpl", filepath.Join(dir, "out", name), toml)
	must(t, os.WriteFile(filepath.Join(dir, "conf.d", name+".toml"), []byte(body), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "templates", name+".tmpl"), []byte(tmpl), 0o644))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// start runs the engine on dir's conf.d. Call inside synctest.Test.
// Each of opts edits the Config first.
func start(t *testing.T, dir string, store *memory.Store, wait resource.Wait, opts ...func(*Config)) *harness {
	t.Helper()
	logs := &strings.Builder{}
	log := slog.New(slog.NewTextHandler(&syncWriter{b: logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := Config{
		Resource: resource.Options{ConfDir: dir, Logger: log},
		Backend:  backends.Spec{Backend: "memory"},
		Watch:    true,
		Wait:     wait,
		Logger:   log,
	}
	for _, o := range opts {
		o(&cfg)
	}
	h := &harness{t: t, dir: dir, store: store, m: newMetrics(), reload: make(chan struct{}, 1), done: make(chan error, 1), logs: logs}
	cfg.Reload = h.reload
	p := newPool(cfg.Backend)
	p.clients[p.key(nil)] = store
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- newEngine(cfg, p, h.m).run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-h.done
	})
	synctest.Wait()
	return h
}

type syncWriter struct {
	b *strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	logMu.Lock()
	defer logMu.Unlock()
	return w.b.Write(p)
}

func (h *harness) read(name string) string {
	h.t.Helper()
	b, err := os.ReadFile(filepath.Join(h.dir, "out", name))
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

func (h *harness) want(name, content string) {
	h.t.Helper()
	if got := h.read(name); got != content {
		h.t.Errorf("%s = %q, want %q", name, got, content)
	}
}

// settle lets the engine react: it advances virtual time a little so that
// batches finish (commands run in real processes) and waits for quiet.
func settle() {
	for range 50 {
		synctest.Wait()
		time.Sleep(time.Millisecond)
	}
	synctest.Wait()
}

func TestRenderOnlyWhatChanged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		const n = 50
		store := memory.New()
		for i := range n {
			writeResource(t, dir, fmt.Sprintf("r%02d", i), `keys = ["/k"]`, fmt.Sprintf(`v={{getv "/k/%d"}}`, i))
			store.Put(fmt.Sprintf("/k/%d", i), "a")
		}
		h := start(t, dir, store, resource.Wait{})
		settle()
		if got := h.m.renders.Load(); got != n {
			t.Fatalf("initial renders = %d, want %d", got, n)
		}
		getsBefore := store.Gets()
		store.Put("/k/7", "b")
		settle()
		if got := h.m.renders.Load(); got != n+1 {
			t.Errorf("renders after one change = %d, want %d (only the resource that read /k/7)", got, n+1)
		}
		if got := store.Gets() - getsBefore; got != 0 {
			t.Errorf("store reads after a change = %d, want 0 (the watch event carries the value)", got)
		}
		h.want("r07", "v=b")
		h.want("r08", "v=a")

		// A key no template reads renders nothing.
		store.Put("/k/unused", "x")
		settle()
		if got := h.m.renders.Load(); got != n+1 {
			t.Errorf("renders after an unread key changed = %d, want %d", got, n+1)
		}
	})
}

func TestListDependencies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		store := memory.New()
		store.Put("/svc/web/a", "1", "/svc/db/x", "2")
		writeResource(t, dir, "web", `keys = ["/svc"]`, `{{range gets "/svc/web/*"}}{{.Value}}{{end}}`)
		writeResource(t, dir, "all", `keys = ["/svc"]`, `{{range ls "/svc"}}{{.}} {{end}}`)
		h := start(t, dir, store, resource.Wait{})
		settle()
		before := h.m.renders.Load()
		store.Put("/svc/web/b", "3") // a new key under a listed subtree
		settle()
		h.want("web", "13")
		if got := h.m.renders.Load() - before; got != 2 {
			t.Errorf("renders = %d, want 2 (web lists /svc/web, all lists /svc)", got)
		}
		before = h.m.renders.Load()
		store.Put("/svc/db/y", "4")
		settle()
		if got := h.m.renders.Load() - before; got != 1 {
			t.Errorf("renders = %d, want 1 (only all lists /svc/db's parent)", got)
		}
	})
}

func TestWaitDebounce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		store := memory.New()
		store.Put("/a", "0")
		writeResource(t, dir, "a", `keys = ["/a"]
reload_cmd = "echo x >> `+dir+`/reloads"`, `a={{getv "/a"}}`)
		h := start(t, dir, store, resource.Wait{Min: time.Second, Max: 5 * time.Second})
		settle()
		before := h.m.renders.Load()

		// A burst inside the quiet period: one render with the final value.
		for i := 1; i <= 1000; i++ {
			store.Put("/a", fmt.Sprint(i))
		}
		settle()
		time.Sleep(2 * time.Second)
		settle()
		h.want("a", "a=1000")
		if got := h.m.renders.Load() - before; got != 1 {
			t.Errorf("renders after a burst = %d, want 1", got)
		}

		// Changes every 500ms never leave a second of quiet: max forces a
		// render 5s after the first change.
		before = h.m.renders.Load()
		for i := range 12 {
			store.Put("/a", fmt.Sprint("x", i))
			settle()
			time.Sleep(500 * time.Millisecond)
		}
		if got := h.m.renders.Load() - before; got != 1 {
			t.Errorf("renders during 6s of steady changes = %d, want 1 (forced by max=5s)", got)
		}
		time.Sleep(2 * time.Second)
		settle()
		h.want("a", "a=x11")
	})
}

func TestReloadCoalescing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		store := memory.New()
		reload := `reload_cmd = "echo x >> ` + dir + `/reloads"`
		for _, name := range []string{"a", "b", "c"} {
			store.Put("/"+name, "0")
			writeResource(t, dir, name, `keys = ["/`+name+`"]`+"\n"+reload, `{{getv "/`+name+`"}}`)
		}
		start(t, dir, store, resource.Wait{Min: 100 * time.Millisecond})
		settle()
		time.Sleep(time.Second)
		settle()
		must(t, os.Remove(filepath.Join(dir, "reloads")))
		store.Put("/a", "1", "/b", "1", "/c", "1")
		time.Sleep(time.Second)
		settle()
		b, err := os.ReadFile(filepath.Join(dir, "reloads"))
		must(t, err)
		if got := strings.Count(string(b), "x"); got != 1 {
			t.Errorf("reload_cmd ran %d times for three resources sharing it, want 1", got)
		}
	})
}

func TestRollbackOnFailedReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		store := memory.New()
		store.Put("/v", "good")
		// The "service" refuses to reload a config that says bad.
		writeResource(t, dir, "svc", `keys = ["/v"]
reload_cmd = "! grep -q bad {{.dest}}"`, `v={{getv "/v"}}`)
		h := start(t, dir, store, resource.Wait{})
		settle()
		h.want("svc", "v=good")
		store.Put("/v", "bad")
		settle()
		h.want("svc", "v=good")
		if got := h.m.rollbacks.Load(); got != 1 {
			t.Errorf("rollbacks = %d, want 1", got)
		}
		if !strings.Contains(h.logs.String(), "previous file restored") {
			t.Errorf("log does not say the previous file was restored:\n%s", h.logs)
		}
	})
}

func TestFailureIsolationAndRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		store := memory.New()
		store.Put("/ok", "1")
		writeResource(t, dir, "ok", `keys = ["/ok"]`, `{{getv "/ok"}}`)
		writeResource(t, dir, "missing", `keys = ["/later"]`, `{{getv "/later"}}`)
		h := start(t, dir, store, resource.Wait{})
		settle()
		h.want("ok", "1")
		if _, err := os.Stat(filepath.Join(dir, "out", "missing")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a failed render wrote its destination: %v", err)
		}
		// Retries with backoff log the failure once, not once per retry.
		time.Sleep(10 * time.Minute)
		settle()
		if got := strings.Count(h.logs.String(), "key does not exist: /later"); got != 1 {
			t.Errorf("failure logged %d times over 10 minutes of retries, want 1", got)
		}
		store.Put("/later", "2")
		settle()
		h.want("missing", "2")
		store.Put("/ok", "3")
		settle()
		h.want("ok", "3")
	})
}

func TestStoreOutageAtStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		store := memory.New()
		store.Put("/a", "1")
		store.SetFailGet(errors.New("connection refused"))
		writeResource(t, dir, "a", `keys = ["/a"]`, `{{getv "/a"}}`)
		h := start(t, dir, store, resource.Wait{})
		time.Sleep(time.Minute)
		settle()
		if _, err := os.Stat(filepath.Join(dir, "out", "a")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("rendered without data: %v", err)
		}
		if got := strings.Count(h.logs.String(), "connection refused"); got != 1 {
			t.Errorf("outage logged %d times, want 1", got)
		}
		store.SetFailGet(nil)
		time.Sleep(time.Minute)
		settle()
		h.want("a", "1")
	})
}

func TestSIGHUPReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		store := memory.New()
		store.Put("/a", "1", "/b", "2")
		writeResource(t, dir, "a", `keys = ["/a"]`, `a={{getv "/a"}}`)
		writeResource(t, dir, "c", `keys = ["/a"]`, `c={{getv "/a"}}`)
		h := start(t, dir, store, resource.Wait{})
		settle()
		// added, changed, broken
		writeResource(t, dir, "b", `keys = ["/b"]`, `b={{getv "/b"}}`)
		writeResource(t, dir, "a", `keys = ["/a"]`, `a2={{getv "/a"}}`)
		must(t, os.WriteFile(filepath.Join(dir, "conf.d", "c.toml"), []byte("[template\n"), 0o644))
		h.reload <- struct{}{}
		settle()
		h.want("a", "a2=1")
		h.want("b", "b=2")
		// b's prefix was not watched before the reload: b must wait for
		// its data instead of rendering from an incomplete view.
		if strings.Contains(h.logs.String(), "key does not exist: /b") {
			t.Errorf("a resource rendered before its new prefix was loaded:\n%s", h.logs)
		}
		// The broken file keeps its previous version running.
		store.Put("/a", "9")
		settle()
		h.want("c", "c=9")
		if !strings.Contains(h.logs.String(), "c.toml") {
			t.Errorf("broken resource not reported:\n%s", h.logs)
		}
	})
}

var logMu sync.Mutex

// TestResetAtLowerRevision: a store that restarts from a lower index sends a
// Reset at that index; it must apply (an incremental update at a lower
// revision must not).
func TestResetAtLowerRevision(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		store := memory.New()
		store.Put("/a", "1")
		writeResource(t, dir, "a", `keys = ["/a"]`, `{{getv "/a"}}`)
		logs := &strings.Builder{}
		log := slog.New(slog.NewTextHandler(&syncWriter{b: logs}, nil))
		cfg := Config{Resource: resource.Options{ConfDir: dir, Logger: log}, Backend: backends.Spec{Backend: "memory"}, Watch: true, Logger: log}
		p := newPool(cfg.Backend)
		p.clients[p.key(nil)] = store
		e := newEngine(cfg, p, newMetrics())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.run(ctx) }()
		defer func() { cancel(); <-done }()
		settle()
		key := p.key(nil)
		send := func(u backends.Update) {
			e.events <- event{store: key, update: &u}
			settle()
		}
		send(backends.Update{Prefix: "/a", Rev: 100, Changes: []backends.Change{{Key: "/a", Value: "2"}}})
		send(backends.Update{Prefix: "/a", Rev: 50, Changes: []backends.Change{{Key: "/a", Value: "stale"}}})
		if got := readOut(t, dir, "a"); got != "2" {
			t.Fatalf("after an older incremental update: %q, want 2", got)
		}
		send(backends.Update{Prefix: "/a", Rev: 3, Reset: true, KVs: map[string]string{"/a": "restarted"}})
		if got := readOut(t, dir, "a"); got != "restarted" {
			t.Errorf("after a Reset at a lower revision: %q, want restarted", got)
		}
		send(backends.Update{Prefix: "/a", Rev: 4, Changes: []backends.Change{{Key: "/a", Value: "next"}}})
		if got := readOut(t, dir, "a"); got != "next" {
			t.Errorf("after the restarted stream moved on: %q, want next", got)
		}
	})
}

func readOut(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "out", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type reportingStore struct {
	*memory.Store
}

func (reportingStore) Metrics() map[string]uint64 { return map[string]uint64{"requests_total": 7} }

func TestMetricsEndpoint(t *testing.T) {
	m := newMetrics()
	m.renders.Add(3)
	p := newPool(backends.Spec{Backend: "memory"})
	p.clients[p.key(nil)] = reportingStore{memory.New()}
	m.backends = p.named
	m.health.set(backendHealth(newStore("etcd", "etcd")), errors.New("connection refused"))
	rec := httptest.NewRecorder()
	m.serveHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{"confit_renders_total 3\n", `confit_backend_requests_total{backend="memory"} 7`, "confit_unhealthy 1\n"} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, rec.Body)
		}
	}
	rec = httptest.NewRecorder()
	m.health.ServeHTTP(rec, httptest.NewRequest("GET", "/health", nil))
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), "connection refused") {
		t.Errorf("/health = %d %q, want 503 naming the failure", rec.Code, rec.Body)
	}
}

// TestFailedReloadWithoutRollbackIsRetried: with rollback = false a failed
// reload_cmd leaves the new file in place; the reload is retried (the
// render writes nothing new) until the service takes it, and only then is
// the resource healthy again.
func TestFailedReloadWithoutRollbackIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		mark, seen := filepath.Join(dir, "reload-broken"), filepath.Join(dir, "service-has")
		store := memory.New()
		store.Put("/v", "1")
		writeResource(t, dir, "svc", `keys = ["/v"]
rollback = false
reload_cmd = "! test -e `+mark+` && cp {{.dest}} `+seen+`"`, `v={{getv "/v"}}`)
		h := start(t, dir, store, resource.Wait{})
		settle()
		must(t, os.WriteFile(mark, nil, 0o644))
		store.Put("/v", "2")
		settle()
		h.want("svc", "v=2")
		if b, _ := os.ReadFile(seen); string(b) != "v=1" {
			t.Fatalf("service has %q, want v=1 while reloads fail", b)
		}
		if n := h.m.health.count(); n != 1 {
			t.Errorf("%d things failing, want the resource", n)
		}
		must(t, os.Remove(mark))
		time.Sleep(5 * time.Minute) // retries with backoff
		settle()
		if b, _ := os.ReadFile(seen); string(b) != "v=2" {
			t.Errorf("service has %q after the reload works again, want v=2", b)
		}
		if n := h.m.health.count(); n != 0 {
			t.Errorf("%d things failing after recovery, want none", n)
		}
	})
}

// TestHealthForgetsRemovedResource: a failing resource whose file is
// deleted stops counting against /health after SIGHUP.
func TestHealthForgetsRemovedResource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		store := memory.New()
		store.Put("/a", "1")
		writeResource(t, dir, "ok", `keys = ["/a"]`, `{{getv "/a"}}`)
		writeResource(t, dir, "bad", `keys = ["/a"]`, `{{getv "/a/missing"}}`)
		h := start(t, dir, store, resource.Wait{})
		settle()
		if n := h.m.health.count(); n != 1 {
			t.Fatalf("%d things failing, want the failing resource", n)
		}
		must(t, os.Remove(filepath.Join(dir, "conf.d", "bad.toml")))
		h.reload <- struct{}{}
		settle()
		time.Sleep(5 * time.Minute)
		settle()
		if n := h.m.health.count(); n != 0 {
			t.Errorf("%d things failing after the failing resource was removed", n)
		}
	})
}

// TestResourceWithoutKeysRenders: a template that reads no keys (getenv,
// static text) renders in watch mode too.
func TestResourceWithoutKeysRenders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		writeResource(t, dir, "static", ``, `static {{add 1 2}}`)
		h := start(t, dir, memory.New(), resource.Wait{})
		settle()
		h.want("static", "static 3")
	})
}

// TestBrokenOnReloadWithRelativeConfdir: with a relative -confdir, a
// resource broken by an edit keeps its previous version after SIGHUP.
func TestBrokenOnReloadWithRelativeConfdir(t *testing.T) {
	parent := t.TempDir()
	t.Chdir(parent)
	synctest.Test(t, func(t *testing.T) {
		must(t, os.MkdirAll("cfg", 0o755))
		dir := "cfg"
		store := memory.New()
		store.Put("/a", "1")
		writeResource(t, dir, "a", `keys = ["/a"]`, `a={{getv "/a"}}`)
		h := start(t, dir, store, resource.Wait{})
		settle()
		h.want("a", "a=1")
		must(t, os.WriteFile(filepath.Join(dir, "conf.d", "a.toml"), []byte("[template\n"), 0o644))
		h.reload <- struct{}{}
		settle()
		store.Put("/a", "2")
		settle()
		h.want("a", "a=2")
	})
}

// TestTrimAfterFirstRenders: the memory of loading conf.d is handed back
// once every resource has rendered, again after a reload, and not on
// every change.
func TestTrimAfterFirstRenders(t *testing.T) {
	var count atomic.Int32
	old := trim
	trim = func() { count.Add(1) }
	defer func() { trim = old }()
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		store := memory.New()
		store.Put("/a", "1")
		writeResource(t, dir, "a", `keys = ["/a"]`, `a={{getv "/a"}}`)
		writeResource(t, dir, "b", `keys = ["/a"]`, `b={{getv "/a"}}`)
		h := start(t, dir, store, resource.Wait{})
		settle()
		if got := count.Load(); got != 1 {
			t.Fatalf("trims after the first renders = %d, want 1", got)
		}
		store.Put("/a", "2")
		settle()
		h.want("a", "a=2")
		if got := count.Load(); got != 1 {
			t.Errorf("trims after a change = %d, want still 1", got)
		}
		h.reload <- struct{}{}
		settle()
		if got := count.Load(); got != 2 {
			t.Errorf("trims after a reload = %d, want 2", got)
		}
	})
}

// TestSteadyState: Config.Steady is told true once every resource has
// rendered, false while a batch of several resources commits and during a
// reload of conf.d, and true again after each; a change of one resource
// leaves it alone.
func TestSteadyState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		store := memory.New()
		store.Put("/a", "1", "/b", "1")
		writeResource(t, dir, "a", `keys = ["/a"]`, `a={{getv "/a"}}`)
		writeResource(t, dir, "b", `keys = ["/a"]`, `b={{getv "/a"}}`)
		writeResource(t, dir, "c", `keys = ["/b"]`, `c={{getv "/b"}}`)
		var mu sync.Mutex
		var calls []bool
		h := start(t, dir, store, resource.Wait{}, func(c *Config) {
			c.Steady = func(steady bool) {
				mu.Lock()
				defer mu.Unlock()
				calls = append(calls, steady)
			}
		})
		settle()
		got := func() string {
			mu.Lock()
			defer mu.Unlock()
			return fmt.Sprint(calls)
		}
		if g := got(); g != "[true]" {
			t.Fatalf("after the first renders: Steady calls %s, want [true]", g)
		}
		store.Put("/b", "2") // one resource
		settle()
		h.want("c", "c=2")
		if g := got(); g != "[true]" {
			t.Errorf("after a change of one resource: Steady calls %s, want [true]", g)
		}
		store.Put("/a", "2") // two resources: a batch of two
		settle()
		h.want("a", "a=2")
		h.want("b", "b=2")
		if g := got(); g != "[true false true]" {
			t.Errorf("after a change of two resources: Steady calls %s, want [true false true]", g)
		}
		h.reload <- struct{}{}
		settle()
		if g := got(); !strings.HasPrefix(g, "[true false true false") || !strings.HasSuffix(g, "true]") {
			t.Errorf("after a reload: Steady calls %s, want false then true again", g)
		}
	})
}
