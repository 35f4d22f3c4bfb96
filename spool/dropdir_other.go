//go:build !linux

package spool

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// dropDir is the maildrop directory Drop works in; outside Linux (no
// O_PATH) by its path.
type dropDir struct{ path string }

func openDropDir(path string) (*dropDir, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil, &fs.PathError{Op: "open", Path: path, Err: errMaildropSymlink}
	}
	if !fi.IsDir() {
		return nil, &fs.PathError{Op: "open", Path: path, Err: syscall.ENOTDIR}
	}
	return &dropDir{path: path}, nil
}

func (d *dropDir) gid() (uint32, error) {
	fi, err := os.Stat(d.path)
	if err != nil {
		return 0, err
	}
	return fi.Sys().(*syscall.Stat_t).Gid, nil
}

func (d *dropDir) create(name string, mode uint32) (int, error) {
	p := filepath.Join(d.path, name)
	fd, err := syscall.Open(p, syscall.O_RDWR|syscall.O_CREAT|syscall.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, mode)
	if err != nil {
		return -1, &fs.PathError{Op: "create", Path: p, Err: err}
	}
	return fd, nil
}

func (d *dropDir) rename(old, new string) error {
	return os.Rename(filepath.Join(d.path, old), filepath.Join(d.path, new))
}

func (d *dropDir) remove(name string) error { return os.Remove(filepath.Join(d.path, name)) }

func (d *dropDir) close() {}

// freeOn does not measure free space here: the reserve is not checked.
func freeOn(*os.File) (int64, bool, error) { return 0, false, nil }
