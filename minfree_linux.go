package main

import (
	"errors"
	"path/filepath"
	"syscall"
)

// freeSpace returns the octets available to unprivileged users on the file
// system of dir, or of its nearest existing parent when dir does not exist
// yet (the first enqueue creates the spool).
func freeSpace(dir string) (int64, error) {
	dir = filepath.Clean(dir)
	for {
		var st syscall.Statfs_t
		err := syscall.Statfs(dir, &st)
		if err == nil {
			return int64(st.Bavail) * int64(st.Bsize), nil
		}
		parent := filepath.Dir(dir)
		if !errors.Is(err, syscall.ENOENT) || parent == dir {
			return 0, err
		}
		dir = parent
	}
}
