package resource

import (
	"errors"
	"io"
	"os"
	"syscall"
)

// openFile is os.OpenFile for regular files and directories, without the
// attempt os.OpenFile makes on Linux to register every file with the
// network poller (four fcntl calls and a failing epoll_ctl per open; a
// one-shot run opens four files per resource).
func openFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	for {
		fd, err := syscall.Open(name, flag|syscall.O_CLOEXEC, uint32(perm.Perm()))
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: name, Err: err}
		}
		return os.NewFile(uintptr(fd), name), nil
	}
}

// readFile is os.ReadFile through openFile.
func readFile(name string) ([]byte, error) {
	return readFileSize(name, -1)
}

// readFileSize is readFile for a file whose size the caller has just
// stat'ed (a hint: the file is read to its end whatever its size is by
// then), which saves an fstat; size < 0 asks for the fstat.
func readFileSize(name string, size int64) ([]byte, error) {
	f, err := openFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if size < 0 {
		size = 0
		if fi, err := f.Stat(); err == nil {
			size = fi.Size()
		}
	}
	data := make([]byte, 0, size+1) // +1: see EOF without growing
	for {
		n, err := f.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if errors.Is(err, io.EOF) {
			return data, nil
		}
		if err != nil {
			return nil, err
		}
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
	}
}
