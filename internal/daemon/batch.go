package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/confit-dev/confit/resource"
)

// batchItem is a rendered resource for the worker to commit.
type batchItem struct {
	rs  *resState
	out []byte
}

// batchResult is what the worker did for one resource of a batch.
type batchResult struct {
	rs            *resState
	written       bool
	err           error
	reloadTried   bool // reload_cmd ran for this resource
	reloadPending bool // ... and left a file in place that it did not take
}

// runBatch, on the worker goroutine, commits a batch (commitBatch) and
// sends the results to the loop (finish).
func (e *engine) runBatch(batch []batchItem, all []*resource.Resource) {
	e.send(context.Background(), event{batch: e.commitBatch(batch, all)})
}

// inline reports whether a batch is committed on the loop itself rather
// than on the worker: one resource with neither check_cmd nor reload_cmd,
// so nothing runs but the commit of one file (a write, an fsync, a rename,
// a directory fsync). An isolated change, the common case under watch,
// then crosses no goroutine after the loop: handing it to the worker and
// its result back cost two thread wake-ups, about a tenth of a Consul
// change's CPU. A command can take up to its timeout, and a batch of many
// files many fsyncs: those stay on the worker, so that the intake of
// changes never waits for them.
func inline(batch []batchItem) bool {
	if len(batch) != 1 {
		return false
	}
	r := batch[0].rs.r
	return r.CheckCmd == "" && r.ReloadCmd == ""
}

// commitBatch writes the rendered files, then runs each distinct
// reload_cmd once (reloadAll, with rollback), and returns what it did for
// each resource of the batch.
//
// Each file is committed on its own (fsync, rename, directory fsync), one
// after the other. Measured on this project's disk and kept out: writing a
// batch's stage files first, as a one-shot run does, sped up the first
// renders of 200 resources, but with the commits in sequence a storm of
// changes converged later (~290 against ~130 ms) for more CPU, and with
// them in parallel batches followed each other faster than they coalesce,
// for 2.4 times the CPU and the same end state.
//
// Then, for the resources whose commit failed, it removes stale stage
// files in their destination directories (all: every resource, to
// attribute them; no other commit is in flight). A batch that succeeded
// left none, and listing 200 destination directories after each one was a
// quarter of the CPU of a Consul watch change.
func (e *engine) commitBatch(batch []batchItem, all []*resource.Resource) []batchResult {
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
	var failed []*resource.Resource
	for i, it := range batch {
		if results[i].err != nil {
			failed = append(failed, it.rs.r)
		}
	}
	if len(failed) > 0 {
		resource.RemoveStaleStages(failed, all)
	}
	for i := range results {
		if o, ok := outcomes[batch[i].rs.r]; ok {
			results[i].reloadTried = true
			results[i].reloadPending = o.pending
			if o.err != nil {
				results[i].err = o.err
			}
		}
	}
	return results
}

// finish, on the loop, records a batch's results: the one place where the
// outcome of a batch (which resources were written, which failed) is
// known. Each resource goes back to idle, or to pending for a retry after
// a failure or for a change that came while it was in the batch.
func (e *engine) finish(results []batchResult) {
	e.busy = false
	if e.settled {
		e.setSteady(true)
	}
	now := time.Now()
	var changed []*resource.Resource // for AfterBatch
	for _, br := range results {
		rs := br.rs
		if br.written {
			e.m.writes.Add(1)
		}
		if br.written && br.err == nil {
			changed = append(changed, rs.r)
		}
		if br.reloadTried {
			rs.reloadPending = br.reloadPending
		}
		if rs.phase == gone {
			continue // replaced by a conf.d reload: its state went with it
		}
		again := rs.phase == runningAgain
		rs.phase = idle
		if br.err != nil {
			e.failed(rs, br.err, now)
		} else {
			rs.fails = 0
			if e.m.health.set(resourceHealth(rs.r.Name), nil) {
				e.cfg.Logger.Info("sync recovered", "resource", rs.r.Name)
			}
		}
		if again {
			e.schedule(rs, now, false)
		}
	}
	if len(changed) > 0 && e.cfg.AfterBatch != nil {
		e.cfg.AfterBatch(changed)
	}
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
// resource whose command ran. One-shot and interval runs use it too.
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
