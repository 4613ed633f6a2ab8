package resource

// Writing a destination: its stage file, the move into place (rename, or
// a write in place where rename cannot), and the fsyncs that make it
// durable.

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

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

// modeBits are the mode bits compared and set.
const modeBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// rename is renameFile, replaceable by tests to simulate EXDEV and EBUSY.
var rename = renameFile

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
	data, err := readFileSize(dest, fi.Size())
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
func writeStage(dest string, data []byte, t target, fsync bool) (_ string, err error) {
	prefix := stagePrefix(dest)
	var f rawFile
	for range 100 {
		f, err = openRaw(prefix+strconv.FormatUint(uint64(rand.Uint32()), 10), os.O_RDWR|os.O_CREATE|os.O_EXCL, t.mode.Perm())
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		return "", fmt.Errorf("create stage file: %w", err)
	}
	name := f.name
	defer func() {
		if err != nil {
			f.close()
			os.Remove(name)
		}
	}()
	if err := setOwnerMode(f, t); err != nil {
		return "", fmt.Errorf("stage file %s: %w", name, err)
	}
	if err := f.write(data); err != nil {
		return "", fmt.Errorf("write stage file: %w", err)
	}
	if fsync {
		if err := f.sync(); err != nil {
			return "", fmt.Errorf("fsync stage file: %w", err)
		}
	}
	if err := f.close(); err != nil {
		return "", fmt.Errorf("close stage file: %w", err)
	}
	return name, nil
}

// syncFile fsyncs the file at name.
func syncFile(name string) error {
	f, err := openRaw(name, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	if err := f.sync(); err != nil {
		f.close()
		return err
	}
	return f.close()
}

// setOwnerMode chowns f when t asks for other ids than it has, then chmods
// it (in that order: a chown may clear the setuid and setgid bits) unless
// it has t's mode already (a file just created with t's permissions and a
// umask and default ACL that masked none of them).
func setOwnerMode(f rawFile, t target) error {
	st, err := f.stat()
	if err != nil {
		return err
	}
	uid, gid := -1, -1
	if t.uid >= 0 && int(st.Uid) != t.uid {
		uid = t.uid
	}
	if t.gid >= 0 && int(st.Gid) != t.gid {
		gid = t.gid
	}
	if uid >= 0 || gid >= 0 {
		if err := f.chown(uid, gid); err != nil {
			return err
		}
	} else if fileMode(st.Mode) == t.mode&modeBits {
		return nil
	}
	return f.chmod(t.mode)
}

// inPlace says what moveIntoPlace does when it must write the destination in
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

// moveIntoPlace moves stage over dest. When rename fails with EBUSY (dest is a
// mount point, as a bind-mounted file in a container) or EXDEV, it writes
// data (nil: the stage file's content) into dest in place instead (not
// atomic) and reports renamed false:
// the stage file is still there unless ip.removeStage. When that write
// fails, it puts ip.old back, best effort, and says in the error whether
// that worked. The caller fsyncs the directory.
func moveIntoPlace(stage, dest string, data []byte, t target, ip inPlace) (renamed bool, err error) {
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

// errWrittenBack is wrapped in moveIntoPlace's error when a failed in-place write
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
	f, err := openRaw(dest, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, t.mode.Perm())
	if err != nil {
		return err
	}
	if err := f.write(data); err != nil {
		f.close()
		return err
	}
	if err := f.sync(); err != nil {
		f.close()
		return err
	}
	if err := setOwnerMode(f, t); err != nil {
		f.close()
		return err
	}
	return f.close()
}

// syncDir fsyncs a directory so a rename in it is durable. File systems
// that cannot fsync a directory (EINVAL) are not an error.
func syncDir(dir string) error {
	d, err := openRaw(dir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer d.close()
	if err := d.sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
