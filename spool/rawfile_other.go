//go:build !linux

package spool

import (
	"io"
	"os"
	"syscall"
)

// rawFile is, outside Linux, an *os.File with the same small interface as
// the Linux version (see rawfile_linux.go).
type rawFile struct{ f *os.File }

func openRaw(path string, flags int) (*rawFile, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|flags, 0)
	if err != nil {
		return nil, err
	}
	return &rawFile{f: f}, nil
}

func (f *rawFile) stat() (fileStat, error) {
	fi, err := f.f.Stat()
	if err != nil {
		return fileStat{}, err
	}
	st := fileStat{size: fi.Size(), mtime: fi.ModTime(), mode: fi.Mode().Type()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.id = fileID{dev: uint64(sys.Dev), ino: uint64(sys.Ino)}
	}
	return st, nil
}

func (f *rawFile) seek(off int64) { _, _ = f.f.Seek(off, io.SeekStart) }

func (f *rawFile) Read(p []byte) (int, error) { return f.f.Read(p) }

func (f *rawFile) Close() error { return f.f.Close() }
