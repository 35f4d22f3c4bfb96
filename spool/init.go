package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Modes of the spool's layout (see the package documentation).
const (
	modeRoot     = 0o711                 // others may pass through to maildrop/, not list
	modeQueue    = 0o700                 // the owner's alone
	modeMaildrop = os.ModeSticky | 0o730 // the group creates files; only their owner removes them
	modeFile     = 0o600
)

// InitOptions say who owns a spool made or repaired by Init.
type InitOptions struct {
	UID, GID int // owner and group of the spool and every queue directory and file
	Group    int // group of maildrop/: the group the setgid binary runs as
}

// Init creates the spool in dir, or repairs it: dir (mode 0711), tmp/,
// new/, cur/, failed/, hold/ and bad/ (0700) owned by o.UID and o.GID, and
// maildrop/ (1730) owned by o.UID and group o.Group. In the queue
// directories and in dir, every regular file (messages, the journal, the
// lock) is given to o.UID and o.GID with mode 0600, so a spool that was
// run by another user (root) works for its new owner. It never follows a
// symbolic link: one where a directory belongs is an error, one in a
// queue directory is left for Scan to move to bad/. Files in maildrop/
// stay their submitters'.
//
// It returns one line per directory saying what it did, "created",
// "fixed" (with the old and new owner and mode) or "ok", and a line per
// repaired file. Changing owners needs root, or for the group a member.
func Init(dir string, o InitOptions) ([]string, error) {
	dir = filepath.Clean(dir)
	var out []string
	say := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return out, fmt.Errorf("spool: init: %w", err)
	}
	// Files of the spool are the previous owner's (or root's, who ran
	// it): those are the ones to hand over. A file of anyone else was
	// moved in by the owner from elsewhere (a shared directory), and
	// giving it to the owner would let it read another user's file.
	keep := map[int]bool{0: true, o.UID: true}
	if fi, err := os.Lstat(dir); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.IsDir() {
			keep[int(st.Uid)] = true
		}
	}
	dirs := []struct {
		name     string
		gid      int
		mode     os.FileMode
		ownFiles bool
	}{
		{"", o.GID, modeRoot, true},
		{dirTmp, o.GID, modeQueue, true},
		{QueueNew, o.GID, modeQueue, true},
		{QueueCur, o.GID, modeQueue, true},
		{QueueFailed, o.GID, modeQueue, true},
		{QueueHold, o.GID, modeQueue, true},
		{dirBad, o.GID, modeQueue, true},
		{DirMaildrop, o.Group, modeMaildrop, false},
	}
	for _, d := range dirs {
		p := filepath.Join(dir, d.name)
		created := false
		if err := os.Mkdir(p, 0o700); err == nil {
			created = true
		} else if !errors.Is(err, fs.ErrExist) {
			return out, fmt.Errorf("spool: init: %w", err)
		}
		what, err := fixDir(p, o.UID, d.gid, d.mode)
		if err != nil {
			return out, err
		}
		switch {
		case created:
			say("created %s (%s)", p, describe(o.UID, d.gid, d.mode))
		case what != "":
			say("fixed %s: %s", p, what)
		default:
			say("ok %s (%s)", p, describe(o.UID, d.gid, d.mode))
		}
		if d.ownFiles {
			fixed, err := fixFiles(p, o.UID, o.GID, keep)
			if err != nil {
				return out, err
			}
			out = append(out, fixed...)
		}
	}
	return out, nil
}

// fixDir gives the directory p (never a symlink) the owner and mode and
// says what it changed, "" when nothing.
func fixDir(p string, uid, gid int, mode os.FileMode) (string, error) {
	fd, err := syscall.Open(p, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.ENOTDIR) {
		return "", fmt.Errorf("spool: init: %s is not a directory (a symbolic link or a file): move it away first", quoteName(p))
	} else if err != nil {
		return "", fmt.Errorf("spool: init: %w", &fs.PathError{Op: "open", Path: p, Err: err})
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	return fixOpen(f, uid, gid, mode)
}

// fixOpen sets the owner and mode of the open file f when they differ.
func fixOpen(f *os.File, uid, gid int, mode os.FileMode) (string, error) {
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("spool: init: %w", err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	var what string
	if int(st.Uid) != uid || int(st.Gid) != gid {
		if err := f.Chown(uid, gid); err != nil {
			return "", fmt.Errorf("spool: init: %w", err)
		}
		what = fmt.Sprintf("owner %d:%d -> %d:%d", st.Uid, st.Gid, uid, gid)
	}
	// Chown clears the setuid and setgid bits, and the sticky bit is part
	// of mode: compare and set all of them after it.
	if fi.Mode()&(os.ModePerm|os.ModeSticky|os.ModeSetgid|os.ModeSetuid) != mode || what != "" {
		old := fi.Mode() & (os.ModePerm | os.ModeSticky | os.ModeSetgid | os.ModeSetuid)
		if err := f.Chmod(mode); err != nil {
			return "", fmt.Errorf("spool: init: %w", err)
		}
		if old != mode {
			if what != "" {
				what += ", "
			}
			what += "mode " + octal(old) + " -> " + octal(mode)
		}
	}
	return what, nil
}

// fixFiles gives every regular file directly in dir the owner and mode
// 0600; symlinks and other types are left alone (never followed), and so
// is a file with more than one link, or one owned by a user not in owners
// (the spool's previous owner, the new one, root), each said in a line.
func fixFiles(dir string, uid, gid int, owners map[int]bool) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: init: %w", err)
	}
	var out []string
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fd, err := openNoFollow(p)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ELOOP) {
			continue
		} else if err != nil {
			return out, fmt.Errorf("spool: init: %w", err)
		}
		f := os.NewFile(uintptr(fd), p)
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			f.Close()
			continue
		}
		if n := fi.Sys().(*syscall.Stat_t).Nlink; n != 1 {
			// A second link may be a file outside the spool (the spool's
			// owner can link any file it may read and write, and any file
			// at all where fs.protected_hardlinks is 0): giving it to the
			// owner would give away, say, /etc/shadow when root runs init.
			f.Close()
			out = append(out, fmt.Sprintf("left %s: it has %d links, so it may be a file outside the spool; its owner and mode are not changed", quoteName(p), n))
			continue
		}
		if fu := int(fi.Sys().(*syscall.Stat_t).Uid); !owners[fu] {
			f.Close()
			out = append(out, fmt.Sprintf("left %s: it belongs to uid %d, who is not the spool's owner; its owner and mode are not changed", quoteName(p), fu))
			continue
		}
		what, err := fixOpen(f, uid, gid, modeFile)
		f.Close()
		if err != nil {
			return out, err
		}
		if what != "" {
			out = append(out, "fixed "+quoteName(p)+": "+what)
		}
	}
	return out, nil
}

func describe(uid, gid int, mode os.FileMode) string {
	return fmt.Sprintf("owner %d:%d, mode %s", uid, gid, octal(mode))
}

// octal writes a mode as chmod(1) takes it: 0700, 1730.
func octal(m os.FileMode) string {
	n := uint32(m.Perm())
	if m&os.ModeSticky != 0 {
		n |= 0o1000
	}
	if m&os.ModeSetgid != 0 {
		n |= 0o2000
	}
	if m&os.ModeSetuid != 0 {
		n |= 0o4000
	}
	return fmt.Sprintf("%04o", n)
}
