package spool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// maildropMode is the mode of a file Drop writes: the submitter owns it,
// the maildrop group (the spool's pickup) reads it, nobody else can.
const maildropMode = 0o640

// errMaildropSymlink is why Drop refuses a maildrop/ that is a symbolic
// link (see openDropDir).
var errMaildropSymlink = errors.New("is a symbolic link: maildrop/ must be a directory of the spool (run mxflush spool init)")

// LowSpaceError is Drop's refusal when the file system its file is on has
// less free space than the reserve: nothing is left behind, the submitter
// may try again later.
type LowSpaceError struct {
	Dir           string // the maildrop directory
	Free, Reserve int64  // octets available to unprivileged users, and the reserve asked for
}

func (e *LowSpaceError) Error() string {
	return fmt.Sprintf("the file system of %s has %d octets free, less than the reserve of %d (--min-free): nothing queued, try again later", e.Dir, e.Free, e.Reserve)
}

// Drop writes one message into the maildrop directory dir (SPOOL/maildrop)
// for a user who is not the spool's owner, as Postfix's postdrop does, and
// returns the file's name. It touches nothing else of the spool: dir is
// mode 1730, so its group may create files there and nothing more (no
// listing, no reading, no removing others' files), and the rest of the
// spool is the owner's alone.
//
// env and msg are checked as Enqueue checks them, and the file has exactly
// the content Enqueue would write in new/: envelope lines, then the
// message. It is created under a name starting with a dot
// (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0640, given the group of dir),
// written, fsynced, then renamed to its final name without replacing
// anything (RENAME_NOREPLACE), all relative to one O_PATH descriptor of
// dir taken first, so Pickup, which ignores dot names, never
// takes a half-written file. When msg's Read fails (a size limit) or any
// step fails, the dot file is removed: nothing is left behind.
//
// privileged runs its function with the rights that let this process
// write into dir (the maildrop group of a setgid binary); Drop calls it
// only around the create, the rename and the removal of its own file. The
// data is written through the descriptor, with the caller's own rights.
//
// reserve (when above 0) is the free space to leave on the file system
// (Postfix's queue_minfree): it is measured on the file just created
// (fstatfs(2)), so a submitter who chose the spool path cannot have it
// measured on another file system than the one written (a symlinked
// maildrop/, a path component swapped after a statfs of the path), and
// again as the message is written (see reserveGuard), so that many
// submissions at once cannot all pass the first check and fill the disk
// together. Below it Drop fails with a *LowSpaceError and leaves nothing
// behind.
func Drop(dir string, env Envelope, msg io.Reader, reserve int64, privileged func(func() error) error) (name string, err error) {
	nenv, br, err := prepare(env, msg)
	if err != nil {
		return "", err
	}
	// Pickup moves a file whose envelope lines pass maxDropEnvelope to
	// bad/ once its message is near the size limit: refuse it here, where
	// the submitter still hears of it, rather than report it queued.
	if n := len(formatEnvelope(nenv)); n > maxDropEnvelope {
		return "", &ParseError{File: "message", Msg: fmt.Sprintf("%d recipients make %d octets of envelope lines, over the %d a maildrop file may hold: send it in smaller parts", len(nenv.To), n, maxDropEnvelope)}
	}
	dir = filepath.Clean(dir)
	d, err := openDropDir(dir)
	if err != nil {
		return "", fmt.Errorf("spool: maildrop: %w", err)
	}
	defer d.close()
	group, err := d.gid()
	if err != nil {
		return "", fmt.Errorf("spool: maildrop: %w", err)
	}
	host, _ := os.Hostname()
	name = uniqueName(os.Getpid(), sanitizeHost(host))
	dot := "." + name
	var f *os.File
	err = privileged(func() error {
		fd, err := d.create(dot, maildropMode)
		if err != nil {
			return err
		}
		f = os.NewFile(uintptr(fd), filepath.Join(dir, dot))
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("spool: maildrop: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			privileged(func() error { return d.remove(dot) })
			err = fmt.Errorf("spool: maildrop: %w", err)
		}
	}()
	// The umask may have taken the group's read bit; the group is the one
	// of dir (a root caller without the setgid group creates files of its
	// own group otherwise), so Pickup can read the file.
	if err := f.Chmod(maildropMode); err != nil {
		return "", err
	}
	if reserve > 0 {
		free, ok, err := freeOn(f)
		if err != nil {
			return "", err
		}
		if ok && free < reserve {
			return "", &LowSpaceError{Dir: dir, Free: free, Reserve: reserve}
		}
	}
	if ffi, err := f.Stat(); err != nil {
		return "", err
	} else if fst, ok := ffi.Sys().(*syscall.Stat_t); ok && fst.Gid != group {
		if err := f.Chown(-1, int(group)); err != nil {
			return "", err
		}
	}
	var body io.Reader = br
	if reserve > 0 {
		body = &reserveGuard{r: br, f: f, dir: dir, reserve: reserve}
	}
	if _, err := fill(f, nenv, body, true); err != nil {
		return "", fmt.Errorf("writing %s: %w", f.Name(), err)
	}
	if err := privileged(func() error { return d.rename(dot, name) }); err != nil {
		return "", err
	}
	// The submitter cannot open dir to fsync it (no read permission). On
	// ext4 and XFS, whose journal is global, an fsync of the file after
	// the rename commits the rename with it; POSIX does not promise that,
	// so after a power loss a message may at worst stay under its dot name,
	// which Pickup removes after a day.
	serr := f.Sync()
	if cerr := f.Close(); serr == nil {
		serr = cerr
	}
	if serr != nil {
		return name, fmt.Errorf("spool: maildrop: %s was written but not synced: %w", filepath.Join(dir, name), serr)
	}
	return name, nil
}

// reserveGuard reads a message for Drop and, before each read, measures
// the free space on the file system of f: the free space plus what this
// file has taken so far (what was free when it started, less what others
// wrote since) must stay at least reserve. Alone, a submission passes
// whenever the first check passed; with others writing at once, each stops
// once the others have taken what was above the reserve, so together they
// leave at least the reserve less one message (and one read each).
type reserveGuard struct {
	r       io.Reader
	f       *os.File
	dir     string
	reserve int64
	read    int64
}

func (g *reserveGuard) Read(p []byte) (int, error) {
	free, ok, err := freeOn(g.f)
	if err != nil {
		return 0, err
	}
	if ok && free+g.read < g.reserve {
		return 0, &LowSpaceError{Dir: g.dir, Free: free, Reserve: g.reserve}
	}
	n, err := g.r.Read(p)
	g.read += int64(n)
	return n, err
}
