package main

import (
	"fmt"
	"os"
)

// setgidGroup is the privilege of a binary installed setgid the maildrop
// group (see deposit): the group ID, held as the saved set-group-ID while
// the process runs with the caller's own group.
type setgidGroup struct {
	gid int
}

// dropSetgid runs first in main. When the binary runs setgid (the
// effective group differs from the real one), it sets the effective group
// back to the caller's real group, so that everything the process does
// (reading the config file, an aliases file, the message) is done with the
// caller's own rights; the group stays as the saved set-group-ID, which
// only (*setgidGroup).privileged raises again, around the creation,
// rename and removal of one file in maildrop/. It returns nil when the
// binary is not setgid. Go applies setresgid(2) to every thread of the
// process (since Go 1.16).
//
// The effective group changes with setresgid(-1, gid, -1): the saved
// set-group-ID keeps the group, so it can be raised again.
func dropSetgid() (*setgidGroup, error) {
	rgid, egid := os.Getgid(), os.Getegid()
	if rgid == egid {
		return nil, nil
	}
	if err := setEGID(rgid); err != nil {
		return nil, fmt.Errorf("cannot set the effective group back to the caller's (gid %d): %w", rgid, err)
	}
	return &setgidGroup{gid: egid}, nil
}

// privileged runs fn with the effective group raised to the setgid group,
// then drops it again. With no setgid group (nil), fn runs as it is: the
// caller is root, or the test's user.
func (s *setgidGroup) privileged(fn func() error) error {
	if s == nil {
		return fn()
	}
	rgid := os.Getgid()
	if err := setEGID(s.gid); err != nil {
		return fmt.Errorf("cannot take the maildrop group (gid %d): %w", s.gid, err)
	}
	err := fn()
	if derr := setEGID(rgid); derr != nil {
		// Going on with the group raised would give the caller's later
		// actions the group's rights: stop here.
		fmt.Fprintf(os.Stderr, "mxflush: cannot drop the maildrop group again: %v\n", derr)
		os.Exit(71) // EX_OSERR
	}
	return err
}
