package resource

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// The commit of a watch-mode change is a dozen system calls on files that
// live a few microseconds; os.File adds to each open an fcntl (to decide
// whether the file can use the network poller), a finalizer and two
// allocations, and os.Rename an lstat. A rawFile is a file descriptor with
// the few operations a commit needs, on the plain system calls, and errors
// shaped as os.File's (*fs.PathError with the operation and path).

// rawFile is an open regular file or directory.
type rawFile struct {
	fd   int
	name string
}

// openRaw opens name with flag (O_CLOEXEC is added) and, for a new file,
// perm.
func openRaw(name string, flag int, perm os.FileMode) (rawFile, error) {
	for {
		fd, err := syscall.Open(name, flag|syscall.O_CLOEXEC, uint32(perm.Perm()))
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return rawFile{fd: -1}, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return rawFile{fd: fd, name: name}, nil
	}
}

func (f rawFile) err(op string, err error) error {
	return &fs.PathError{Op: op, Path: f.name, Err: err}
}

// read reads into b, as read(2): 0 bytes and no error at the end.
func (f rawFile) read(b []byte) (int, error) {
	for {
		n, err := syscall.Read(f.fd, b)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return 0, f.err("read", err)
		}
		return n, nil
	}
}

// write writes all of b.
func (f rawFile) write(b []byte) error {
	for len(b) > 0 {
		n, err := syscall.Write(f.fd, b)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return f.err("write", err)
		}
		if n == 0 {
			return f.err("write", syscall.EIO)
		}
		b = b[n:]
	}
	return nil
}

func (f rawFile) sync() error {
	if err := ignoringEINTR(func() error { return syscall.Fsync(f.fd) }); err != nil {
		return f.err("sync", err)
	}
	return nil
}

func (f rawFile) stat() (syscall.Stat_t, error) {
	var st syscall.Stat_t
	if err := ignoringEINTR(func() error { return syscall.Fstat(f.fd, &st) }); err != nil {
		return st, f.err("stat", err)
	}
	return st, nil
}

func (f rawFile) chmod(m os.FileMode) error {
	if err := ignoringEINTR(func() error { return syscall.Fchmod(f.fd, unixMode(m)) }); err != nil {
		return f.err("chmod", err)
	}
	return nil
}

func (f rawFile) chown(uid, gid int) error {
	if err := ignoringEINTR(func() error { return syscall.Fchown(f.fd, uid, gid) }); err != nil {
		return f.err("chown", err)
	}
	return nil
}

// close closes the descriptor once: a second close is a no-op, as the
// descriptor's number may belong to another file by then. An error from
// close(2) is reported (on NFS it can be the first report of a failed
// write), EINTR included, but the descriptor is gone either way.
func (f *rawFile) close() error {
	if f.fd < 0 {
		return nil
	}
	err := syscall.Close(f.fd)
	f.fd = -1
	if err != nil {
		return f.err("close", err)
	}
	return nil
}

func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// fileMode is the modeBits of a stat(2) st_mode.
func fileMode(u uint32) os.FileMode {
	m := os.FileMode(u & 0o777)
	if u&syscall.S_ISUID != 0 {
		m |= os.ModeSetuid
	}
	if u&syscall.S_ISGID != 0 {
		m |= os.ModeSetgid
	}
	if u&syscall.S_ISVTX != 0 {
		m |= os.ModeSticky
	}
	return m
}

// readFile is os.ReadFile on the plain system calls.
func readFile(name string) ([]byte, error) {
	return readFileSize(name, -1)
}

// readFileSize is readFile for a file whose size the caller has just
// stat'ed (a hint: the file is read to its end whatever its size is by
// then), which saves an fstat; size < 0 asks for the fstat.
func readFileSize(name string, size int64) ([]byte, error) {
	f, err := openRaw(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.close()
	if size < 0 {
		size = 0
		if st, err := f.stat(); err == nil {
			size = st.Size
		}
	}
	data := make([]byte, 0, size+1) // +1: see the end without growing
	for {
		n, err := f.read(data[len(data):cap(data)])
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return data, nil
		}
		data = data[:len(data)+n]
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
	}
}

// renameFile is os.Rename without its lstat of newpath, which only turns
// "newpath is a directory" into EEXIST where rename(2) says EISDIR (a
// commit has checked that the destination is a regular file; a restore
// fails either way), with os.Rename's *os.LinkError.
func renameFile(oldpath, newpath string) error {
	if err := ignoringEINTR(func() error { return syscall.Rename(oldpath, newpath) }); err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}
