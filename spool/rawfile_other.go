//go:build !linux

package spool

import (
	"io"
	"io/fs"
	"os"
	"time"
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

func (f *rawFile) stat() (size int64, mtime time.Time, mode fs.FileMode, err error) {
	fi, err := f.f.Stat()
	if err != nil {
		return 0, time.Time{}, 0, err
	}
	return fi.Size(), fi.ModTime(), fi.Mode().Type(), nil
}

func (f *rawFile) seek(off int64) { _, _ = f.f.Seek(off, io.SeekStart) }

func (f *rawFile) Read(p []byte) (int, error) { return f.f.Read(p) }

func (f *rawFile) Close() error { return f.f.Close() }
