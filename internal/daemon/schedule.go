package daemon

import (
	"errors"
	"iter"
	"maps"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/internal/retry"
	"github.com/confit-dev/confit/resource"
)

// phase is where a resource is in its schedule. The engine goroutine moves
// it:
//
//	idle    --change-->        pending --due, rendered--> running --batch done--> idle
//	pending --render failed--> pending (due: the retry)
//	running --change-->        runningAgain --batch done--> pending
//	running --batch failed-->  pending (due: the retry)
//	any     --a conf.d reload replaced it--> gone (final)
type phase uint8

const (
	idle         phase = iota // nothing to do until a change
	pending                   // a render is scheduled (resState.due)
	running                   // in the batch in flight
	runningAgain              // in the batch in flight, and changed since
	gone                      // replaced by a conf.d reload; its state goes with it
)

// inBatch reports whether the resource is in the batch in flight.
func (p phase) inBatch() bool { return p == running || p == runningAgain }

// resState is a resource and its schedule.
type resState struct {
	r         *resource.Resource
	store     string
	reads     resource.Reads // of the last render; Keys sorted
	haveReads bool
	phase     phase
	first     time.Time // pending: first change of the current quiet window
	due       time.Time // pending: when to render
	fails     int       // failures in a row
	dirtyGen  uint64    // engine.dirtyGen when dirty last scheduled it
	// reloadPending: the file in place was never reloaded successfully
	// (reload_cmd failed and rollback was off or failed); the next batch
	// reloads it even when the render writes nothing new.
	reloadPending bool
}

// dirty schedules the resources of s that depend on a changed key. The
// resources whose keys cover a changed key are found by looking up the key
// and each of its ancestors in e.byPrefix, so a change of one key costs a
// few lookups, not a pass over every resource.
func (e *engine) dirty(s *store, changed []string) {
	if len(changed) == 0 {
		return
	}
	now := time.Now()
	byPrefix := e.byPrefix[s.key]
	e.dirtyGen++
	for _, k := range changed {
		for rs := range covering(byPrefix, k) {
			if rs.dirtyGen != e.dirtyGen && rs.affectedBy(k) {
				rs.dirtyGen = e.dirtyGen
				e.schedule(rs, now, false)
			}
		}
	}
}

// covering yields the resources of byPrefix with a key that k is under (a
// resource with several such keys once per key).
func covering(byPrefix map[string][]*resState, k string) iter.Seq[*resState] {
	return func(yield func(*resState) bool) {
		if !strings.HasPrefix(k, "/") {
			// Not a clean key (none is): look at every resource.
			for rss := range maps.Values(byPrefix) {
				for _, rs := range rss {
					if backends.UnderAny(k, rs.r.Keys) && !yield(rs) {
						return
					}
				}
			}
			return
		}
		for p := k; ; {
			for _, rs := range byPrefix[p] {
				if !yield(rs) {
					return
				}
			}
			if p == "/" {
				return
			}
			p = p[:max(strings.LastIndexByte(p, '/'), 1)]
		}
	}
}

// indexPrefixes rebuilds e.byPrefix from e.res: per store, each prefix of
// a resource's keys → the resources with that prefix. A key k is under
// prefix p (backends.Under) exactly when p is k, or "/", or k cut before
// one of its "/", which is what dirty looks up.
func (e *engine) indexPrefixes() {
	e.byPrefix = map[string]map[string][]*resState{}
	for _, rs := range e.res {
		m := e.byPrefix[rs.store]
		if m == nil {
			m = map[string][]*resState{}
			e.byPrefix[rs.store] = m
		}
		for _, p := range rs.r.Keys {
			if p == "" {
				p = "/" // every key is under both
			}
			if !slices.Contains(m[p], rs) {
				m[p] = append(m[p], rs)
			}
		}
	}
}

// affectedBy reports whether the resource's output may depend on the key k,
// which is under one of its keys.
func (rs *resState) affectedBy(k string) bool {
	_, read := slices.BinarySearch(rs.reads.Keys, k)
	return !rs.haveReads || read || backends.UnderAny(k, rs.reads.Prefixes)
}

// schedule sets when rs renders next. With a wait of min:max, a render
// happens after min of quiet, and at most max after the first change.
// immediate skips the wait (start-up, reload). A resource in the batch in
// flight is scheduled again when the batch is done (finish).
func (e *engine) schedule(rs *resState, now time.Time, immediate bool) {
	switch {
	case rs.phase == gone:
		return
	case rs.phase.inBatch():
		rs.phase = runningAgain
		return
	}
	w := rs.r.Wait
	if w.Min == 0 && w.Max == 0 {
		w = e.cfg.Wait
	}
	if immediate || w.Min == 0 {
		rs.phase, rs.due = pending, now
		return
	}
	if rs.phase != pending {
		rs.phase, rs.first = pending, now
	}
	rs.due = now.Add(w.Min)
	if max := w.Max; max > 0 && rs.first.Add(max).Before(rs.due) {
		rs.due = rs.first.Add(max)
	}
}

// kick renders the due resources and starts a batch of those that
// rendered, or arms the timer for the next one due. A batch committed
// inline (see inline) is finished at once, and kick looks again.
func (e *engine) kick() {
	for e.kickOnce() {
	}
}

// kickOnce is one pass of kick; it reports whether it committed a batch
// inline. That batch's resource is idle again, or pending with a retry
// due later (a failed commit), so the passes end.
func (e *engine) kickOnce() (again bool) {
	if e.busy || e.ctx.Err() != nil {
		return false
	}
	now := time.Now()
	var next time.Time
	var batch []batchItem
	for _, rs := range e.res {
		if rs.phase != pending {
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
		rs.phase = idle
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
		rs.phase = running
		batch = append(batch, batchItem{rs: rs, out: out})
	}
	if len(batch) > 0 {
		e.busy = true
		all := make([]*resource.Resource, len(e.res))
		for i, rs := range e.res {
			all[i] = rs.r
		}
		if inline(batch) {
			e.finish(e.commitBatch(batch, all))
			return true
		}
		if len(batch) > 1 {
			e.setSteady(false) // the batch commits on every core
		}
		startWorker(func() { e.runBatch(batch, all) })
		return false
	}
	if !next.IsZero() {
		e.timer.Reset(time.Until(next))
	}
	if !e.settled && !slices.ContainsFunc(e.res, func(rs *resState) bool { return rs.phase == pending }) {
		e.settled = true
		go trim()
		e.setSteady(true)
	}
	return false
}

// startWorker runs a batch on the worker goroutine (a variable for tests).
var startWorker = func(f func()) { go f() }

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
	if e.m.health.set(resourceHealth(rs.r.Name), err) {
		e.cfg.Logger.Error("sync failed; keeping the last good file", "resource", rs.r.Name, "err", err)
	}
	rs.phase, rs.due = pending, now.Add(retryDelay(err, rs.fails))
}

// retryDelay is how long a resource waits after its fails-th failure in a
// row: up to writeRetryMax when the file system refused the commit (full,
// read-only: the destination is stale until space returns, and a retry
// costs only a failed write), else from a second, doubling, up to a
// minute, ±20 %.
func retryDelay(err error, fails int) time.Duration {
	if errors.Is(err, resource.ErrWrite) {
		return retry.Backoff(writeRetryMin, writeRetryMax, fails)
	}
	return retry.Spread(retry.Exp(time.Second, time.Minute, fails), 0.2)
}

// The bounds of the backoff between commits the file system refused.
const (
	writeRetryMin = 250 * time.Millisecond
	writeRetryMax = 2 * time.Second
)
