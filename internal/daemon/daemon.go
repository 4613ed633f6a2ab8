// Package daemon wires resources to backends and runs confit's three modes:
// one-shot, interval polling and watch.
//
// Backends are shared: resources whose backend settings are identical use one
// client, and in watch mode one watch per distinct prefix serves every
// resource that reads it (see engine.go).
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/resource"
)

// ErrConfig marks errors in confit's own configuration (unknown backend,
// missing conf.d): the command exits 2 for them.
var ErrConfig = errors.New("configuration error")

// ErrFailed is returned by a one-shot run in which at least one resource
// failed; every failure was logged with its resource name.
var ErrFailed = errors.New("resources failed")

// Config is everything a run needs.
type Config struct {
	Resource resource.Options
	// Backend is the process-wide backend; a resource's own [backend]
	// table replaces it for that resource.
	Backend backends.Spec
	// Onetime renders once and returns; Watch follows changes; neither
	// polls every Interval.
	Onetime, Watch bool
	// Interval is the polling period, or with Watch the period of a full
	// resync (0 disables it).
	Interval time.Duration
	// Wait is the default quiet period of a resource in watch mode.
	Wait resource.Wait
	// Reload receives a value for each request to reload conf.d (SIGHUP).
	Reload <-chan struct{}
	// ReadTimeout, when positive, bounds each read of a store in one-shot
	// and interval mode, connecting included (see readStore).
	ReadTimeout time.Duration
	// MetricsAddr, if set, serves /metrics and /health.
	MetricsAddr string
	// AfterBatch, when set, is called with the resources of a batch (watch
	// mode) or an interval run whose new file is in place: written,
	// checked and, with a reload_cmd, reloaded without a rollback. Never
	// with an empty list; on the goroutine that runs the batches, so it
	// must not block (exec mode hands it to its supervisor).
	AfterBatch func(changed []*resource.Resource)
	// Reporters add their metrics and health to /metrics and /health
	// (register mode running beside the daemon).
	Reporters []Reporter
	// Steady, when set, is called in watch mode with true once every
	// resource has rendered after a (re)load of conf.d, the steady state in
	// which changes come one at a time, and with false when that ends: a
	// reload of conf.d, or a batch of several resources to commit (until
	// it is done). cmd/confit sets it to OneProcWhenSteady.
	Steady func(steady bool)
	Logger *slog.Logger
}

// Run runs the mode cfg selects until it completes (one-shot) or ctx is
// done (interval, watch). Interval and watch return nil on cancellation.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Resource.Logger == nil {
		cfg.Resource.Logger = cfg.Logger
	}
	if err := backends.Check(cfg.Backend.Backend); err != nil {
		return fmt.Errorf("%w: -backend: %w", ErrConfig, err)
	}
	pool := newPool(cfg.Backend)
	pool.log = cfg.Logger
	defer pool.closeAll()
	m := newMetrics()
	m.backends = pool.named
	m.reporters = cfg.Reporters
	if cfg.MetricsAddr != "" {
		stop, err := m.serve(cfg.MetricsAddr, cfg.Logger)
		if err != nil {
			return fmt.Errorf("%w: -metrics-addr: %v", ErrConfig, err)
		}
		defer stop()
	}
	switch {
	case cfg.Onetime:
		return runOnce(ctx, cfg, pool, m)
	case cfg.Watch:
		return newEngine(cfg, pool, m).run(ctx)
	default:
		return runInterval(ctx, cfg, pool, m)
	}
}

// loadResources reads conf.d and logs each broken file. It returns
// ErrConfig when conf.d itself cannot be read.
func loadResources(cfg Config) ([]*resource.Resource, int, error) {
	res, errs := resource.LoadDir(cfg.Resource)
	if len(res) == 0 && len(errs) > 0 && isDirError(errs) {
		return nil, 0, fmt.Errorf("%w: %v", ErrConfig, errors.Join(errs...))
	}
	for _, err := range errs {
		cfg.Logger.Error("load resource", "err", err)
	}
	if len(res) == 0 && len(errs) == 0 {
		warnNoResources(cfg)
	}
	return res, len(errs), nil
}

// isDirError reports whether loading failed for the directory as a whole
// rather than for single files.
func isDirError(errs []error) bool {
	return len(errs) == 1 && errors.Is(errs[0], resource.ErrNoConfDir)
}

// runOnce renders every resource once. Each backend is read once, in one
// snapshot of all the prefixes its resources need.
func runOnce(ctx context.Context, cfg Config, pool *pool, m *metrics) error {
	// Each resource renders once: parse its template then, so that only
	// the templates being rendered are held at a time.
	cfg.Resource.DeferParse = true
	res, loadErrs, err := loadResources(cfg)
	if err != nil {
		return err
	}
	logStart(cfg, "onetime", res, loadErrs)
	resource.RemoveStaleStages(res, res)
	failed := loadErrs + syncAll(ctx, cfg, pool, m, res, owedReloads(cfg, res, nil))
	resource.RemoveStaleStages(res, res)
	if failed > 0 {
		return fmt.Errorf("%w: %d of %d", ErrFailed, failed, len(res)+loadErrs)
	}
	return nil
}

// owedReloads adds to pending (nil: a new map) the resources of res whose
// reload is owed from an interrupted run (resource.ReloadOwed).
func owedReloads(cfg Config, res []*resource.Resource, pending map[string]bool) map[string]bool {
	if pending == nil {
		pending = map[string]bool{}
	}
	for _, r := range res {
		if !pending[r.File] && owedReload(cfg.Logger, r) {
			pending[r.File] = true
		}
	}
	return pending
}

// syncAll fetches and syncs every resource; it returns how many failed.
// Cancelling ctx (SIGTERM) stops the store reads, not the work after them:
// the resources of a snapshot read render, check, commit and reload to the
// end (each command within its timeout), as in watch mode.
//
// pending carries, from one interval run to the next, the files whose
// reload_cmd failed without a rollback, and the reloads owed since an
// interrupted run: they are reloaded even if nothing changed since.
func syncAll(ctx context.Context, cfg Config, pool *pool, m *metrics, res []*resource.Resource, pending map[string]bool) int {
	groups := map[string][]*resource.Resource{}
	var order []string
	for _, r := range res {
		key := pool.key(r.Backend)
		if _, ok := groups[key]; !ok {
			order = append(order, key)
		}
		groups[key] = append(groups[key], r)
	}
	failed := 0
	for _, key := range order {
		rs := groups[key]
		if err := ctx.Err(); err != nil {
			// Stopping (SIGTERM): the groups not read yet are not started.
			for _, r := range rs {
				cfg.Logger.Warn("not synced: stopping", "resource", r.Name)
			}
			failed += len(rs)
			continue
		}
		snap, err := readStore(ctx, cfg, pool, m, key, unionKeys(rs))
		if err != nil {
			for _, r := range rs {
				cfg.Logger.Error("sync failed", "resource", r.Name, "err", err)
			}
			failed += len(rs)
			m.failures.Add(uint64(len(rs)))
			continue
		}
		failed += syncGroup(context.WithoutCancel(ctx), cfg, m, rs, snap, pending)
	}
	return failed
}

// syncGroup syncs resources that share one snapshot: renders and commits
// run in parallel, then each distinct reload_cmd runs once, with rollback on
// failure as in watch mode. It returns how many failed.
//
// Renders are CPU work: at most GOMAXPROCS run at once, which also bounds
// the memory of templates parsed for them (resource.Options.DeferParse).
// Commits wait on the disk: every changed resource writes its stage file
// first (resource.Stage), then up to commitWorkers at once fsync theirs,
// check and move them into place, so the file system commits the new files
// together; each destination directory is fsynced once for all, before any
// reload.
func syncGroup(ctx context.Context, cfg Config, m *metrics, rs []*resource.Resource, snap backends.Snapshot, pending map[string]bool) int {
	var (
		mu      sync.Mutex
		failed  = map[*resource.Resource]error{}
		written []*resource.Resource // to reload
		commits []*resource.Resource // whose directory to fsync
		staged  = make([]*resource.Staged, len(rs))
		cpu     = make(chan struct{}, runtime.GOMAXPROCS(0))
	)
	// done records the outcome of rs[i].
	done := func(i int, res resource.Result, err error) {
		r := rs[i]
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failed[r] = err
			return
		}
		if res.Written {
			m.writes.Add(1)
			commits = append(commits, r)
		}
		if res.Written || pending[r.File] {
			written = append(written, r)
		}
	}
	// Render and stage.
	kvs := snap.KVs
	idx := newSortedKeyIndex(kvs, snap.Keys)
	parallel(len(rs), func(i int) {
		r := rs[i]
		m.renders.Add(1)
		cpu <- struct{}{}
		out, _, err := r.RenderSorted(idx.subset(kvs, r.Keys))
		<-cpu
		var res resource.Result
		if err == nil {
			staged[i], res, err = r.Stage(ctx, out)
		}
		if staged[i] == nil {
			done(i, res, err)
		}
	})
	// Fsync the stage files, check and commit.
	parallel(len(rs), func(i int) {
		if staged[i] != nil {
			res, err := staged[i].Install(ctx, resource.InstallOptions{SkipReload: true, DeferDirSync: true})
			done(i, res, err)
		}
	})
	resource.SyncDirs(commits)
	// Reload in conf.d order, not in the order the commits finished.
	slices.SortFunc(written, func(a, b *resource.Resource) int { return strings.Compare(a.Name, b.Name) })
	for r, o := range reloadAll(ctx, m, written) {
		if o.err != nil {
			failed[r] = o.err
		}
		if pending != nil {
			if o.pending {
				pending[r.File] = true
			} else {
				delete(pending, r.File)
			}
		}
	}
	var changed []*resource.Resource
	for _, r := range rs {
		if err, ok := failed[r]; ok {
			m.failures.Add(1)
			cfg.Logger.Error("sync failed", "resource", r.Name, "err", err)
		} else if slices.Contains(commits, r) {
			changed = append(changed, r)
		}
	}
	if len(changed) > 0 && cfg.AfterBatch != nil {
		cfg.AfterBatch(changed)
	}
	return len(failed)
}

// commitWorkers is how many commits run at once: they wait on the disk.
const commitWorkers = 32

// parallel calls f(0) ... f(n-1), up to commitWorkers at once, and
// returns when all have returned.
func parallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, commitWorkers)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i)
		})
	}
	wg.Wait()
}

// unionKeys returns the distinct prefixes of rs with prefixes covered by
// another one removed.
func unionKeys(rs []*resource.Resource) []string {
	var all []string
	for _, r := range rs {
		all = append(all, r.Keys...)
	}
	return backends.CoverPrefixes(all)
}

// runInterval polls: every interval it re-reads conf.d and syncs every
// resource, like confd's default mode.
func runInterval(ctx context.Context, cfg Config, pool *pool, m *metrics) error {
	if cfg.Interval <= 0 {
		return fmt.Errorf("%w: -interval must be positive without -watch or -onetime", ErrConfig)
	}
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	pending := map[string]bool{}
	for first := true; ; first = false {
		res, broken, err := loadResources(cfg)
		if err != nil {
			cfg.Logger.Error("load resources", "err", err)
		} else {
			if first {
				logStart(cfg, "interval", res, broken)
			}
			resource.RemoveStaleStages(res, res)
			syncAll(ctx, cfg, pool, m, res, owedReloads(cfg, res, pending))
			resource.RemoveStaleStages(res, res)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-cfg.Reload:
			cfg.Logger.Info("reloading conf.d")
		}
	}
}

// pool holds one backend client per distinct configuration.
type pool struct {
	def     backends.Spec
	mu      sync.Mutex
	specs   map[string]backends.Spec
	clients map[string]backends.Backend
	// log, when set, is given to the backends, with the attribute
	// backend=<name>.
	log *slog.Logger
}

func newPool(def backends.Spec) *pool {
	return &pool{def: def, specs: map[string]backends.Spec{}, clients: map[string]backends.Backend{}}
}

// key names the configuration a resource uses (its own or the default). It
// holds no setting value in clear (see backends.Spec.Key).
func (p *pool) key(s *backends.Spec) string {
	spec := p.def
	if s != nil {
		spec = *s
	}
	k := spec.Key()
	p.mu.Lock()
	p.specs[k] = spec
	p.mu.Unlock()
	return k
}

// get returns the client for key, creating it on first use.
func (p *pool) get(ctx context.Context, key string) (backends.Backend, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b, ok := p.clients[key]; ok {
		return b, nil
	}
	spec := p.specs[key]
	var log *slog.Logger
	if p.log != nil {
		log = p.log.With("backend", spec.Backend)
	}
	b, err := backends.New(ctx, spec, log)
	if err != nil {
		if errors.Is(err, backends.ErrUnknownBackend) {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		if !strings.HasPrefix(err.Error(), spec.Backend+": ") {
			// Backends name themselves ("file: stat ..."); once is enough.
			err = fmt.Errorf("%s: %w", spec.Backend, err)
		}
		return nil, err
	}
	p.clients[key] = b
	return b, nil
}

// name is the backend name behind key, for logs.
func (p *pool) name(key string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.specs[key].Backend
}

func (p *pool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, b := range p.clients {
		b.Close()
		delete(p.clients, k)
	}
}
