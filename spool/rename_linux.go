package spool

import "golang.org/x/sys/unix"

// renameat2 is rename(2) with RENAME_NOREPLACE.
func renameat2(old, new string) error {
	return unix.Renameat2(unix.AT_FDCWD, old, unix.AT_FDCWD, new, unix.RENAME_NOREPLACE)
}
