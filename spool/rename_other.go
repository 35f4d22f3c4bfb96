//go:build !linux

package spool

import "syscall"

// renameat2 is not available outside Linux: renameNoReplace falls back to
// rename(2).
func renameat2(old, new string) error { return syscall.ENOSYS }
