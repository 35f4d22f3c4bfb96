package spool

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Defer records a delivery attempt that left recipients pending: it writes
// env and the same message bytes (Bcc removed if the envelope was derived)
// to a temp file in tmp/, fsyncs it, renames it to cur/ID (over the old file
// when m is in cur/), fsyncs cur/, and then unlinks new/ID if m was in new/.
// env.To must hold at least one recipient; env.Arrival zero keeps
// m.Arrival, env.UID "" keeps m.UID. On error (ENOSPC, EACCES, a changed file) the old file is
// intact and no temp file remains — except when the rename was done
// and only a later step (fsync of cur/, unlink of new/ID) failed: then the
// error says so, m already describes cur/ID, and Scan drops the stale new/
// copy (cur/ wins). m is updated in place (Queue, Envelope, Size, ModTime).
// Address errors are *addr.Error.
func (s *Spool) Defer(m *Message, env Envelope) error {
	if m.Queue == QueueFailed {
		return fmt.Errorf("spool: defer %s: message is in failed/", m.ID)
	}
	return s.rewrite(m, env, QueueCur, true)
}

// Fail keeps m in failed/ID for inspection after its recipients failed
// permanently: env normally has To empty and Failed set (at least one of
// the two must be non-empty). Otherwise exactly as Defer, with failed/ in
// place of cur/: the new file is committed before the old one is unlinked.
func (s *Spool) Fail(m *Message, env Envelope) error {
	return s.rewrite(m, env, QueueFailed, false)
}

func (s *Spool) rewrite(m *Message, env Envelope, to string, needTo bool) error {
	src, err := s.path(m)
	if err != nil {
		return err
	}
	if env.Arrival.IsZero() {
		env.Arrival = m.Arrival
	}
	if env.UID == "" {
		env.UID = m.UID // the message keeps its identity (a fingerprint is written down now)
	}
	nenv, err := normalize(env, needTo)
	if err != nil {
		return err
	}
	id := m.ID
	if m.Queue != to {
		// Another message already holds this name in the target queue (a
		// producer reused it): take a fresh name rather than overwrite it.
		if _, err := os.Lstat(filepath.Join(s.dir, to, id)); err == nil {
			id = s.newID()
		}
	}
	body, err := s.Open(m)
	if err != nil {
		return err
	}
	w, err := s.writeState(to, id, nenv, body, needTo)
	body.Close()
	if !w.renamed {
		return err
	}
	from := m.Queue
	m.ID, m.Queue, m.Envelope, m.Size, m.ModTime = id, to, nenv, w.fileSize-w.bodyOff, w.modTime
	m.bodyOff, m.fileSize, m.fileID, m.derived, m.skips = w.bodyOff, w.fileSize, w.id, false, nil
	if from != to {
		if rerr := os.Remove(src); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, fmt.Errorf("spool: %s/%s was written but the old copy could not be removed: %w", to, m.ID, rerr))
		} else if serr := syncDir(filepath.Dir(src)); serr != nil {
			err = errors.Join(err, serr)
		}
	}
	return err
}

// written describes a file committed by writeState.
type written struct {
	renamed  bool  // the file is in its queue (a later fsync may still have failed)
	bodyOff  int64 // octets of envelope lines
	fileSize int64
	modTime  time.Time
	id       fileID
}

// writeState writes env (normalized) and body to a temp file in tmp/,
// fsyncs it, reads its envelope back to prove it parses to env, and renames
// it to queue/id, replacing any file there; then it fsyncs queue/. On an
// error before the rename the temp file is removed and nothing else changed.
func (s *Spool) writeState(queue, id string, env Envelope, body io.Reader, needTo bool) (written, error) {
	dst := filepath.Join(s.dir, queue, id)
	f, err := os.CreateTemp(filepath.Join(s.dir, dirTmp), id+".*")
	if err != nil {
		return written{}, fmt.Errorf("spool: writing %s/%s: %w", queue, quoteName(id), err)
	}
	w, err := fill(f, env, body, needTo)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), dst)
	}
	if err != nil {
		os.Remove(f.Name())
		return written{}, fmt.Errorf("spool: writing %s/%s: %w", queue, quoteName(id), err)
	}
	w.renamed = true
	return w, syncDir(filepath.Dir(dst))
}

// fill writes the file's content, fsyncs it and checks it reads back.
func fill(f *os.File, env Envelope, body io.Reader, needTo bool) (written, error) {
	hdr := formatEnvelope(env)
	bw := bufio.NewWriterSize(f, 32<<10)
	if _, err := bw.Write(hdr); err != nil {
		return written{}, err
	}
	if _, err := io.Copy(bw, body); err != nil {
		return written{}, err
	}
	if err := bw.Flush(); err != nil {
		return written{}, err
	}
	if err := f.Sync(); err != nil {
		return written{}, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return written{}, err
	}
	p, err := parse(bufio.NewReaderSize(f, 4096), needTo)
	if err == nil && (p.derived || p.bodyOff != int64(len(hdr)) || !envEqual(p.env, env)) {
		err = errors.New("the new file does not read back as written")
	}
	if err != nil {
		var pe *ParseError
		if errors.As(err, &pe) {
			pe.File = dirTmp + "/" + filepath.Base(f.Name())
		}
		return written{}, fmt.Errorf("checking the new file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		return written{}, err
	}
	return written{bodyOff: int64(len(hdr)), fileSize: fi.Size(), modTime: fi.ModTime().UTC(), id: idOf(fi)}, nil
}
