package resource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/pmezard/go-difflib/difflib"
)

// ErrNoRollback is returned by Rollback when no Apply has committed a file
// since the resource was loaded or last rolled back.
var ErrNoRollback = errors.New("nothing to roll back")

// ErrWrite marks a failure to write a stage file or move it into place:
// the file system is full, read-only or otherwise refuses the write. The
// destination is as it was; the daemon retries such a commit sooner than
// other failures. Its message names the stage file by its pattern
// (".NAME…"), never by its random name, so that two attempts failing the
// same way fail with the same message.
var ErrWrite = errors.New("write failed")

// writeError is an error writing or committing the stage file stage,
// shown with the stage file's pattern in place of its name.
type writeError struct {
	err          error
	stage, shown string
}

func (e *writeError) Error() string { return strings.ReplaceAll(e.err.Error(), e.stage, e.shown) }
func (e *writeError) Unwrap() error { return e.err }

// Is makes errors.Is(err, ErrWrite) true.
func (e *writeError) Is(target error) bool { return target == ErrWrite }

// asWriteError wraps err, from writing or committing a stage file of dest
// (stage: its name, "" when not known), as a writeError.
func asWriteError(err error, dest, stage string) error {
	if err == nil {
		return nil
	}
	shown := stagePrefix(dest) + "…"
	if stage == "" {
		// The name is in the error (a *fs.PathError); find it.
		var pe *fs.PathError
		if errors.As(err, &pe) && strings.HasPrefix(pe.Path, stagePrefix(dest)) {
			stage = pe.Path
		} else {
			return &writeError{err: err, stage: "\x00", shown: ""}
		}
	}
	return &writeError{err: err, stage: stage, shown: shown}
}

// ApplyOptions change what Apply does after a commit.
type ApplyOptions struct {
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
// once, for commits made with ApplyOptions.DeferDirSync. A failure is
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

// Result says what Sync or Apply did.
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
	// Reads is what the template read, in absolute keys; set even when
	// rendering failed part way, so a watcher can still track the keys.
	Reads Reads
	// Rendered is the rendered output (nil when rendering failed).
	Rendered []byte
}

// previous is what a committing Apply replaced, for Rollback.
type previous struct {
	st fileState
}

// fileState is a destination as found on disk.
type fileState struct {
	exists   bool
	data     []byte
	mode     os.FileMode
	uid, gid int
}

// target is the mode and owner a destination must have; -1 ids mean
// "whatever a new file gets".
type target struct {
	mode     os.FileMode
	uid, gid int
}

// rename is os.Rename, replaceable by tests to simulate EXDEV and EBUSY.
var rename = os.Rename

// diffMu serialises writes to Options.Diff across resources.
var diffMu sync.Mutex

// modeBits are the mode bits compared and set.
const modeBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// Sync renders the template from kvs (absolute keys, at least everything
// under r.Keys) and, when the output differs from the destination (bytes,
// mode, uid, gid), stages, checks, commits and reloads. It is Apply without
// options. An error after the commit (reload_cmd failed) comes with
// Result.Written set: the new file is in place.
func (r *Resource) Sync(ctx context.Context, kvs map[string]string) (Result, error) {
	return r.Apply(ctx, kvs, ApplyOptions{})
}

// Apply runs the pipeline: render in memory; compare with the destination
// (an unchanged destination costs one stat and one read, and nothing runs);
// write a stage file ".<base><random>" next to the destination with the
// final mode and owner, fsync it; run check_cmd on it (unless SyncOnly);
// rename it over the destination (or write in place when rename fails with
// EBUSY or EXDEV); fsync the directory; run reload_cmd (unless SyncOnly or
// o.SkipReload).
//
// A render or check failure leaves the destination byte-for-byte untouched
// and removes the stage file (unless KeepStageFile). With Options.Noop it
// only compares, writes a unified diff to Options.Diff and returns
// Result{Changed: true, Noop: true}.
//
// A committing Apply remembers the destination it replaced, for Rollback.
func (r *Resource) Apply(ctx context.Context, kvs map[string]string, o ApplyOptions) (Result, error) {
	out, reads, err := r.Render(kvs)
	if err != nil {
		return Result{Reads: reads, Noop: r.opts.Noop}, err
	}
	res, err := r.Commit(ctx, out, o)
	res.Reads = reads
	return res, err
}

// Commit is Apply after the render: it compares out with the destination
// and, when they differ, stages, checks, commits and reloads it. The daemon
// renders against its mirror of the store and commits outside of it.
func (r *Resource) Commit(ctx context.Context, out []byte, o ApplyOptions) (Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, res, err := r.stage(ctx, out, true)
	if st == nil || err != nil {
		return res, err
	}
	return st.commit(ctx, o)
}

// Staged is an output written to its stage file but not yet fsynced nor
// in place: Commit split in two for a caller that commits a batch. Writing
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
// on error. A non-nil Staged must be committed (Staged.Commit, which
// removes the stage file if it fails), and r must not be committed
// otherwise in the meantime; neither it nor the Result returned with it
// keeps out.
func (r *Resource) Stage(ctx context.Context, out []byte) (*Staged, Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stage(ctx, out, false)
}

// Commit is the second half of Commit: it fsyncs the stage file, runs
// check_cmd on it, moves it into place and reloads as o says.
func (s *Staged) Commit(ctx context.Context, o ApplyOptions) (Result, error) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if err := syncFile(s.stage); err != nil {
		os.Remove(s.stage)
		return s.res, s.r.errorf("%w", asWriteError(fmt.Errorf("fsync stage file: %w", err), s.r.Dest, s.stage))
	}
	return s.commit(ctx, o)
}

// stage is Stage; with sync the stage file is fsynced too. r.mu is held.
func (r *Resource) stage(ctx context.Context, out []byte, sync bool) (*Staged, Result, error) {
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

	stage, err := writeStage(r.Dest, out, want, sync)
	if errors.Is(err, fs.ErrNotExist) {
		// Like consul-template, create a missing destination directory.
		if err := os.MkdirAll(filepath.Dir(r.Dest), 0o755); err != nil {
			return nil, res, r.errorf("create destination directory: %w", asWriteError(err, r.Dest, ""))
		}
		stage, err = writeStage(r.Dest, out, want, sync)
	}
	if err != nil {
		return nil, res, r.errorf("%w", asWriteError(err, r.Dest, ""))
	}
	st := &Staged{r: r, stage: stage, cur: cur, want: want}
	if sync {
		st.out = out
	} else {
		// A batch holds every staged resource until it commits them: not
		// its output too. Only a commit that cannot rename reads it back.
		res.Rendered = nil
	}
	st.res = res
	return st, res, nil
}

// commit runs check_cmd on the fsynced stage file, moves it into place and
// reloads as o says. r.mu is held.
func (s *Staged) commit(ctx context.Context, o ApplyOptions) (Result, error) {
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
	renamed, err := commit(stage, r.Dest, out, want, inPlace{
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
// The daemon calls it once for resources whose Apply skipped the reload.
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
	f, err := openFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("record the owed reload: %w", err)
	}
	_, err = f.WriteString(r.Dest + "\n")
	if cerr := f.Close(); err == nil {
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

// Rollback puts back the destination the last committing Apply replaced
// (bytes, mode and owner; a destination that did not exist is removed),
// without running check_cmd, then runs reload_cmd as Reload does. It
// returns ErrNoRollback when there is nothing to restore; a rollback is
// done at most once per commit.
func (r *Resource) Rollback(ctx context.Context) error {
	if err := r.Restore(); err != nil {
		return err
	}
	return r.Reload(ctx)
}

// Restore is Rollback without the reload: the daemon restores every
// resource that shares a failed reload_cmd, then runs the command once.
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
		renamed, err := commit(stage, r.Dest, st.data, want, ip)
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

// readDest reads the destination; a missing one is not an error.
func readDest(dest string) (fileState, error) {
	fi, err := os.Stat(dest)
	if errors.Is(err, fs.ErrNotExist) {
		return fileState{}, nil
	}
	if err != nil {
		return fileState{}, err
	}
	if !fi.Mode().IsRegular() {
		return fileState{}, fmt.Errorf("destination %s is not a regular file", dest)
	}
	data, err := readFile(dest)
	if err != nil {
		return fileState{}, err
	}
	st := fileState{exists: true, data: data, mode: fi.Mode() & modeBits, uid: -1, gid: -1}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.uid, st.gid = int(sys.Uid), int(sys.Gid)
	}
	return st, nil
}

// stagePrefix is the path of dest's stage files without their random
// digits: "." and the destination's base name in dest's directory, each
// byte that is not shellSafe replaced by "_", so that {{.src}} needs no
// quoting when the directory needs none.
func stagePrefix(dest string) string {
	dir, base := filepath.Split(dest)
	return filepath.Join(dir, "."+stageBase(base))
}

// stageBase is base with every byte that is not shellSafe replaced by "_".
func stageBase(base string) string {
	b := []byte(base)
	for i, c := range b {
		if !shellSafe(string(c)) {
			b[i] = '_'
		}
	}
	return string(b)
}

// writeStage writes data to a new stage file ".<base><random>" in dest's
// directory, created with O_EXCL, owned and moded as t says regardless of
// the umask, and fsynced if sync is set (else the caller fsyncs it). It
// returns the stage file's path; on error no stage file is left.
func writeStage(dest string, data []byte, t target, sync bool) (_ string, err error) {
	prefix := stagePrefix(dest)
	var f *os.File
	for range 100 {
		name := prefix + strconv.FormatUint(uint64(rand.Uint32()), 10)
		f, err = openFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, t.mode.Perm())
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		return "", fmt.Errorf("create stage file: %w", err)
	}
	name := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(name)
		}
	}()
	if err := setOwnerMode(f, t); err != nil {
		return "", fmt.Errorf("stage file %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		return "", fmt.Errorf("write stage file: %w", err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			return "", fmt.Errorf("fsync stage file: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("close stage file: %w", err)
	}
	return name, nil
}

// syncFile fsyncs the file at name.
func syncFile(name string) error {
	f, err := openFile(name, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// setOwnerMode chowns f when t asks for other ids than it has, then chmods
// it (in that order: a chown may clear the setuid and setgid bits).
func setOwnerMode(f *os.File, t target) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	uid, gid := -1, -1
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		if t.uid >= 0 && int(sys.Uid) != t.uid {
			uid = t.uid
		}
		if t.gid >= 0 && int(sys.Gid) != t.gid {
			gid = t.gid
		}
	}
	if uid >= 0 || gid >= 0 {
		if err := f.Chown(uid, gid); err != nil {
			return err
		}
	}
	return f.Chmod(t.mode)
}

// inPlace says what commit does when it must write the destination in
// place.
type inPlace struct {
	// old is the destination as it was, written back (best effort) when
	// the in-place write fails; nil leaves a failed write as it is.
	old *fileState
	// removeStage removes the stage file first, freeing its space.
	removeStage bool
	// before runs just before the destination is truncated.
	before func()
}

// commit moves stage over dest. When rename fails with EBUSY (dest is a
// mount point, as a bind-mounted file in a container) or EXDEV, it writes
// data (nil: the stage file's content) into dest in place instead (not
// atomic) and reports renamed false:
// the stage file is still there unless ip.removeStage. When that write
// fails, it puts ip.old back, best effort, and says in the error whether
// that worked. The caller fsyncs the directory.
func commit(stage, dest string, data []byte, t target, ip inPlace) (renamed bool, err error) {
	err = rename(stage, dest)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, syscall.EBUSY), errors.Is(err, syscall.EXDEV):
	default:
		return false, fmt.Errorf("commit: %w", err)
	}
	if data == nil {
		if data, err = readFile(stage); err != nil {
			return false, fmt.Errorf("commit: rename failed, then reading the stage file: %w", err)
		}
	}
	if ip.removeStage {
		os.Remove(stage)
	}
	if ip.before != nil {
		ip.before()
	}
	werr := writeInPlaceFile(dest, data, t)
	if werr == nil {
		return false, nil
	}
	werr = fmt.Errorf("write %s in place (rename failed): %w", dest, werr)
	if ip.old == nil {
		return false, werr
	}
	if rerr := restoreInPlace(dest, *ip.old); rerr != nil {
		return false, fmt.Errorf("%w; restoring the previous content failed too, %s may be truncated: %v", werr, dest, rerr)
	}
	return false, fmt.Errorf("%w; %w", werr, errWrittenBack)
}

// errWrittenBack is wrapped in commit's error when a failed in-place write
// was undone: the destination is as it was.
var errWrittenBack = errors.New("the previous content was written back")

// restoreInPlace puts old back in dest after a failed in-place write: its
// bytes, mode and owner, or no file when there was none.
func restoreInPlace(dest string, old fileState) error {
	if !old.exists {
		if err := os.Remove(dest); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	return writeInPlaceFile(dest, old.data, target{mode: old.mode, uid: old.uid, gid: old.gid})
}

// writeInPlaceFile is writeInPlace, replaceable by tests to simulate a
// failing write (ENOSPC).
var writeInPlaceFile = writeInPlace

// writeInPlace truncates dest and writes data into it, fsyncs, then sets
// the owner and mode.
func writeInPlace(dest string, data []byte, t target) error {
	f, err := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, t.mode.Perm())
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := setOwnerMode(f, t); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncDir fsyncs the destination's directory after a commit. The file is
// in place either way, so a failure is logged, not returned.
func (r *Resource) syncDir() {
	if err := syncDir(filepath.Dir(r.Dest)); err != nil {
		r.log.Warn("fsync directory failed", "err", err)
	}
}

// syncDir fsyncs a directory so a rename in it is durable. File systems
// that cannot fsync a directory (EINVAL) are not an error.
func syncDir(dir string) error {
	d, err := openFile(dir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// writeDiff writes a unified diff from the destination to out to
// Options.Diff, labelled with the destination path ("/dev/null" for a
// missing one), plus a line for a mode or owner change.
func (r *Resource) writeDiff(cur fileState, out []byte, want target) error {
	if r.opts.Diff == nil {
		return nil
	}
	from := r.Dest
	if !cur.exists {
		from = "/dev/null"
	}
	a, b := splitLines(cur.data), splitLines(out)
	var text string
	if hidden := (cur.exists && cur.mode&0o004 == 0) || want.mode&0o004 == 0; hidden && !r.opts.NoopShowSecrets {
		// A file others may not read may hold secrets: say how much
		// changes, not what.
		mode := want.mode
		if cur.exists && cur.mode&0o004 == 0 {
			mode = cur.mode
		}
		removed, added := countChanges(a, b)
		text = fmt.Sprintf("# %s: %s removed, %s added (content not shown: mode %04o, not readable by others; -noop-show-secrets shows it)\n",
			r.Dest, plural(removed, "line"), plural(added, "line"), unixMode(mode))
	} else {
		var err error
		text, err = difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
			A:        a,
			B:        b,
			FromFile: from,
			ToFile:   r.Dest,
			Context:  3,
		})
		if err != nil {
			return err
		}
	}
	if cur.exists {
		if cur.mode != want.mode {
			text += fmt.Sprintf("# %s: mode %04o -> %04o\n", r.Dest, unixMode(cur.mode), unixMode(want.mode))
		}
		if cur.uid != want.uid || cur.gid != want.gid {
			text += fmt.Sprintf("# %s: owner %d:%d -> %d:%d\n", r.Dest, cur.uid, cur.gid, want.uid, want.gid)
		}
	}
	diffMu.Lock()
	defer diffMu.Unlock()
	_, err := r.opts.Diff.Write([]byte(text))
	return err
}

// countChanges returns how many lines a diff from a to b removes and adds.
func countChanges(a, b []string) (removed, added int) {
	for _, op := range difflib.NewMatcher(a, b).GetOpCodes() {
		switch op.Tag {
		case 'r':
			removed += op.I2 - op.I1
			added += op.J2 - op.J1
		case 'd':
			removed += op.I2 - op.I1
		case 'i':
			added += op.J2 - op.J1
		}
	}
	return removed, added
}

// plural is "1 line", "2 lines".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// splitLines splits b after each newline for difflib. A last line without
// a newline is marked as diff(1) does.
func splitLines(b []byte) []string {
	lines := strings.SplitAfter(string(b), "\n")
	if last := lines[len(lines)-1]; last == "" {
		lines = lines[:len(lines)-1]
	} else {
		lines[len(lines)-1] = last + "\n\\ No newline at end of file\n"
	}
	return lines
}

// unixMode converts an os.FileMode to the octal number chmod(1) takes.
func unixMode(m os.FileMode) uint32 {
	n := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		n |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		n |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		n |= 0o1000
	}
	return n
}
