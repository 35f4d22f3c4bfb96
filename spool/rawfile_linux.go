package spool

import (
	"io"
	"io/fs"
	"syscall"
	"time"
)

// rawFile is a regular file opened read-only and read with pread(2) from an
// offset of its own. Opening one costs openat(2) alone: os.Open adds four
// fcntl(2) calls and a failed netpoll registration, which on a delivered
// message were a third of its system calls (scan and delivery each open the
// file once). It is used by one goroutine at a time.
type rawFile struct {
	fd   int // -1 once closed
	off  int64
	path string // for errors
}

// openRaw opens path read-only with O_CLOEXEC and the extra flags
// (O_NOFOLLOW, O_NONBLOCK: see openSpoolFile). Errors are *fs.PathError,
// as from os.Open.
func openRaw(path string, flags int) (*rawFile, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC|flags, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return &rawFile{fd: fd, path: path}, nil
	}
}

// stat returns the file's size, modification time, type and identity.
func (f *rawFile) stat() (fileStat, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(f.fd, &st); err != nil {
		return fileStat{}, &fs.PathError{Op: "stat", Path: f.path, Err: err}
	}
	var mode fs.FileMode
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFREG:
	case syscall.S_IFDIR:
		mode = fs.ModeDir
	case syscall.S_IFLNK:
		mode = fs.ModeSymlink
	case syscall.S_IFIFO:
		mode = fs.ModeNamedPipe
	case syscall.S_IFSOCK:
		mode = fs.ModeSocket
	default:
		mode = fs.ModeDevice
	}
	return fileStat{size: st.Size, mtime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec), ctime: time.Unix(st.Ctim.Sec, st.Ctim.Nsec),
		mode: mode, id: fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}}, nil
}

// seek sets the offset of the next Read (from the start of the file).
func (f *rawFile) seek(off int64) { f.off = off }

func (f *rawFile) Read(p []byte) (int, error) {
	if f.fd < 0 {
		return 0, fs.ErrClosed
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, err := syscall.Pread(f.fd, p, f.off)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, &fs.PathError{Op: "read", Path: f.path, Err: err}
		}
		if n == 0 {
			return 0, io.EOF
		}
		f.off += int64(n)
		return n, nil
	}
}

// Close closes the descriptor; a second Close returns nil.
func (f *rawFile) Close() error {
	if f.fd < 0 {
		return nil
	}
	err := syscall.Close(f.fd)
	f.fd = -1
	if err != nil {
		return &fs.PathError{Op: "close", Path: f.path, Err: err}
	}
	return nil
}
