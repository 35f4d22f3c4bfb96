//go:build !linux

package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// setEGID sets the effective group ID alone (setegid(2) keeps the saved
// set-group-ID on the BSDs).
func setEGID(gid int) error { return syscall.Setegid(gid) }

// becomeUser sets the supplementary groups, then the group and user IDs:
// setgid(2) and setuid(2) run by root set the real, effective and saved
// IDs, so there is no way back to root.
func becomeUser(uid, gid int, groups []int) error {
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("setgid: %w", err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("setuid: %w", err)
	}
	if os.Geteuid() != uid || os.Getegid() != gid {
		return errors.New("the user and group IDs did not change")
	}
	return nil
}
