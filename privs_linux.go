package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// setEGID sets the effective group ID alone; the saved set-group-ID is
// kept. Go applies it to every thread of the process (since Go 1.16).
func setEGID(gid int) error { return syscall.Setresgid(-1, gid, -1) }

// becomeUser sets the supplementary groups, then the real, effective and
// saved group and user IDs: there is no way back to root. Go applies each
// to every thread of the process (since Go 1.16).
func becomeUser(uid, gid int, groups []int) error {
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setresgid(gid, gid, gid); err != nil {
		return fmt.Errorf("setresgid: %w", err)
	}
	if err := syscall.Setresuid(uid, uid, uid); err != nil {
		return fmt.Errorf("setresuid: %w", err)
	}
	if os.Geteuid() != uid || os.Getegid() != gid {
		return errors.New("the user and group IDs did not change")
	}
	return nil
}
