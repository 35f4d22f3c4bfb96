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
// the later queue and the unlink of the old copy leaves a stale copy: its
// message is the same as the later copy's, and it is removed (stale=true).
// A producer that reuses a name (a daily "report.eml") leaves a new message:
// its message differs, and it is renamed to a fresh unique name in q, which
// is returned, so that it is delivered and its later state changes never
// overwrite the other message. "The same message" means the same bytes as
// Open returns them (envelope lines and, for plain files, Bcc left out).
func (s *Spool) resolveCollision(q, id, later string) (fresh string, stale bool, err error) {
	same, err := s.sameMessage(job{queue: q}, id, later)
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

// sameMessage compares the messages of q/id and later/id.
func (s *Spool) sameMessage(j job, id, later string) (bool, error) {
	a, err := s.openForCompare(j.queue, id)
	if err != nil {
		return false, err
	}
	defer a.Close()
	b, err := s.openForCompare(later, id)
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

// openForCompare opens queue/id's message as Open would, without a prior Scan.
func (s *Spool) openForCompare(queue, id string) (io.ReadCloser, error) {
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
	return s.Open(m)
}
