package daemon

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/resource"
)

// The watch engine, in five files:
//
//   - engine.go: the loop, the events it receives and their handlers, and
//     the (re)load of conf.d;
//   - watch.go: the goroutines that feed it (snapshot reads, watches,
//     polls) and which prefixes each store watches;
//   - mirror.go: each store's mirror of its watched prefixes;
//   - schedule.go: each resource's phase, debounce and retry, and the
//     renders that start a batch;
//   - batch.go: a batch's commits and reloads on the worker, and its
//     outcome.
//
// One goroutine (run) owns all state: the per-backend mirrors of the watched
// prefixes, the resources and their schedules. Watch goroutines only forward
// backend updates to it. Renders happen on that goroutine against the mirror,
// so a render always sees one consistent state of each backend (the state
// after a whole update was applied). Writing files and running commands
// happens on a worker goroutine, one batch at a time, so a slow reload never
// stalls the intake of changes; only a batch of one file and no command is
// committed on the loop (inline in batch.go).
//
// After a change, only the resources whose last render read a changed key (or
// listed a changed subtree) are rendered again: resource.Reads is recorded on
// every render. A resource that has never rendered depends on all its keys.

// event is what goroutines send to the engine loop: exactly one of err,
// snap, update and batch is set.
type event struct {
	store    string
	prefixes []string           // for a snapshot: the prefixes it covers
	snap     *backends.Snapshot // a snapshot read (initial load or resync)
	update   *backends.Update   // a watch update
	err      error              // a failed snapshot read
	batch    []batchResult      // a finished batch
}

type engine struct {
	cfg    Config
	pool   *pool
	m      *metrics
	stores map[string]*store
	res    []*resState
	// byPrefix: store key → a prefix of resources' keys → those resources
	// (indexPrefixes, for dirty); dirtyGen numbers dirty's calls.
	byPrefix map[string]map[string][]*resState
	dirtyGen uint64
	events   chan event
	busy     bool // a batch is in flight
	// settled is false from a (re)load of conf.d until every resource has
	// rendered once: the memory that took is then handed back (trim).
	settled bool
	steady  bool // what Config.Steady was last told
	timer   *time.Timer
	ctx     context.Context // the run context, for watch goroutines
	work    context.Context // batches: not cancelled by shutdown, so work in flight finishes
}

func newEngine(cfg Config, p *pool, m *metrics) *engine {
	return &engine{
		cfg:    cfg,
		pool:   p,
		m:      m,
		stores: map[string]*store{},
		events: make(chan event, 64),
	}
}

func (e *engine) run(ctx context.Context) error {
	res, broken, err := loadResources(e.cfg)
	if err != nil {
		return err
	}
	logStart(e.cfg, "watch", res, broken)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.ctx = ctx
	e.work = context.WithoutCancel(ctx)
	e.timer = time.NewTimer(time.Hour)
	e.timer.Stop()
	resource.RemoveStaleStages(res, res)
	e.setResources(res)
	e.kick() // resources that need no data render now

	var resync <-chan time.Time
	if e.cfg.Interval > 0 {
		t := time.NewTicker(e.cfg.Interval)
		defer t.Stop()
		resync = t.C
	}
	for {
		select {
		case <-ctx.Done():
			e.shutdown()
			return nil
		case ev := <-e.events:
			e.handle(ev)
			e.drain()
		case <-e.timer.C:
		case <-resync:
			e.resync()
		case <-e.cfg.Reload:
			e.reload()
		}
		e.kick()
	}
}

// shutdown waits for a batch in flight, then stops every watch.
func (e *engine) shutdown() {
	for e.busy {
		ev := <-e.events
		if ev.batch != nil {
			e.handle(ev)
		}
	}
	for _, s := range e.stores {
		for p, stop := range s.watches {
			stop()
			delete(s.watches, p)
		}
	}
}

// drain handles the events already queued, so that the next kick renders
// once for all of them: updates that arrived during an inline commit (see
// inline) coalesce as they do while a batch runs on the worker.
func (e *engine) drain() {
	for range cap(e.events) {
		select {
		case ev := <-e.events:
			e.handle(ev)
		default:
			return
		}
	}
}

// send delivers ev to the loop, unless ctx ends first.
func (e *engine) send(ctx context.Context, ev event) {
	select {
	case e.events <- ev:
	case <-ctx.Done():
	}
}

// handle dispatches an event to its handler.
func (e *engine) handle(ev event) {
	if ev.batch != nil {
		e.finish(ev.batch)
		return
	}
	s, ok := e.stores[ev.store]
	if !ok {
		return
	}
	switch {
	case ev.err != nil:
		e.onLoadError(s, ev.err)
	case ev.snap != nil:
		e.onSnapshot(s, ev.prefixes, ev.snap)
	case ev.update != nil:
		e.onUpdate(s, ev.update)
	}
}

// onLoadError records a failed snapshot read of s (load retries it).
func (e *engine) onLoadError(s *store, err error) {
	if e.m.health.set(backendHealth(s), err) {
		e.cfg.Logger.Warn("backend unavailable; keeping the last good files", "backend", s.name, "err", err)
	}
}

// onSnapshot applies a snapshot of prefixes of s to its mirror, starts
// the watches of the prefixes not watched yet, from the snapshot's
// revision, and schedules the resources that depend on what changed.
func (e *engine) onSnapshot(s *store, prefixes []string, snap *backends.Snapshot) {
	s.stopLoad = nil
	if e.m.health.set(backendHealth(s), nil) {
		e.cfg.Logger.Info("backend available again", "backend", s.name)
	}
	var apply []string
	for _, p := range prefixes {
		if !s.target[p] {
			continue // dropped by a conf.d reload while it was read
		}
		rev := snap.RevOf(p)
		if rev != 0 && rev < s.revs[p] {
			continue // older than what the watch already delivered
		}
		apply = append(apply, p)
		s.revs[p] = rev
		if _, watching := s.watches[p]; !watching {
			ctx, stop := context.WithCancel(e.ctx)
			s.watches[p] = stop
			e.watch(ctx, s, p, rev)
		}
	}
	changed := s.resetAll(apply, snap.KVs)
	first := !s.ready
	s.ready = true
	if !first {
		e.dirty(s, changed)
	}
}

// onUpdate applies a watch update of s to its mirror and schedules the
// resources that depend on what changed.
func (e *engine) onUpdate(s *store, u *backends.Update) {
	e.m.updates.Add(1)
	key := watchHealth(s, u.Prefix)
	if u.Err != nil {
		if e.m.health.set(key, u.Err) {
			e.cfg.Logger.Warn("watch degraded; keeping the last good files", "backend", s.name, "prefix", u.Prefix, "err", u.Err)
		}
		return
	}
	if e.m.health.set(key, nil) {
		e.cfg.Logger.Info("watch healthy again", "backend", s.name, "prefix", u.Prefix)
	}
	if _, watching := s.watches[u.Prefix]; !watching {
		return // a stale update from a watch that was stopped
	}
	// Never go back to an older revision of a stream; a Reset is the
	// whole current state and always applies (a Consul agent that
	// restarted starts again from a lower index).
	if !u.Reset && u.Rev != 0 && u.Rev < s.revs[u.Prefix] {
		return
	}
	var changed []string
	if u.Reset {
		changed = s.reset(u.Prefix, u.KVs)
	} else {
		changed = s.apply(u.Changes)
	}
	if u.Rev != 0 || u.Reset {
		s.revs[u.Prefix] = u.Rev
	}
	e.dirty(s, changed)
}

// reload re-reads conf.d. A resource file that no longer loads keeps its
// previous version running; watches that are still needed keep going.
func (e *engine) reload() {
	e.cfg.Logger.Info("reloading conf.d")
	e.setSteady(false) // conf.d loads on every core
	res, errs := resource.LoadDir(e.cfg.Resource)
	broken := map[string]bool{}
	for _, err := range errs {
		e.cfg.Logger.Error("load resource; keeping the previous version", "err", err)
		var le *resource.LoadError
		if errors.As(err, &le) {
			broken[absPath(le.File)] = true
		}
	}
	if len(res) == 0 && len(errs) > 0 && isDirError(errs) {
		if e.settled {
			e.setSteady(true)
		}
		return
	}
	if len(res) == 0 && len(errs) == 0 {
		warnNoResources(e.cfg)
	}
	for _, rs := range e.res {
		if broken[rs.r.File] { // resource.File is absolute already
			res = append(res, rs.r)
		}
	}
	e.setResources(res)
}

// setResources installs a new set of resources: stores are created or
// reused, watches started for new prefixes and stopped for unused ones, and
// every resource is scheduled for a render.
func (e *engine) setResources(res []*resource.Resource) {
	e.settled = false
	e.setSteady(false)
	pendingReload := map[string]bool{}
	for _, rs := range e.res {
		rs.phase = gone
		if rs.reloadPending {
			pendingReload[rs.r.File] = true
		}
	}
	e.res = nil
	names := map[string]bool{}
	need := map[string][]string{}
	for _, r := range res {
		key := e.pool.key(r.Backend)
		rs := &resState{r: r, store: key, reloadPending: pendingReload[r.File] || owedReload(e.cfg.Logger, r)}
		e.res = append(e.res, rs)
		names[r.Name] = true
		need[key] = append(need[key], r.Keys...)
		if _, ok := e.stores[key]; !ok {
			e.stores[key] = newStore(key, e.pool.name(key))
		}
		e.schedule(rs, time.Now(), true)
	}
	e.indexPrefixes()
	for key, s := range e.stores {
		prefixes := backends.CoverPrefixes(need[key])
		e.retarget(s, prefixes)
		if len(prefixes) == 0 {
			e.m.health.set(backendHealth(s), nil)
		}
	}
	// What failed in a resource that is gone is no longer a health problem.
	e.m.health.forgetResources(names)
}

// owedReload reports whether r's reload is owed from an interrupted run
// (resource.ReloadOwed), and logs it.
func owedReload(log *slog.Logger, r *resource.Resource) bool {
	if !r.ReloadOwed() {
		return false
	}
	log.Warn("reload_cmd owed (a run was interrupted or the reload failed before): it runs now", "resource", r.Name)
	return true
}

// absPath makes p absolute so that paths reported with a relative -confdir
// compare equal to resolved ones.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// setSteady tells Config.Steady when the steady state begins or ends.
func (e *engine) setSteady(steady bool) {
	if e.cfg.Steady == nil || e.steady == steady {
		return
	}
	e.steady = steady
	e.cfg.Steady(steady)
}
