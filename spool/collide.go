package spool

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// resolveCollision decides what a file in queue q named id is, when a later
// queue (cur/ for new/, failed/ for both) holds a file of the same name.
//
// Two things leave such a pair. A crash between a state change's rename into
// the later queue and the unlink of the old copy leaves a stale copy: the
// same message as the later copy, which is removed (stale=true). A producer
// that reuses a name (a daily "report.eml") leaves a new message, which is
// renamed to a fresh unique name in q, returned, so that it is delivered
// and its later state changes never overwrite the other message. See
// sameMessage for how the two are told apart.
func (s *Spool) resolveCollision(q, id, later string) (fresh string, stale bool, err error) {
	same, err := s.sameMessage(q, id, later)
	if err != nil {
		return "", false, err
	}
	p := filepath.Join(s.dir, q, id)
	if same {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", false, err
		}
		return "", true, nil
	}
	fresh = s.newID()
	if err := os.Rename(p, filepath.Join(s.dir, q, fresh)); err != nil {
		return "", false, err
	}
	return fresh, false, nil
}

// sameMessage reports whether q/id is a stale copy of later/id.
//
// Every state change writes the message's UID (X-Envelope-Id, or the
// fingerprint of a plain file, see Envelope.UID) into the later copy, so
// when the later copy has an X-Envelope-Id line the answer is whether the
// UIDs are equal: a producer's new file under a reused name has its own.
// A plain file's fingerprint can repeat (the same template copied with
// cp -p every day has the same size, mtime and header), so a plain earlier
// copy is also checked to be older than the later one: a state change
// writes the later copy after the earlier one entered its queue, and the
// kernel sets a file's status change time (ctime, which cp -p, tar and
// touch cannot set back) when it is created or renamed there. An earlier
// copy whose ctime is after the later copy's mtime was put there after the
// state change: a new message. (A chmod of a stale copy also moves its
// ctime: it is then sent again, a duplicate rather than a loss.)
//
// A later copy without one was written by a version before UIDs. Then the
// copies are the same message only if everything a crash can leave agrees:
// the same sender and the same bytes as Open returns them (envelope lines
// and, for plain files, Bcc left out), and no pending recipient of the
// earlier copy missing from the later one (pending or failed there). A
// state change only ever takes recipients off (delivered, journalled and
// replayed) or moves them to the failed list, so a stale copy never has a
// recipient the later one lacks; a new message under a reused name to
// another recipient (the same alert to oncall@ after one to gone@ failed)
// does. A stale copy of a message that had delivered recipients is then
// taken for a new message: sent again, a duplicate rather than a loss.
func (s *Spool) sameMessage(q, id, later string) (bool, error) {
	ma, err := s.loadForCompare(q, id)
	if err != nil {
		return false, err
	}
	mb, err := s.loadForCompare(later, id)
	if err != nil {
		return false, err
	}
	if !mb.fingerprinted {
		newer := ma.fingerprinted && !ma.ctime.IsZero() && ma.ctime.After(mb.ModTime)
		return ma.UID == mb.UID && !newer, nil
	}
	if ma.From != mb.From || !pendingIn(ma, mb) {
		return false, nil
	}
	return s.sameBody(ma, mb)
}

// pendingIn reports whether every pending recipient of a is a recipient of
// b, pending or failed.
func pendingIn(a, b *Message) bool {
	have := make(map[string]bool, len(b.To)+len(b.Failed))
	for _, r := range b.To {
		have[rcptKey(r)] = true
	}
	for _, f := range b.Failed {
		have[rcptKey(f.Rcpt)] = true
	}
	for _, r := range a.To {
		if !have[rcptKey(r)] {
			return false
		}
	}
	return true
}

// sameBody compares the messages of a and b as Open returns them.
func (s *Spool) sameBody(ma, mb *Message) (bool, error) {
	a, err := s.Open(ma)
	if err != nil {
		return false, err
	}
	defer a.Close()
	b, err := s.Open(mb)
	if err != nil {
		return false, err
	}
	defer b.Close()
	ba, bb := bufio.NewReaderSize(a, 32<<10), bufio.NewReaderSize(b, 32<<10)
	var x, y [4096]byte
	for {
		n, errA := io.ReadFull(ba, x[:])
		m, errB := io.ReadFull(bb, y[:])
		if n != m || !bytes.Equal(x[:n], y[:m]) {
			return false, nil
		}
		endA := errors.Is(errA, io.EOF) || errors.Is(errA, io.ErrUnexpectedEOF)
		endB := errors.Is(errB, io.EOF) || errors.Is(errB, io.ErrUnexpectedEOF)
		switch {
		case endA && endB:
			return true, nil
		case endA != endB:
			return false, nil
		case errA != nil:
			return false, errA
		case errB != nil:
			return false, errB
		}
	}
}

// loadForCompare reads queue/id's envelope as Scan would, moving nothing.
func (s *Spool) loadForCompare(queue, id string) (*Message, error) {
	path := filepath.Join(s.dir, queue, id)
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("spool: %s/%s is not a regular file", queue, quoteName(id))
	}
	m, prob := s.readOne(job{queue, fs.FileInfoToDirEntry(fi)}, bufio.NewReaderSize(nil, 4096), false)
	if prob != nil {
		return nil, fmt.Errorf("spool: %s/%s: %s", queue, quoteName(id), prob.Reason)
	}
	if m == nil {
		return nil, fs.ErrNotExist
	}
	return m, nil
}
