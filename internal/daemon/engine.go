package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/internal/retry"
	"github.com/confit-dev/confit/resource"
)

// The watch engine.
//
// One goroutine (run) owns all state: the per-backend mirrors of the watched
// prefixes, the resources and their schedules. Watch goroutines only forward
// backend updates to it. Renders happen on that goroutine against the mirror,
// so a render always sees one consistent state of each backend (the state
// after a whole update was applied). Writing files and running commands
// happens on a worker goroutine, one batch at a time, so a slow reload never
// stalls the intake of changes.
//
// After a change, only the resources whose last render read a changed key (or
// listed a changed subtree) are rendered again: resource.Reads is recorded on
// every render. A resource that has never rendered depends on all its keys.

// store is one backend client and the mirror of the prefixes watched on it.
type store struct {
	key, name string

	kvs      map[string]string             // every key under a watched prefix
	idx      *keyIndex                     // kvs's keys, sorted; nil: to rebuild (index)
	watches  map[string]context.CancelFunc // watched prefix -> stop
	revs     map[string]uint64             // last revision applied per prefix
	target   map[string]bool               // the prefixes the resources need now
	ready    bool                          // the first snapshot is in
	stopLoad context.CancelFunc            // cancels the load in flight; nil: none
}

// resState is a resource and its schedule.
type resState struct {
	r         *resource.Resource
	store     string
	reads     resource.Reads // of the last render; Keys sorted
	haveReads bool
	pending   bool      // a render is scheduled
	first     time.Time // first change of the current quiet window
	due       time.Time
	running   bool // in the current batch
	again     bool // changed while running
	fails     int
	// reloadPending: the file in place was never reloaded successfully
	// (reload_cmd failed and rollback was off or failed); the next batch
	// reloads it even when the render writes nothing new.
	reloadPending bool
	gone          bool // replaced by a conf.d reload
}

// event is what goroutines send to the engine loop.
type event struct {
	store    string
	prefixes []string           // for a snapshot: the prefixes it covers
	snap     *backends.Snapshot // a snapshot read (initial load or resync)
	update   *backends.Update   // a watch update
	err      error              // a failed snapshot read
	batch    []batchResult      // a finished batch
}

type batchItem struct {
	rs  *resState
	out []byte
}

type batchResult struct {
	rs            *resState
	written       bool
	err           error
	reloadTried   bool // reload_cmd ran for this resource
	reloadPending bool // ... and left a file in place that it did not take
}

type engine struct {
	cfg    Config
	pool   *pool
	m      *metrics
	stores map[string]*store
	res    []*resState
	events chan event
	busy   bool
	// settled is false from a (re)load of conf.d until every resource has
	// rendered once: the memory that took is then handed back (trim).
	settled bool
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

// setResources installs a new set of resources: stores are created or
// reused, watches started for new prefixes and stopped for unused ones, and
// every resource is scheduled for a render.
func (e *engine) setResources(res []*resource.Resource) {
	e.settled = false
	pendingReload := map[string]bool{}
	for _, rs := range e.res {
		rs.gone = true
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
		names["resource "+r.Name] = true
		need[key] = append(need[key], r.Keys...)
		if _, ok := e.stores[key]; !ok {
			e.stores[key] = &store{
				key:     key,
				name:    e.pool.name(key),
				kvs:     map[string]string{},
				idx:     &keyIndex{},
				watches: map[string]context.CancelFunc{},
				revs:    map[string]uint64{},
				target:  map[string]bool{},
			}
		}
		e.schedule(rs, time.Now(), true)
	}
	for key, s := range e.stores {
		prefixes := backends.CoverPrefixes(need[key])
		e.retarget(s, prefixes)
		if len(prefixes) == 0 {
			e.m.setHealth("backend "+s.name, nil)
		}
	}
	// What failed in a resource that is gone is no longer a health problem.
	e.m.clearHealth("resource ", names)
}

// retarget makes s watch exactly prefixes: unused watches stop, and
// prefixes not yet covered are read and then watched.
func (e *engine) retarget(s *store, prefixes []string) {
	// A load in flight may cover prefixes no longer needed (or miss new
	// ones): start over with what is missing now.
	if s.stopLoad != nil {
		s.stopLoad()
		s.stopLoad = nil
	}
	s.target = map[string]bool{}
	for _, p := range prefixes {
		s.target[p] = true
	}
	for p, stop := range s.watches {
		if !slices.Contains(prefixes, p) {
			stop()
			delete(s.watches, p)
			delete(s.revs, p)
			e.m.setHealth("watch "+s.name+" "+p, nil)
			edit := mirrorEdit{s: s}
			for k := range s.kvs {
				if backends.Under(k, p) && !backends.UnderAny(k, prefixes) {
					edit.del(k)
				}
			}
		}
	}
	var missing []string
	for _, p := range prefixes {
		if _, ok := s.watches[p]; !ok {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		e.load(s, missing)
	}
}

// load reads prefixes of s in the background, retrying with jittered
// exponential backoff until it succeeds or the engine stops.
func (e *engine) load(s *store, prefixes []string) {
	ctx, cancel := context.WithCancel(e.ctx)
	s.stopLoad = cancel
	key := s.key
	go func() {
		defer cancel()
		delay := 100 * time.Millisecond
		for {
			b, err := e.pool.get(ctx, key)
			var snap backends.Snapshot
			if err == nil {
				snap, err = b.Get(ctx, prefixes)
				e.m.storeGets.Add(1)
			}
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				e.send(ctx, event{store: key, prefixes: prefixes, snap: &snap})
				return
			}
			e.send(ctx, event{store: key, prefixes: prefixes, err: err})
			select {
			case <-ctx.Done():
				return
			case <-time.After(jitter(delay)):
			}
			delay = min(delay*2, 30*time.Second)
		}
	}()
}

func (e *engine) send(ctx context.Context, ev event) {
	select {
	case e.events <- ev:
	case <-ctx.Done():
	}
}

// jitter spreads d by ±20% so a fleet of sidecars does not retry in step.
func jitter(d time.Duration) time.Duration {
	return d - d/5 + rand.N(2*d/5+1)
}

// watch forwards the updates of one prefix to the engine. A backend that
// cannot watch is polled every Interval (or read once, when Interval is 0).
func (e *engine) watch(ctx context.Context, s *store, prefix string, rev uint64) {
	b, err := e.pool.get(ctx, s.key)
	if err != nil {
		return
	}
	key := s.key
	go func() {
		delay := 100 * time.Millisecond
		for {
			ch, err := b.Watch(ctx, prefix, rev)
			if errors.Is(err, backends.ErrWatchUnsupported) {
				e.poll(ctx, b, key, prefix)
				return
			}
			if err == nil {
				for u := range ch {
					u.Prefix = prefix
					e.send(ctx, event{store: key, update: &u})
				}
				return // closed: the watch was stopped or the backend closed
			}
			// It could not start (a permission not granted yet, a watch
			// limit): report it and try again, with backoff.
			e.send(ctx, event{store: key, update: &backends.Update{Prefix: prefix, Err: err}})
			select {
			case <-ctx.Done():
				return
			case <-time.After(jitter(delay)):
			}
			delay = min(delay*2, 30*time.Second)
		}
	}()
}

func (e *engine) poll(ctx context.Context, b backends.Backend, key, prefix string) {
	if e.cfg.Interval <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(e.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		snap, err := b.Get(ctx, []string{prefix})
		e.m.storeGets.Add(1)
		u := backends.Update{Prefix: prefix, Err: err, Reset: err == nil, Rev: snap.Rev, KVs: snap.KVs}
		e.send(ctx, event{store: key, update: &u})
	}
}

// resync re-reads every watched prefix: a safety net against a watch that
// missed something. Unchanged data causes no render.
func (e *engine) resync() {
	for _, s := range e.stores {
		if !s.ready || s.stopLoad != nil || len(s.watches) == 0 {
			continue
		}
		prefixes := make([]string, 0, len(s.watches))
		for p := range s.watches {
			prefixes = append(prefixes, p)
		}
		sort.Strings(prefixes)
		e.load(s, prefixes)
	}
}

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
		if e.m.setHealth("backend "+s.name, ev.err) {
			e.cfg.Logger.Warn("backend unavailable; keeping the last good files", "backend", s.name, "err", ev.err)
		}
	case ev.snap != nil:
		s.stopLoad = nil
		if e.m.setHealth("backend "+s.name, nil) {
			e.cfg.Logger.Info("backend available again", "backend", s.name)
		}
		var apply []string
		for _, p := range ev.prefixes {
			if !s.target[p] {
				continue // dropped by a conf.d reload while it was read
			}
			rev := ev.snap.RevOf(p)
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
		changed := s.resetAll(apply, ev.snap.KVs)
		first := !s.ready
		s.ready = true
		if !first {
			e.dirty(s, changed)
		}
	case ev.update != nil:
		e.m.updates.Add(1)
		u := ev.update
		thing := "watch " + s.name + " " + u.Prefix
		if u.Err != nil {
			if e.m.setHealth(thing, u.Err) {
				e.cfg.Logger.Warn("watch degraded; keeping the last good files", "backend", s.name, "prefix", u.Prefix, "err", u.Err)
			}
			return
		}
		if e.m.setHealth(thing, nil) {
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
}

// reset replaces the mirror under prefix with kvs and returns the keys that
// changed.
func (s *store) reset(prefix string, kvs map[string]string) []string {
	return s.replace(func(k string) bool { return backends.Under(k, prefix) }, kvs)
}

// resetAll is reset for each of prefixes (none under another), in one pass
// over the mirror and kvs: a snapshot of 200 prefixes was 200 passes.
func (s *store) resetAll(prefixes []string, kvs map[string]string) []string {
	if len(prefixes) == 0 {
		return nil
	}
	set := make(map[string]bool, len(prefixes))
	for _, p := range prefixes {
		set[p] = true
	}
	return s.replace(func(k string) bool { return backends.UnderSet(k, set) }, kvs)
}

// replace replaces the mirror's entries whose key in reports true with
// those of kvs, and returns the keys that changed.
func (s *store) replace(in func(key string) bool, kvs map[string]string) []string {
	var changed []string
	edit := mirrorEdit{s: s}
	for k := range s.kvs {
		if _, keep := kvs[k]; !keep && in(k) && edit.del(k) {
			changed = append(changed, k)
		}
	}
	for k, v := range kvs {
		if in(k) && edit.set(k, v) {
			changed = append(changed, k)
		}
	}
	return changed
}

// index returns the sorted index of s.kvs, rebuilding it if it was
// dropped.
func (s *store) index() *keyIndex {
	if s.idx == nil {
		s.idx = newKeyIndex(s.kvs)
	}
	return s.idx
}

// maxIndexEdits is how many keys one update inserts into or removes from
// the key index one by one; past that the index is dropped and rebuilt
// once before the next render, which is cheaper (each edit moves the tail
// of a sorted slice). A snapshot of 200 prefixes is one rebuild, not 200.
const maxIndexEdits = 64

// mirrorEdit applies one update to a store's mirror and key index.
type mirrorEdit struct {
	s     *store
	edits int
}

// set sets k to v and reports whether that changed anything.
func (e *mirrorEdit) set(k, v string) bool {
	old, ok := e.s.kvs[k]
	if ok && old == v {
		return false
	}
	e.s.kvs[k] = v
	if !ok && e.index() != nil {
		e.s.idx.insert(k)
	}
	return true
}

// del deletes k and reports whether it was there.
func (e *mirrorEdit) del(k string) bool {
	if _, ok := e.s.kvs[k]; !ok {
		return false
	}
	delete(e.s.kvs, k)
	if e.index() != nil {
		e.s.idx.remove(k)
	}
	return true
}

// index counts one edit of the key index and returns the index to edit, or
// nil once it is (or has been) dropped.
func (e *mirrorEdit) index() *keyIndex {
	if e.edits++; e.edits > maxIndexEdits {
		e.s.idx = nil
	}
	return e.s.idx
}

// loaded reports whether every key prefix is covered by a watched prefix,
// that is one whose snapshot is in the mirror.
func (s *store) loaded(keys []string) bool {
	for _, k := range keys {
		covered := false
		for p := range s.watches {
			if backends.Under(k, p) {
				covered = true
				break
			}
		}
		if !covered {
			return false
		}
	}
	return true
}

// apply applies incremental changes and returns the keys that changed.
func (s *store) apply(cs []backends.Change) []string {
	var changed []string
	edit := mirrorEdit{s: s}
	for _, c := range cs {
		if c.Deleted && edit.del(c.Key) || !c.Deleted && edit.set(c.Key, c.Value) {
			changed = append(changed, c.Key)
		}
	}
	return changed
}

// dirty schedules the resources of s that depend on a changed key.
func (e *engine) dirty(s *store, changed []string) {
	if len(changed) == 0 {
		return
	}
	now := time.Now()
	for _, rs := range e.res {
		if rs.store == s.key && rs.affectedBy(changed) {
			e.schedule(rs, now, false)
		}
	}
}

// affectedBy reports whether the resource's output may depend on a key in changed.
func (rs *resState) affectedBy(changed []string) bool {
	for _, k := range changed {
		if !backends.UnderAny(k, rs.r.Keys) {
			continue
		}
		if _, read := slices.BinarySearch(rs.reads.Keys, k); !rs.haveReads || read || backends.UnderAny(k, rs.reads.Prefixes) {
			return true
		}
	}
	return false
}

// schedule sets when rs renders next. With a wait of min:max, a render
// happens after min of quiet, and at most max after the first change.
// immediate skips the wait (start-up, reload).
func (e *engine) schedule(rs *resState, now time.Time, immediate bool) {
	if rs.running {
		rs.again = true
		return
	}
	w := rs.r.Wait
	if w.Min == 0 && w.Max == 0 {
		w = e.cfg.Wait
	}
	if immediate || w.Min == 0 {
		rs.pending, rs.due = true, now
		return
	}
	if !rs.pending {
		rs.pending, rs.first = true, now
	}
	rs.due = now.Add(w.Min)
	if max := w.Max; max > 0 && rs.first.Add(max).Before(rs.due) {
		rs.due = rs.first.Add(max)
	}
}

// kick starts a batch of due resources, or arms the timer for the next one.
func (e *engine) kick() {
	if e.busy || e.ctx.Err() != nil {
		return
	}
	now := time.Now()
	var next time.Time
	var batch []batchItem
	for _, rs := range e.res {
		if !rs.pending {
			continue
		}
		s := e.stores[rs.store]
		if len(rs.r.Keys) > 0 && (!s.ready || !s.loaded(rs.r.Keys)) {
			continue // wait for the data: never render from a partial view
		}
		if rs.due.After(now) {
			if next.IsZero() || rs.due.Before(next) {
				next = rs.due
			}
			continue
		}
		rs.pending = false
		out, reads, err := rs.r.RenderSorted(s.index().subset(s.kvs, rs.r.Keys))
		e.m.renders.Add(1)
		rs.reads, rs.haveReads = reads, true
		if err != nil {
			e.failed(rs, err, now)
			if rs.due.After(now) && (next.IsZero() || rs.due.Before(next)) {
				next = rs.due
			}
			continue
		}
		rs.running = true
		batch = append(batch, batchItem{rs: rs, out: out})
	}
	if len(batch) > 0 {
		e.busy = true
		all := make([]*resource.Resource, len(e.res))
		for i, rs := range e.res {
			all[i] = rs.r
		}
		go e.runBatch(batch, all)
		return
	}
	if !next.IsZero() {
		e.timer.Reset(time.Until(next))
	}
	if !e.settled && !slices.ContainsFunc(e.res, func(rs *resState) bool { return rs.pending }) {
		e.settled = true
		go trim()
	}
}

// trim returns the heap's free memory to the OS. Loading conf.d and the
// first render of every resource take several times the memory the
// daemon then lives in; without this the runtime gives it back over
// minutes. It costs one garbage collection.
var trim = debug.FreeOSMemory

// failed records a failure of rs and schedules a retry with backoff. It logs
// only when the failure is new or different.
func (e *engine) failed(rs *resState, err error, now time.Time) {
	e.m.failures.Add(1)
	rs.fails++
	if e.m.setHealth("resource "+rs.r.Name, err) {
		e.cfg.Logger.Error("sync failed; keeping the last good file", "resource", rs.r.Name, "err", err)
	}
	rs.pending, rs.due = true, now.Add(retryDelay(err, rs.fails))
}

// retryDelay is how long a resource waits after its fails-th failure in a
// row: up to writeRetryMax when the file system refused the commit (full,
// read-only: the destination is stale until space returns, and a retry
// costs only a failed write), else up to a minute.
func retryDelay(err error, fails int) time.Duration {
	if errors.Is(err, resource.ErrWrite) {
		return retry.Backoff(writeRetryMin, writeRetryMax, fails)
	}
	return jitter(min(time.Second<<min(fails-1, 6), time.Minute))
}

// The bounds of the backoff between commits the file system refused.
const (
	writeRetryMin = 250 * time.Millisecond
	writeRetryMax = 2 * time.Second
)

// runBatch writes the rendered files, then runs each distinct reload_cmd
// once. When a reload fails, the resources it reloads are rolled back to
// their previous files (unless rollback = false) and reloaded again.
//
// Each file is committed on its own (fsync, rename, directory fsync), one
// after the other. Measured on this project's disk and kept out: writing a
// batch's stage files first, as a one-shot run does, sped up the first
// renders of 200 resources, but with the commits in sequence a storm of
// changes converged later (~290 against ~130 ms) for more CPU, and with
// them in parallel batches followed each other faster than they coalesce,
// for 2.4 times the CPU and the same end state.
//
// Then it removes the stale stage files in the batch's destination
// directories (all: every resource, to attribute them; no other commit is
// in flight).
func (e *engine) runBatch(batch []batchItem, all []*resource.Resource) {
	ctx := e.work
	results := make([]batchResult, len(batch))
	var toReload []*resource.Resource
	for i, it := range batch {
		results[i].rs = it.rs
		res, err := it.rs.r.Commit(ctx, it.out, resource.InstallOptions{SkipReload: true})
		results[i].written, results[i].err = res.Written, err
		// A file whose reload failed earlier is reloaded again even when
		// this render changed nothing.
		if err == nil && (res.Written || it.rs.reloadPending) {
			toReload = append(toReload, it.rs.r)
		}
	}
	outcomes := reloadAll(ctx, e.m, toReload)
	done := make([]*resource.Resource, len(batch))
	for i, it := range batch {
		done[i] = it.rs.r
	}
	resource.RemoveStaleStages(done, all)
	for i := range results {
		if o, ok := outcomes[batch[i].rs.r]; ok {
			results[i].reloadTried = true
			results[i].reloadPending = o.pending
			if o.err != nil {
				results[i].err = o.err
			}
		}
	}
	e.send(context.Background(), event{batch: results})
}

// reloadOutcome is what reloadAll did for one resource.
type reloadOutcome struct {
	err error
	// pending: the reload failed and the new file stayed in place
	// (rollback = false, or the rollback failed).
	pending bool
}

// reloadAll runs the reload_cmd of resources whose files were just
// written (or never reloaded), each distinct command once. When a reload
// fails, the resources it reloads are rolled back to their previous files
// (unless rollback = false) and the command runs again, so the service keeps
// the last configuration that worked. It returns an outcome for every
// resource whose command ran.
func reloadAll(ctx context.Context, m *metrics, written []*resource.Resource) map[*resource.Resource]reloadOutcome {
	groups := map[string][]*resource.Resource{}
	var order []string
	for _, r := range written {
		cmd := r.ReloadCommand()
		if cmd == "" {
			continue
		}
		if _, ok := groups[cmd]; !ok {
			order = append(order, cmd)
		}
		groups[cmd] = append(groups[cmd], r)
	}
	out := map[*resource.Resource]reloadOutcome{}
	for _, cmd := range order {
		rs := groups[cmd]
		lead := rs[0]
		m.reloads.Add(1)
		err := lead.Reload(ctx)
		if err == nil {
			for _, r := range rs {
				r.Reloaded()
				out[r] = reloadOutcome{}
			}
			continue
		}
		restored := map[*resource.Resource]bool{}
		for _, r := range rs {
			if !r.AutoRollback {
				continue
			}
			if rerr := r.Restore(); rerr != nil {
				err = fmt.Errorf("%w; rollback: %v", err, rerr)
				continue
			}
			restored[r] = true
			m.rollbacks.Add(1)
		}
		if len(restored) > 0 {
			m.reloads.Add(1)
			if rerr := lead.Reload(ctx); rerr != nil {
				err = fmt.Errorf("%w; reload after rollback: %v", err, rerr)
			} else {
				err = fmt.Errorf("%w (previous file restored and reloaded)", err)
				for r := range restored {
					r.Reloaded() // the service runs the file in place
				}
			}
		}
		for _, r := range rs {
			out[r] = reloadOutcome{err: err, pending: !restored[r]}
		}
	}
	return out
}

// finish records a batch's results.
func (e *engine) finish(results []batchResult) {
	e.busy = false
	now := time.Now()
	for _, br := range results {
		rs := br.rs
		rs.running = false
		if br.written {
			e.m.writes.Add(1)
		}
		if br.reloadTried {
			rs.reloadPending = br.reloadPending
		}
		if rs.gone {
			continue // replaced by a conf.d reload: its state went with it
		}
		if br.err != nil {
			e.failed(rs, br.err, now)
		} else {
			rs.fails = 0
			if e.m.setHealth("resource "+rs.r.Name, nil) {
				e.cfg.Logger.Info("sync recovered", "resource", rs.r.Name)
			}
		}
		if rs.again {
			rs.again = false
			e.schedule(rs, now, false)
		}
	}
}

// reload re-reads conf.d. A resource file that no longer loads keeps its
// previous version running; watches that are still needed keep going.
func (e *engine) reload() {
	e.cfg.Logger.Info("reloading conf.d")
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
