package main

import (
	"errors"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/mxflush/mxflush/report"
	"github.com/mxflush/mxflush/spool"
)

// exNoPerm is sysexits' EX_NOPERM: the user running the command lacks the
// rights it needs (the spool belongs to another user).
const exNoPerm = 77

// asSpoolOwner runs the rest of the process as the spool's owner, before
// flush and the queue commands open anything in the spool; what says what
// the command does, for the refusal ("listing the queue").
//
// The spool's owner is the owner of the spool directory. When the
// effective user is that owner, nothing changes. Root switches to the
// owner for good: its supplementary groups become the owner's primary
// group and maildrop/'s group (so pickup can read the files submitters
// left there, mode 0640), then its group IDs and user IDs (real,
// effective and saved) become the owner's. From then on a symlink the
// owner planted (at lock, journal, bad/, a queue file) reaches only what
// the owner could reach anyway. What root read before the switch (the
// config file, --routes, --auth-file, --tls-ca) stays read as root; what
// is written after it (the spool, --metrics-file) is written as the owner.
// Any other user gets exit 77 with a message saying whose rights are
// needed. A missing spool exits 66 (EX_NOINPUT) naming it: only spool
// init (and enqueue by its future owner) creates one.
func asSpoolOwner(g *Globals, what string) error {
	fi, err := os.Stat(g.Spool)
	if errors.Is(err, fs.ErrNotExist) {
		return exitf(exNoInput, "%v", &spool.MissingError{Path: filepath.Clean(g.Spool)})
	} else if err != nil {
		return exitf(report.ExIOErr, "spool: %v", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	uid := int(st.Uid)
	euid := os.Geteuid()
	if uid == euid {
		return nil
	}
	name := strconv.Itoa(uid)
	u, lerr := user.LookupId(name)
	if lerr == nil {
		name = u.Username + " (uid " + name + ")"
	} else {
		name = "uid " + name
	}
	if euid != 0 {
		return exitf(exNoPerm, "%s needs the rights of the spool's owner: %s belongs to %s; run it as that user or as root", what, g.Spool, name)
	}
	gid := int(st.Gid)
	if lerr == nil {
		if n, err := strconv.Atoi(u.Gid); err == nil {
			gid = n
		}
	}
	groups := []int{gid}
	if mfi, err := os.Lstat(filepath.Join(g.Spool, spool.DirMaildrop)); err == nil && mfi.IsDir() {
		if mst, ok := mfi.Sys().(*syscall.Stat_t); ok && int(mst.Gid) != gid {
			groups = append(groups, int(mst.Gid))
		}
	}
	if err := becomeUser(uid, gid, groups); err != nil {
		return exitf(exNoPerm, "%s as root on a spool owned by %s: cannot switch to that user: %v", what, name, err)
	}
	return nil
}

// useSpool is spool.Open or spool.OpenReadOnly with their errors as exit
// codes: 66 for a missing directory, 73 for one that cannot be used.
func useSpool(g *Globals, write bool) (*spool.Spool, error) {
	open := spool.OpenReadOnly
	if write {
		open = spool.Open
	}
	sp, err := open(g.Spool)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, exitf(exNoInput, "%v", err)
	} else if err != nil {
		return nil, exitf(report.ExCantCreat, "%v", err)
	}
	return sp, nil
}
