package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Operator actions on single messages, for the queue commands (mxflush
// show, retry, hold, release, delete, requeue). The caller holds the spool
// lock for every action that changes a file, so no flush works on the same
// message meanwhile. Each action changes one file atomically: a rename, or
// the write-fsync-rename of Defer; a crash leaves the old state or the new
// one, never half a file, and never two live copies that would both be sent.

// ErrNotFound is wrapped by Find when no queue holds the ID.
var ErrNotFound = errors.New("no such message in the spool")

// CheckID refuses an operator-given ID that is not a plain spool file name:
// empty, with a "/" or NUL, with "..", or starting with "." (dot files are
// never messages). It is checked before any path is built. The error is
// permanent (a usage error).
func CheckID(id string) error {
	if strings.Contains(id, "..") {
		return fmt.Errorf("spool: %q is not a message ID (no \"..\" allowed)", id)
	}
	return validID(id)
}

// Find loads the message id from whichever queue holds it, looking in
// hold/, failed/, cur/ and new/ in that order (the later state first, as
// Scan does after a crash). It wraps ErrNotFound when none does, and the
// *ParseError of a file that cannot be parsed.
func (s *Spool) Find(id string) (*Message, error) {
	if err := CheckID(id); err != nil {
		return nil, err
	}
	for _, q := range [...]string{QueueHold, QueueFailed, QueueCur, QueueNew} {
		m, err := s.Load(q, id)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		return m, err
	}
	return nil, fmt.Errorf("spool: %s: %w", quoteName(id), ErrNotFound)
}

// Hold moves m from new/ or cur/ to hold/ with one rename(2), keeping its
// name and content, then fsyncs both directories. Scan never reads hold/,
// so a held message is never sent; `mv new/ID hold/` does the same by hand.
func (s *Spool) Hold(m *Message) error {
	if m.Queue != QueueNew && m.Queue != QueueCur {
		return fmt.Errorf("spool: hold %s: it is in %s/, only new/ and cur/ can be held", quoteName(m.ID), m.Queue)
	}
	return s.move(m, QueueHold)
}

// Release moves m from hold/ back to cur/ when it was attempted before
// (Attempts > 0) and to new/ otherwise. Its next attempt is unchanged; see
// Retry to make it due now.
func (s *Spool) Release(m *Message) error {
	if m.Queue != QueueHold {
		return fmt.Errorf("spool: release %s: it is in %s/, not hold/", quoteName(m.ID), m.Queue)
	}
	to := QueueNew
	if m.Attempts > 0 {
		to = QueueCur
	}
	return s.move(m, to)
}

// move renames m into queue to, refusing to replace a file of the same
// name there, and fsyncs the target then the source directory. m is
// updated in place.
func (s *Spool) move(m *Message, to string) error {
	src, err := s.path(m)
	if err != nil {
		return err
	}
	dst := filepath.Join(s.dir, to, m.ID)
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("spool: moving %s to %s/: a file of that name is there already", quoteName(m.ID), to)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("spool: moving %s to %s/: %w", quoteName(m.ID), to, err)
	}
	if err := os.Rename(src, dst); err != nil {
		return fmt.Errorf("spool: moving %s to %s/: %w", quoteName(m.ID), to, err)
	}
	m.Queue = to
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return err
	}
	return syncDir(filepath.Dir(src))
}

// Retry makes m due now: its X-Envelope-Next-Attempt is cleared (the
// backoff starts again from its attempts so far after the next try). m
// stays in its queue; a held message stays held. A message already due is
// left untouched and Retry reports changed false.
func (s *Spool) Retry(m *Message) (changed bool, err error) {
	switch m.Queue {
	case QueueNew, QueueCur, QueueHold:
	default:
		return false, fmt.Errorf("spool: retry %s: it is in %s/; use requeue for a failed message", quoteName(m.ID), m.Queue)
	}
	if m.NextAttempt.IsZero() {
		return false, nil
	}
	env := m.Envelope
	env.NextAttempt = time.Time{}
	return true, s.rewrite(m, env, m.Queue, true)
}

// Delete removes m from any queue (new/, cur/, hold/ or failed/) and
// fsyncs the directory. The message is gone: it is neither sent nor bounced.
func (s *Spool) Delete(m *Message) error {
	return s.Remove(m)
}

// Requeue puts a message from failed/ back in new/ with its failed
// recipients pending again (after the operator fixed a route, say), as a
// fresh message: arrival now (a full --max-age lifetime), no attempts, no
// next attempt, no Failed lines, and each former failure's reply kept as
// the recipient's last reply. Recipients that were delivered stay
// delivered. If it fails again, the sender gets a bounce again. A crash
// between the rename into new/ and the unlink from failed/ leaves both
// copies; Scan then keeps failed/ (the later queue) and removes the new/
// one, so the requeue is undone, never doubled.
func (s *Spool) Requeue(m *Message, now time.Time) error {
	if m.Queue != QueueFailed {
		return fmt.Errorf("spool: requeue %s: it is in %s/, not failed/", quoteName(m.ID), m.Queue)
	}
	env := Envelope{From: m.From, To: append([]string{}, m.To...), Arrival: now.UTC().Truncate(time.Second),
		Replies: map[string]string{}}
	for r, rep := range m.Replies {
		env.Replies[r] = rep
	}
	for _, f := range m.Failed {
		env.To = append(env.To, f.Rcpt)
		env.Replies[f.Rcpt] = f.Reply
	}
	if len(env.To) == 0 {
		return fmt.Errorf("spool: requeue %s: it has no recipient to send to", quoteName(m.ID))
	}
	return s.rewrite(m, env, QueueNew, true)
}
