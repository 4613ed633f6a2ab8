package resource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The pipeline, one for every mode: render (Resource.RenderSorted) →
// compare with the destination and stage (Stage) → check_cmd and install
// (Staged.Install) → reload (Reload, or InstallOptions' default) → restore
// the previous file when the reload failed (Restore). Commit is Stage and
// Install in one step. The file writing itself is in write.go, the Noop
// diff in diff.go.

// ErrNoRollback is returned by Restore when no commit has replaced the
// destination since the resource was loaded or last restored.
var ErrNoRollback = errors.New("nothing to roll back")

// InstallOptions change what Install and Commit do once the file is in
// place.
type InstallOptions struct {
	// SkipReload leaves reload_cmd to the caller, who calls Reload once
	// for several resources sharing the same command.
	SkipReload bool
	// DeferDirSync leaves the fsync of the destination's directory (which
	// makes the rename durable) to the caller, who calls SyncDirs once for
	// a batch of resources, before reloading any of them: 200 resources in
	// one directory then cost one directory fsync instead of 200.
	DeferDirSync bool
}

// SyncDirs fsyncs each distinct directory of the resources' destinations
// once, for commits made with InstallOptions.DeferDirSync. A failure is
// logged for every resource in that directory, not returned: the files
// are in place either way.
func SyncDirs(rs []*Resource) {
	done := map[string]error{}
	for _, r := range rs {
		dir := filepath.Dir(r.Dest)
		err, ok := done[dir]
		if !ok {
			err = syncDir(dir)
			done[dir] = err
		}
		if err != nil {
			r.log.Warn("fsync directory failed", "err", err)
		}
	}
}

// Result says what Commit or Install did.
type Result struct {
	// Changed: the rendered output differs from the destination in bytes,
	// mode, uid or gid, or the destination does not exist.
	Changed bool
	// Written: the destination was replaced.
	Written bool
	// Noop: Options.Noop was set; nothing was written or run.
	Noop bool
	// Reloaded: reload_cmd ran and succeeded.
	Reloaded bool
	// Rendered is the rendered output (nil when rendering failed).
	Rendered []byte
}

// previous is what the last commit replaced, for Restore.
type previous struct {
	st fileState
}

// Commit is the pipeline after the render: it compares out with the
// destination (an unchanged destination costs one stat and one read, and
// nothing runs) and, when they differ in bytes, mode, uid or gid, writes a
// stage file ".<base><random>" next to the destination with the final mode
// and owner, fsyncs it, runs check_cmd on it (unless SyncOnly), renames it
// over the destination (or writes in place when rename fails with EBUSY or
// EXDEV), fsyncs the directory (unless o.DeferDirSync) and runs reload_cmd
// (unless SyncOnly or o.SkipReload): Stage and Install in one step.
//
// A check failure leaves the destination byte-for-byte untouched and
// removes the stage file (unless KeepStageFile). With Options.Noop it only
// compares, writes a unified diff to Options.Diff and returns
// Result{Changed: true, Noop: true}. An error after the file is in place
// (reload_cmd failed) comes with Result.Written set.
//
// A commit remembers the destination it replaced, for Restore.
func (r *Resource) Commit(ctx context.Context, out []byte, o InstallOptions) (Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, res, err := r.stage(ctx, out, true)
	if st == nil || err != nil {
		return res, err
	}
	return st.checkAndInstall(ctx, o)
}

// Staged is an output written to its stage file but not yet fsynced nor
// in place: Commit split in two (Stage, Install) for a caller that commits
// a batch. Writing
// every stage file of a batch before fsyncing any lets the file system
// commit them together: a one-shot run writing 200 new files on this
// project's ext4 disk took 63 ms so, 84 ms fsyncing each as it was written.
type Staged struct {
	r     *Resource
	out   []byte // nil for Stage: read back from the stage file if needed
	stage string // the stage file's path
	cur   fileState
	want  target
	res   Result // what Stage returned
}

// Stage is the first half of Commit: it compares out with the destination
// and, when they differ, writes the stage file without fsyncing it. It
// returns a nil *Staged when there is nothing to commit (the destination
// is in sync, or Noop mode, where the diff is written as Commit does) or
// on error. A non-nil Staged must be installed (Staged.Install, which
// removes the stage file if it fails), and r must not be committed
// otherwise in the meantime; neither it nor the Result returned with it
// keeps out.
func (r *Resource) Stage(ctx context.Context, out []byte) (*Staged, Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stage(ctx, out, false)
}

// Install is the second half of Commit: it fsyncs the stage file, runs
// check_cmd on it, moves it into place and reloads as o says.
func (s *Staged) Install(ctx context.Context, o InstallOptions) (Result, error) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if err := syncFile(s.stage); err != nil {
		os.Remove(s.stage)
		return s.res, s.r.errorf("%w", asWriteError(fmt.Errorf("fsync stage file: %w", err), s.r.Dest, s.stage))
	}
	return s.checkAndInstall(ctx, o)
}

// stage is Stage; with fsync the stage file is fsynced as it is written
// (Commit). r.mu is held.
func (r *Resource) stage(ctx context.Context, out []byte, fsync bool) (*Staged, Result, error) {
	res := Result{Noop: r.opts.Noop, Rendered: out}
	cur, err := readDest(r.Dest)
	if err != nil {
		return nil, res, r.errorf("%w", err)
	}
	want := r.target(cur)
	if cur.exists && bytes.Equal(cur.data, out) && cur.mode == want.mode &&
		(want.uid < 0 || cur.uid == want.uid) && (want.gid < 0 || cur.gid == want.gid) {
		r.log.Debug("Target config " + r.Dest + " in sync")
		return nil, res, nil
	}
	res.Changed = true

	if r.opts.Noop {
		r.log.Warn("Noop mode enabled. " + r.Dest + " will not be modified")
		if err := r.writeDiff(cur, out, want); err != nil {
			return nil, res, r.errorf("write diff: %w", err)
		}
		return nil, res, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, res, r.errorf("%w", err)
	}
	r.log.Info("Target config " + r.Dest + " out of sync")

	stage, err := writeStage(r.Dest, out, want, fsync)
	if errors.Is(err, fs.ErrNotExist) {
		// Like consul-template, create a missing destination directory.
		if err := os.MkdirAll(filepath.Dir(r.Dest), 0o755); err != nil {
			return nil, res, r.errorf("create destination directory: %w", asWriteError(err, r.Dest, ""))
		}
		stage, err = writeStage(r.Dest, out, want, fsync)
	}
	if err != nil {
		return nil, res, r.errorf("%w", asWriteError(err, r.Dest, ""))
	}
	st := &Staged{r: r, stage: stage, cur: cur, want: want}
	if fsync {
		st.out = out
	} else {
		// A batch holds every staged resource until it commits them: not
		// its output too. Only a commit that cannot rename reads it back.
		res.Rendered = nil
	}
	st.res = res
	return st, res, nil
}

// checkAndInstall runs check_cmd on the fsynced stage file, moves it into
// place and reloads as o says. r.mu is held.
func (s *Staged) checkAndInstall(ctx context.Context, o InstallOptions) (Result, error) {
	r, stage, out, cur, want, res := s.r, s.stage, s.out, s.cur, s.want, s.res
	keep := false // the stage file is gone (renamed) or kept on purpose
	defer func() {
		if !keep {
			os.Remove(stage)
		}
	}()

	if !r.opts.SyncOnly && r.CheckCmd != "" {
		cmd, err := r.checkTmpl.expand(stage, r.Dest)
		if err != nil {
			return res, r.errorf("check_cmd: %w", err)
		}
		out, err := runCmdEnv(ctx, "check_cmd", cmd, cmdEnv(r.opts.CmdEnvClean, stage, r.Dest), r.CheckCmdTimeout)
		if err != nil {
			if r.opts.KeepStageFile {
				keep = true
				r.log.Info("check failed; stage file kept", "stage", stage)
			}
			return res, r.errorf("%w", err)
		}
		logCmdOutput(r.log, "check_cmd", out)
	}

	owedBefore := r.ReloadOwed()
	if r.ReloadCommand() != "" && !owedBefore {
		// The reload is owed from the moment the file is in place: record
		// it before, durably (the directory fsync after the rename makes
		// the record's name durable too), so that a run killed before the reload
		// succeeded runs it at its next start.
		if err := r.oweReload(); err != nil {
			return res, r.errorf("%w", asWriteError(err, r.Dest, stage))
		}
	}
	prev := r.prev
	renamed, err := moveIntoPlace(stage, r.Dest, out, want, inPlace{
		old:         &cur,
		removeStage: !r.opts.KeepStageFile,
		// Set before the destination is truncated, so that Restore can put
		// it back even if writing it and putting it back both fail.
		before: func() { r.prev = &previous{st: cur} },
	})
	if errors.Is(err, errWrittenBack) {
		r.prev = prev // the destination is as it was: so is what it replaced
	}
	var linkErr *os.LinkError
	if err != nil && !owedBefore && (errors.Is(err, errWrittenBack) || errors.As(err, &linkErr)) {
		r.Reloaded() // the destination is as it was: no reload is owed
	}
	if err != nil {
		return res, r.errorf("%w", asWriteError(err, r.Dest, stage))
	}
	keep = renamed || r.opts.KeepStageFile
	if !o.DeferDirSync {
		r.syncDir()
	}
	res.Written = true
	r.prev = &previous{st: cur}
	r.log.Info("Target config " + r.Dest + " has been updated")

	if r.opts.SyncOnly || o.SkipReload || r.ReloadCmd == "" {
		return res, nil
	}
	if err := r.reload(ctx); err != nil {
		return res, err
	}
	res.Reloaded = true
	return res, nil
}

// Reload runs reload_cmd, with {{.src}} and {{.dest}} both the destination.
// It does nothing when there is no reload_cmd or in Noop or SyncOnly mode.
// The daemon calls it once for resources whose commit skipped the reload
// (InstallOptions.SkipReload).
func (r *Resource) Reload(ctx context.Context) error {
	if r.opts.Noop || r.opts.SyncOnly || r.ReloadCmd == "" {
		return nil
	}
	return r.reload(ctx)
}

// reload runs reload_cmd unconditionally.
func (r *Resource) reload(ctx context.Context) error {
	cmd, err := r.reloadTpl.expand(r.Dest, r.Dest)
	if err != nil {
		return r.errorf("reload_cmd: %w", err)
	}
	out, err := runCmdEnv(ctx, "reload_cmd", cmd, cmdEnv(r.opts.CmdEnvClean, r.Dest, r.Dest), r.ReloadCmdTimeout)
	if err != nil {
		return r.errorf("%w", err)
	}
	logCmdOutput(r.log, "reload_cmd", out)
	r.Reloaded()
	return nil
}

// Restore puts back the destination the last commit replaced (bytes, mode
// and owner; a destination that did not exist is removed), without running
// check_cmd or reload_cmd: the daemon restores every resource that shares a
// failed reload_cmd, then runs the command once. It returns an error
// wrapping ErrNoRollback when there is nothing to restore; a restore is
// done at most once per commit.
func (r *Resource) Restore() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.prev == nil {
		return r.errorf("rollback: %w", ErrNoRollback)
	}
	st := r.prev.st
	if st.exists {
		want := target{mode: st.mode, uid: st.uid, gid: st.gid}
		stage, err := writeStage(r.Dest, st.data, want, true)
		if err != nil {
			return r.errorf("rollback: %w", err)
		}
		ip := inPlace{removeStage: true}
		if cur, err := readDest(r.Dest); err == nil {
			ip.old = &cur
		}
		renamed, err := moveIntoPlace(stage, r.Dest, st.data, want, ip)
		if !renamed {
			os.Remove(stage)
		}
		if err != nil {
			return r.errorf("rollback: %w", err)
		}
	} else if err := os.Remove(r.Dest); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return r.errorf("rollback: %w", err)
	}
	r.syncDir()
	r.prev = nil
	r.log.Warn("rolled back to the previous file")
	return nil
}

// owedPath is the file recording that the destination's reload_cmd is owed:
// ".<base>.reload-owed" beside the destination (base sanitized as for
// stage files). Its content is the destination's path, for whoever finds it.
func (r *Resource) owedPath() string { return stagePrefix(r.Dest) + ".reload-owed" }

// oweReload records, durably, that reload_cmd is owed. What counts is the
// record's name, made durable by the directory fsync of the commit that
// follows (its content, for a reader, is not fsynced: that would cost a
// disk flush per commit).
func (r *Resource) oweReload() error {
	p := r.owedPath()
	f, err := openRaw(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("record the owed reload: %w", err)
	}
	err = f.write([]byte(r.Dest + "\n"))
	if cerr := f.close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(p)
		return fmt.Errorf("record the owed reload: %w", err)
	}
	return nil
}

// ReloadOwed reports whether a reload_cmd of the destination is owed: a
// commit put the file in place but no reload of it has succeeded since
// (confit was killed in between, or the reload failed). The daemon runs
// owed reloads at start. It is false when no reload_cmd would run.
func (r *Resource) ReloadOwed() bool {
	if r.ReloadCommand() == "" {
		return false
	}
	_, err := os.Lstat(r.owedPath())
	return err == nil
}

// Reloaded clears the owed reload: the daemon calls it for every resource a
// shared reload_cmd reloaded (Reload clears the resource it ran for).
func (r *Resource) Reloaded() {
	if err := os.Remove(r.owedPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		r.log.Warn("clear the owed reload record", "err", err)
	}
}

// ReloadCommand returns reload_cmd as it runs (placeholders expanded), or
// "" when none would run. Resources with the same command can share one run.
// A command that reads the destination from the environment (CONFIT_DEST,
// also what {{.dest}} becomes for a path that needs quoting) is followed by
// a NUL and the destination, so it is shared only by that destination.
func (r *Resource) ReloadCommand() string {
	if r.opts.Noop || r.opts.SyncOnly || r.ReloadCmd == "" {
		return ""
	}
	cmd, err := r.reloadTpl.expand(r.Dest, r.Dest)
	if err != nil {
		return r.ReloadCmd
	}
	if strings.Contains(cmd, "CONFIT_") {
		return cmd + "\x00" + r.Dest
	}
	return cmd
}

// errorf returns an error prefixed with the resource's name.
func (r *Resource) errorf(format string, args ...any) error {
	return fmt.Errorf("resource %s: "+format, append([]any{r.Name}, args...)...)
}

// target is the mode and owner the destination must end up with.
func (r *Resource) target(cur fileState) target {
	t := target{mode: 0o644, uid: r.UID, gid: r.GID}
	switch {
	case r.ModeSet:
		t.mode = r.Mode
	case r.decrypts.Load():
		t.mode = secretMode // secret.go
	case cur.exists:
		t.mode = cur.mode
	}
	if cur.exists {
		if t.uid < 0 {
			t.uid = cur.uid
		}
		if t.gid < 0 {
			t.gid = cur.gid
		}
	}
	return t
}

// syncDir fsyncs the destination's directory after a commit. The file is
// in place either way, so a failure is logged, not returned.
func (r *Resource) syncDir() {
	if err := syncDir(filepath.Dir(r.Dest)); err != nil {
		r.log.Warn("fsync directory failed", "err", err)
	}
}
