package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"github.com/mxflush/mxflush/report"
	"github.com/mxflush/mxflush/spool"
)

// exNoUser is sysexits' EX_NOUSER: a user or group named on the command
// line does not exist.
const exNoUser = 67

// SpoolCmd groups the commands that manage the spool itself.
type SpoolCmd struct {
	Init SpoolInitCmd `cmd:"" help:"Create the spool, or repair its layout, owners and modes; say what was done."`
}

// SpoolInitCmd is `mxflush spool init`.
type SpoolInitCmd struct {
	Group string `help:"Group of maildrop/, which the binary is installed setgid: its members (through the binary) may drop messages there and do nothing else." default:"mxflush" placeholder:"NAME"`
	Owner string `help:"User who owns the spool and runs flush (default: the spool directory's owner, or the running user for a new spool)." placeholder:"USER"`
}

// Run creates or repairs the spool with spool.Init and prints one line per
// directory (created, fixed or ok). Exit 67 (EX_NOUSER) for an unknown user
// or group, 73 when the layout cannot be made (changing owners needs
// root).
func (c *SpoolInitCmd) Run(g *Globals) error {
	uid, gid := os.Geteuid(), os.Getegid()
	if fi, err := os.Lstat(g.Spool); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return exitf(report.ExCantCreat, "spool: %v", err)
	}
	var u *user.User
	var err error
	if c.Owner != "" {
		if u, err = user.Lookup(c.Owner); err != nil {
			if u, err = user.LookupId(c.Owner); err != nil {
				return exitf(exNoUser, "--owner %s: no such user", c.Owner)
			}
		}
	} else {
		u, _ = user.LookupId(strconv.Itoa(uid))
	}
	if u != nil {
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid) // the owner's primary group
	}
	grp, err := user.LookupGroup(c.Group)
	if err != nil {
		if grp, err = user.LookupGroupId(c.Group); err != nil {
			return exitf(exNoUser, "group %s does not exist: create it (groupadd --system %s) or name another with --group", c.Group, c.Group)
		}
	}
	mgid, _ := strconv.Atoi(grp.Gid)
	lines, err := spool.Init(g.Spool, spool.InitOptions{UID: uid, GID: gid, Group: mgid})
	for _, l := range lines {
		fmt.Fprintln(g.stdout, l)
	}
	if err != nil {
		return exitf(report.ExCantCreat, "%v", err)
	}
	// Say how to install the binary only when this one is not already
	// setgid the maildrop group (install step 2 comes first).
	if exe, err := os.Executable(); err == nil {
		if fi, err := os.Stat(exe); err == nil {
			st, ok := fi.Sys().(*syscall.Stat_t)
			if !ok || fi.Mode()&os.ModeSetgid == 0 || int(st.Gid) != mgid {
				fmt.Fprintf(g.stdout, "maildrop/ takes messages from group %s (gid %d): for every user to submit, install the binary setgid that group: chgrp %s %s && chmod 2755 %s\n", grp.Name, mgid, grp.Name, exe, exe)
			}
		}
	}
	if !strings.Contains(g.Origin, ".") {
		fmt.Fprintf(g.stdout, "warning: this host's name %q is not fully qualified: local names (root, www-data) would become @%s, which no one can answer; set --origin (config key origin) or an alias for them\n", g.Origin, g.Origin)
	}
	return nil
}
