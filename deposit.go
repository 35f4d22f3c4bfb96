package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/mxflush/mxflush/addr"
	"github.com/mxflush/mxflush/report"
	"github.com/mxflush/mxflush/spool"
)

// deposit puts one checked message into the spool for enqueue and
// sendmail and returns its ID, or the maildrop file's name.
//
// The spool's owner (the effective user owns the spool directory), or
// anyone when the spool does not exist yet (that user becomes its owner,
// as before maildrop/ existed), enqueues straight into new/. So does root
// on another user's spool that has no maildrop/ (made before it existed),
// after switching to the owner for good (asSpoolOwner). Anyone else,
// root included, only creates one file in SPOOL/maildrop/ (spool.Drop)
// and opens nothing else of the spool: the binary is installed setgid the
// maildrop group, and that group's right is used for that file alone. The
// next flush's pickup checks the file and moves it into new/.
//
// Settings a setgid run takes from its caller: all of them but two. The
// spool path (--spool, MXFLUSH_SPOOL), --config and the flags and
// MXFLUSH_* variables are the caller's, and every file is read with the
// caller's own rights (main drops the group before anything else), so they
// can make it do nothing the caller could not do without the binary,
// except create a file in a maildrop/ of the group; the pickup, run by the
// spool's owner with the owner's configuration, decides what enters the
// queue. --max-message-size and --min-free the caller may only tighten
// (setgidGroup.capLimits): the disk reserve protects the flush's writes
// from local users.
//
// Errors are *exitError wrapping the cause: 65 (EX_DATAERR) for an address
// or message the spool refuses, 75 (EX_TEMPFAIL) for a maildrop/ on a file
// system with less free space than --min-free, 73 (EX_CANTCREAT) for a spool that cannot
// be created or written, or the error from msg (a size limit: nothing is
// left behind then).
func deposit(g *Globals, env spool.Envelope, msg io.Reader) (id string, err error) {
	id, err = depositTo(g, env, msg)
	if err == nil {
		return id, nil
	}
	var ee *exitError
	var ae *addr.Error
	var pe *spool.ParseError
	var le *spool.LowSpaceError
	switch {
	case errors.As(err, &ee):
		return "", err
	case errors.As(err, &le):
		return "", exitf(report.ExTempFail, "%w", err)
	case errors.As(err, &ae), errors.As(err, &pe):
		return "", exitf(report.ExDataErr, "%w", err)
	}
	return "", exitf(report.ExCantCreat, "%w", err)
}

// depositTo is deposit's choice of new/ or maildrop/.
func depositTo(g *Globals, env spool.Envelope, msg io.Reader) (id string, err error) {
	fi, err := os.Stat(g.Spool)
	owner := errors.Is(err, fs.ErrNotExist)
	if err == nil {
		st, ok := fi.Sys().(*syscall.Stat_t)
		owner = ok && int(st.Uid) == os.Geteuid()
	} else if !owner {
		return "", fmt.Errorf("spool: %w", err)
	}
	md := filepath.Join(g.Spool, spool.DirMaildrop)
	if !owner && os.Geteuid() == 0 {
		if _, err := os.Lstat(md); errors.Is(err, fs.ErrNotExist) {
			// A spool made before maildrop/ existed: root becomes its
			// owner, as flush does, rather than lose cron's mail.
			if err := asSpoolOwner(g, "enqueueing"); err != nil {
				return "", err
			}
			owner = true
		}
	}
	if owner {
		sp, err := spool.Create(g.Spool)
		if err != nil {
			return "", err
		}
		return sp.Enqueue(env, msg)
	}
	// The reserve is measured again by Drop on the file it creates: the
	// caller's spool path may lead checkFree's statfs(2) to another file
	// system than the one maildrop/ is on.
	var reserve int64
	if g.MinFree != nil {
		reserve = int64(*g.MinFree)
	}
	name, err := spool.Drop(md, env, msg, reserve, g.setgid.privileged)
	if errors.Is(err, fs.ErrPermission) {
		return "", fmt.Errorf("%w (the spool belongs to another user: is mxflush installed setgid the group of %s?)", err, md)
	} else if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w (the spool belongs to another user and has no maildrop/: run mxflush spool init)", err)
	}
	return name, err
}
