package spool

import (
	"github.com/mxflush/mxflush/mta"

	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// dotMaxAge is how long a dot file may stay in maildrop/: a sendmail that
// died between its create and its rename left it (Postfix's pickup waits
// as long).
const dotMaxAge = 24 * time.Hour

// maxDropEnvelope bounds the envelope lines of a maildrop file beyond the
// message size limit (some 25,000 recipients), so a submitter cannot make
// the pickup hold an unbounded recipient list.
const maxDropEnvelope = 1 << 20

// PickupOptions are the settings of one Pickup.
type PickupOptions struct {
	MaxSize int64            // largest RFC 5322 message taken, in octets; 0 means no limit
	Host    string           // this host's name for the Received field (RFC 5321 §4.4)
	Now     func() time.Time // nil means time.Now
}

// Pickup moves every message Drop left in maildrop/ into new/, as
// Postfix's pickup does; the caller holds the spool lock. A spool without
// maildrop/ has nothing to pick up.
//
// Each file whose name does not start with a dot is opened with
// O_NOFOLLOW|O_NONBLOCK (a symlink is never followed, a FIFO never blocks)
// and must be a regular file with one link, its message within MaxSize
// (and its envelope lines within 1 MiB more).
// Its envelope is read and checked as Enqueue checks one, keeping only the
// sender and the recipients (the submitter does not choose the arrival
// time, attempts or failures of its message). The message gets a Received
// field naming the submitting user's uid, the file's owner (RFC 5321 §4.4
// trace information, in the form of Postfix's "from userid N"), and is
// written into new/ the atomic way (tmp/, fsync, rename, fsync new/); only
// then is the maildrop file removed, and only when it is still the file
// that was read. The copy streams: memory does not grow with the size.
//
// A file that breaks a rule goes to bad/ with its reason (a *ParseError),
// never deleted; under a name Drop would not give (a control character,
// say), it goes there as "badname-ID", the Problem's ID quoting the
// original. A directory, which cannot be moved by anyone but its
// owner, is reported and left. A file the spool owner cannot read although
// its mode lets the maildrop group read it is left in place and reported:
// the owner is not in that group. Dot files older than a day, left by a
// sendmail that died, are removed; younger ones may still be written.
//
// A crash after a message reached new/ but before its maildrop file was
// removed makes the next Pickup take it again: mail is duplicated rather
// than lost. err is only for a maildrop/ that cannot be listed or ctx
// ending; picked counts the messages moved into new/.
//
// A sharded Spool (see WithShard) takes only the files whose maildrop
// names its shard owns, gives each a name in new/ that it owns too (so
// the same run delivers it), and leaves the stale dot files to shard 0.
// No maildrop file is opened by two shards.
func (s *Spool) Pickup(ctx context.Context, o PickupOptions) (picked int, problems []Problem, err error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	dir := filepath.Join(s.dir, DirMaildrop)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil, nil
	} else if err != nil {
		return 0, nil, fmt.Errorf("spool: pickup: cannot list maildrop/: %w", err)
	}
	dfi, err := os.Stat(dir)
	if err != nil {
		return 0, nil, fmt.Errorf("spool: pickup: %w", err)
	}
	group := dfi.Sys().(*syscall.Stat_t).Gid
	changed := false
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return picked, problems, fmt.Errorf("spool: pickup: %w", err)
		}
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			if s.shard.Index == 0 && removeStale(dir, e, o.Now()) {
				changed = true
			}
			continue
		}
		if !s.shard.Owns(name) {
			continue // another shard's run takes it
		}
		ok, prob := s.pickOne(name, e.Type(), group, o)
		if ok {
			picked++
		}
		if prob != nil {
			problems = append(problems, *prob)
		}
		changed = changed || ok || (prob != nil && prob.MovedTo != "")
	}
	if changed {
		if err := syncDir(dir); err != nil {
			problems = append(problems, Problem{ID: DirMaildrop, Path: dir, Reason: mta.OneLine(err.Error()), Err: err})
		}
	}
	return picked, problems, nil
}

// removeStale removes a dot file (not a directory) older than dotMaxAge.
func removeStale(dir string, e fs.DirEntry, now time.Time) bool {
	if e.IsDir() {
		return false
	}
	fi, err := e.Info()
	if err != nil || now.Sub(fi.ModTime()) <= dotMaxAge {
		return false
	}
	return os.Remove(filepath.Join(dir, e.Name())) == nil
}

// pickOne moves maildrop/name into new/ or bad/.
func (s *Spool) pickOne(name string, typ fs.FileMode, group uint32, o PickupOptions) (bool, *Problem) {
	path := filepath.Join(s.dir, DirMaildrop, name)
	shown := name // the ID in problems, printed in log lines
	if !plainName(name) {
		shown = strconv.Quote(name)
	}
	bad := func(why string) (bool, *Problem) {
		pe := &ParseError{File: DirMaildrop + "/" + name, Msg: why}
		prob := &Problem{ID: shown, Path: path, Reason: pe.Reason(), Err: pe}
		moved := name
		if !plainName(name) {
			// Drop never makes such a name (a group member or the owner
			// did): it goes to bad/ under one that prints safely.
			moved = "badname-" + s.newID()
			if err := os.Rename(path, filepath.Join(s.dir, DirMaildrop, moved)); err != nil {
				prob.Reason = mta.OneLine(prob.Reason + " (could not move it to bad/: " + errText(err) + ")")
				prob.Err = err
				return false, prob
			}
			pe.Msg = "named " + strconv.Quote(name) + ": " + why
			prob.Reason = pe.Reason()
		}
		dst, err := s.quarantine(DirMaildrop, moved, pe.Reason())
		if err != nil && dst == "" {
			prob.Reason = mta.OneLine(prob.Reason + " (could not move it to bad/: " + err.Error() + ")")
			prob.Err = err
		}
		prob.MovedTo = dst
		return false, prob
	}
	leave := func(err error, why string) (bool, *Problem) {
		return false, &Problem{ID: shown, Path: path, Reason: mta.OneLine(why), Err: err}
	}
	if !typ.IsRegular() {
		if typ.IsDir() {
			// Invalid rather than an I/O failure, but left in place: only
			// its owner or root can move a directory.
			pe := &ParseError{File: DirMaildrop + "/" + name, Msg: "a directory in maildrop/: only its owner or root can move it; remove it"}
			return false, &Problem{ID: shown, Path: path, Reason: pe.Reason(), Err: pe}
		}
		return bad("not a regular file (" + typeName(typ) + ")")
	}
	fd, err := openNoFollow(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil // its submitter removed it
	case errors.Is(err, syscall.ELOOP):
		return bad("not a regular file (a symbolic link)")
	case errors.Is(err, fs.ErrPermission):
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&0o040 != 0 && fi.Sys().(*syscall.Stat_t).Gid == group {
			return leave(err, "cannot read it although its group may: the spool owner is not a member of maildrop/'s group (run flush as root, or add the owner to that group)")
		}
		return bad("the submitter made it unreadable (mode " + modeOf(path) + ")")
	case err != nil:
		return leave(err, "cannot open the file: "+errText(err))
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return leave(err, "cannot stat the file: "+errText(err))
	}
	st := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		f.Close()
		return bad("not a regular file (" + typeName(fi.Mode().Type()) + ")")
	case st.Nlink != 1:
		f.Close()
		return bad("the file has " + strconv.FormatUint(uint64(st.Nlink), 10) + " links: a maildrop file must have exactly one")
	}
	if o.MaxSize > 0 && fi.Size() > o.MaxSize+maxDropEnvelope {
		f.Close()
		return bad(fmt.Sprintf("the file is %d octets, over the size limit of %d (--max-message-size) and %d for its envelope lines", fi.Size(), o.MaxSize, maxDropEnvelope))
	}
	br := bufio.NewReaderSize(io.NewSectionReader(f, 0, fi.Size()), 32<<10)
	p, err := parse(br, true)
	var pe *ParseError
	if errors.As(err, &pe) {
		f.Close()
		return bad(pe.Reason())
	} else if err != nil {
		return leave(err, "cannot read the file: "+errText(err))
	}
	if p.derived {
		f.Close()
		return bad("no envelope lines: a maildrop file is written by mxflush sendmail or enqueue")
	}
	if size := fi.Size() - p.bodyOff; o.MaxSize > 0 && size > o.MaxSize {
		f.Close()
		return bad(fmt.Sprintf("the message is %d octets, over the size limit of %d (--max-message-size)", size, o.MaxSize))
	}
	now := o.Now()
	env := Envelope{From: p.env.From, To: p.env.To, Arrival: now}
	id := s.newID()
	eol := "\n"
	if b, _ := br.Peek(maxFieldName + 1); len(b) > 0 {
		if i := strings.IndexByte(string(b), '\n'); i > 0 && b[i-1] == '\r' {
			eol = "\r\n"
		}
	}
	// The maildrop name is the ID sendmail and enqueue printed to the
	// submitter: the field ties it to the queue ID the logs use.
	recv := "Received: by " + o.Host + " (mxflush, from userid " + strconv.FormatUint(uint64(st.Uid), 10) + ")" + eol +
		"\tid " + id + " (maildrop " + name + "); " + now.Format(time.RFC1123Z) + eol
	msg := io.MultiReader(strings.NewReader(recv), br)
	nenv, mbr, err := prepare(env, msg)
	if err != nil {
		f.Close()
		return bad(mta.OneLine(err.Error()))
	}
	if _, err := s.writeState(QueueNew, id, nenv, mbr, true); err != nil {
		return leave(err, "cannot write it into new/: "+errText(err))
	}
	// Remove the maildrop file only if it is still the one read: its
	// submitter may have replaced it under the same name meanwhile.
	if cur, err := os.Lstat(path); err == nil && os.SameFile(cur, fi) {
		if err := os.Remove(path); err != nil {
			return true, &Problem{ID: shown, Path: path, Err: err,
				Reason: mta.OneLine("picked up as " + id + " but not removed from maildrop/ (the next run takes it again): " + errText(err))}
		}
	}
	return true, nil
}

// openNoFollow opens path read-only without following a symlink or
// blocking on a FIFO.
func openNoFollow(path string) (int, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

// modeOf is path's permission bits in octal, "unknown" when it cannot be read.
func modeOf(path string) string {
	fi, err := os.Lstat(path)
	if err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%04o", fi.Mode().Perm())
}

// plainName reports whether a maildrop name has only the characters of the
// names Drop gives ([A-Za-z0-9._-]), so it prints safely in a log line.
func plainName(name string) bool {
	for _, r := range name {
		if !(r == '.' || r == '_' || r == '-' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z')) {
			return false
		}
	}
	return name != ""
}

// Dropped counts the messages waiting in maildrop/ for the next Pickup
// (names without a leading dot); 0 when the spool has no maildrop/.
func (s *Spool) Dropped() (int, error) {
	f, err := os.Open(filepath.Join(s.dir, DirMaildrop))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	} else if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	n := 0
	for {
		names, err := f.Readdirnames(1024)
		for _, name := range names {
			if !strings.HasPrefix(name, ".") {
				n++
			}
		}
		if errors.Is(err, io.EOF) {
			return n, nil
		} else if err != nil {
			return n, fmt.Errorf("spool: %w", err)
		}
	}
}
