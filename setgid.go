package main

import (
	"fmt"
	"os"

	"github.com/mxflush/mxflush/report"
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

// capLimits keeps a setgid run's submission within the limits of the
// system's config file (sysConfig, the default path, whatever --config or
// MXFLUSH_CONFIG say) or, where it sets none, the defaults: the caller may
// tighten --max-message-size and --min-free, never loosen them. The disk
// reserve exists so that local users cannot fill the spool's file system
// under the flush's state writes (as Postfix's queue_minfree); a reserve
// the caller could set to 0 would not do that. Without a setgid group
// (nil) it does nothing: the caller is the spool's owner, or root.
func (s *setgidGroup) capLimits(g *Globals, sysConfig string) error {
	if s == nil {
		return nil
	}
	fc, err := loadConfig(sysConfig, false)
	if err != nil {
		return err
	}
	size := func(key string, def byteSize) (byteSize, error) {
		v, ok := fc.values[key]
		if !ok {
			return def, nil
		}
		switch v := v.(type) {
		case string:
			return parseByteSize(v)
		case float64:
			if v >= 0 && v == float64(int64(v)) {
				return byteSize(v), nil
			}
		}
		return 0, fmt.Errorf("config file %s: key %q: want octets or a size such as \"10M\"", sysConfig, key)
	}
	maxSize, err := size("max_message_size", 10<<20)
	if err != nil {
		return exitf(report.ExConfig, "%v", err)
	}
	reserve := 2 * maxSize
	if reserve <= 0 {
		reserve = 20 << 20
	}
	if reserve, err = size("min_free", reserve); err != nil {
		return exitf(report.ExConfig, "%v", err)
	}
	if maxSize > 0 && (g.MaxMessageSize == 0 || g.MaxMessageSize > maxSize) {
		g.MaxMessageSize = maxSize
	}
	if g.MinFree == nil || *g.MinFree < reserve {
		g.MinFree = &reserve
	}
	return nil
}
