package spool

import (
	"github.com/mxflush/mxflush/mta"

	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	scanWorkers = 8              // files read at once; one descriptor each
	tmpMaxAge   = 36 * time.Hour // maildir's rule for abandoned files in tmp/
)

// Scan reads the envelope of every message in new/ and cur/, using at most
// 8 files open at once, each read through a 4 KiB buffer and closed before
// the next. Only the envelope lines are read (or, for a plain maildir file,
// its header block). Messages are sorted by Arrival, then ID.
//
// A file that cannot be parsed (bad syntax, an invalid address, no
// recipient, CR/LF/NUL in a field) is moved to bad/ID with its reason in
// bad/ID.reason and reported as a Problem with Err a *ParseError; it is never
// deleted. A file that cannot be read (EACCES, mode 000, not a regular file)
// is left in place and reported. When one ID is in both new/ and cur/, or
// a new/ or cur/ ID is also in failed/, the earlier queue's file is either
// a stale copy left by a crash between a state change's rename and unlink
// (same message: removed, the later state wins) or a new message whose
// producer reused a name (different message: renamed to a fresh ID and
// scanned); see resolveCollision. Dot
// files and tmp/ are ignored; files in tmp/ older than 36h are removed.
// err is only for a fatal error: new/ or cur/ cannot be listed, or
// ctx ended.
//
// A sharded Spool (see WithShard) reads, moves and renames only the
// files whose names its shard owns, and leaves tmp/ to shard 0: no file
// is touched by two shards.
func (s *Spool) Scan(ctx context.Context) (msgs []*Message, problems []Problem, err error) {
	if s.shard.Index == 0 {
		s.cleanTmp(time.Now())
	}
	names := make(map[string][]fs.DirEntry, 2)
	for _, q := range [...]string{QueueNew, QueueCur} {
		if names[q], err = s.listQueue(q); err != nil {
			return nil, nil, err
		}
		var unsafe int
		names[q], unsafe, problems = s.quarantineNames(q, names[q], problems)
		if unsafe > 0 {
			if err := syncDir(filepath.Join(s.dir, q)); err != nil {
				return nil, nil, err
			}
		}
	}
	// A name in a later queue is a later state of the same message: a crash
	// hit between the rename into that queue and the unlink of the old copy.
	newer := make(map[string]string)
	if failed, err := s.listQueue(QueueFailed); err == nil {
		for _, e := range failed {
			newer[e.Name()] = QueueFailed
		}
	}
	var jobs []job
	for _, q := range [...]string{QueueCur, QueueNew} {
		removed := false
		for _, e := range names[q] {
			later, stale := newer[e.Name()]
			if !stale {
				jobs = append(jobs, job{q, e})
				continue
			}
			p := filepath.Join(s.dir, q, e.Name())
			fresh, gone, err := s.resolveCollision(q, e.Name(), later)
			switch {
			case err != nil:
				problems = append(problems, Problem{ID: e.Name(), Path: p, Err: err,
					Reason: mta.OneLine("a file of the same name is in " + later + "/ and the two cannot be told apart: " + errText(err))})
			case gone:
				removed = true
			default:
				fi, err := os.Lstat(filepath.Join(s.dir, q, fresh))
				if err == nil {
					jobs = append(jobs, job{q, fs.FileInfoToDirEntry(fi)})
				}
				removed = true
			}
		}
		if removed {
			if err := syncDir(filepath.Join(s.dir, q)); err != nil {
				return nil, nil, err
			}
		}
		if q == QueueCur {
			for _, e := range names[q] {
				if newer[e.Name()] == "" {
					newer[e.Name()] = QueueCur
				}
			}
		}
	}
	msgs, more, err := s.run(ctx, jobs, true)
	return msgs, append(problems, more...), err
}

// List reads the envelopes of one queue ("new", "cur", "failed" or "hold")
// like Scan but moves nothing: unparsable files are reported and left in
// place. A sharded Spool lists its shard's files only.
func (s *Spool) List(queue string) ([]*Message, []Problem, error) {
	switch queue {
	case QueueNew, QueueCur, QueueFailed, QueueHold:
	default:
		return nil, nil, fmt.Errorf("spool: list: queue %q is not new, cur, failed or hold", queue)
	}
	entries, err := s.listQueue(queue)
	if err != nil {
		return nil, nil, err
	}
	jobs := make([]job, len(entries))
	for i, e := range entries {
		jobs[i] = job{queue, e}
	}
	return s.run(context.Background(), jobs, false)
}

// quarantineNames moves the files of queue q whose names are not safe to
// print (see safeName: a name "x\nstatus=sent" would forge a log line) to
// bad/ under a fresh unique name, the original name quoted in the reason,
// and returns the other entries and how many it moved. Such a file is
// never read: its name would reach every log line and state change.
func (s *Spool) quarantineNames(q string, entries []fs.DirEntry, problems []Problem) ([]fs.DirEntry, int, []Problem) {
	out := entries[:0]
	moved := 0
	for _, e := range entries {
		name := e.Name()
		if safeName(name) {
			out = append(out, e)
			continue
		}
		moved++
		pe := &ParseError{File: q + "/" + quoteName(name), Msg: "the file name " + strconv.QuoteToASCII(name) +
			" holds a control character, another unprintable character or an octet that is not UTF-8; such a name could forge log lines"}
		prob := Problem{ID: name, Path: filepath.Join(s.dir, q, name), Reason: pe.Reason(), Err: pe}
		if dst, err := s.quarantineAs(q, name, s.newID(), pe.Reason()); err != nil && dst == "" {
			prob.Reason = mta.OneLine(prob.Reason + " (could not move it to bad/: " + err.Error() + ")")
		} else {
			prob.MovedTo = dst
		}
		problems = append(problems, prob)
	}
	return out, moved, problems
}

type job struct {
	queue string
	entry fs.DirEntry
}

// listQueue lists queue q without dot files, and without the files of
// other shards.
func (s *Spool) listQueue(q string) ([]fs.DirEntry, error) {
	all, err := os.ReadDir(filepath.Join(s.dir, q))
	if err != nil {
		return nil, fmt.Errorf("spool: cannot list the queue: %w", err)
	}
	out := all[:0]
	for _, e := range all {
		if !strings.HasPrefix(e.Name(), ".") && s.shard.Owns(e.Name()) {
			out = append(out, e)
		}
	}
	return out, nil
}

// run reads jobs with a bounded pool of workers.
func (s *Spool) run(ctx context.Context, jobs []job, move bool) ([]*Message, []Problem, error) {
	type result struct {
		msg  *Message
		prob *Problem
	}
	results := make([]result, len(jobs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(scanWorkers, len(jobs)) {
		wg.Go(func() {
			buf := bufio.NewReaderSize(nil, 4096)
			for i := range next {
				results[i].msg, results[i].prob = s.readOne(jobs[i], buf, move)
			}
		})
	}
feed:
	for i := range jobs {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("spool: scan: %w", err)
	}
	var msgs []*Message
	var probs []Problem
	for _, r := range results {
		if r.msg != nil {
			msgs = append(msgs, r.msg)
		}
		if r.prob != nil {
			probs = append(probs, *r.prob)
		}
	}
	slices.SortStableFunc(msgs, func(a, b *Message) int {
		if c := a.Arrival.Compare(b.Arrival); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return msgs, probs, nil
}

// readOne opens one file, parses its envelope and closes it. A vanished file
// gives (nil, nil).
func (s *Spool) readOne(j job, br *bufio.Reader, move bool) (*Message, *Problem) {
	id := j.entry.Name()
	path := filepath.Join(s.dir, j.queue, id)
	leave := func(err error, why string) (*Message, *Problem) {
		return nil, &Problem{ID: id, Path: path, Reason: mta.OneLine(why), Err: err}
	}
	if !j.entry.Type().IsRegular() {
		// A directory, symlink or FIFO is no message: move it aside like
		// an unparsable file, or every run would report it forever.
		pe := &ParseError{File: j.queue + "/" + id, Msg: "not a regular file (" + typeName(j.entry.Type()) + ")"}
		prob := &Problem{ID: id, Path: path, Reason: pe.Reason(), Err: pe}
		if move {
			if dst, qerr := s.quarantine(j.queue, id, pe.Reason()); qerr != nil && dst == "" {
				prob.Reason = mta.OneLine(prob.Reason + " (could not move it to bad/: " + qerr.Error() + ")")
			} else {
				prob.MovedTo = dst
			}
		}
		return nil, prob
	}
	// O_NOFOLLOW and O_NONBLOCK: a symlink or FIFO swapped in after listing
	// fails or returns at once instead of being followed or blocking Scan.
	f, err := openRaw(path, spoolOpenFlags)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return leave(err, "cannot open the file: "+errText(err))
	}
	defer f.Close()
	st, err := f.stat()
	if err != nil {
		return leave(err, "cannot stat the file: "+errText(err))
	}
	if !st.mode.IsRegular() {
		return leave(nil, "not a regular file ("+typeName(st.mode)+")")
	}
	size, mtime := st.size, st.mtime
	br.Reset(f)
	p, err := parse(br, j.queue != QueueFailed)
	br.Reset(nil)
	var pe *ParseError
	if errors.As(err, &pe) {
		pe.File = j.queue + "/" + id
		prob := &Problem{ID: id, Path: path, Reason: pe.Reason(), Err: pe}
		if !move {
			return nil, prob
		}
		f.Close() // before the rename; the deferred Close then fails harmlessly
		dst, qerr := s.quarantine(j.queue, id, pe.Reason())
		if qerr != nil && dst == "" {
			prob.Reason = mta.OneLine(prob.Reason + " (could not move it to bad/: " + qerr.Error() + ")")
			return nil, prob
		}
		prob.MovedTo = dst
		return nil, prob
	} else if err != nil {
		return leave(err, "cannot read the file: "+errText(err))
	}
	m := &Message{
		ID: id, Queue: j.queue, Envelope: p.env,
		ModTime: mtime.UTC(), bodyOff: p.bodyOff, fileSize: size, fileID: st.id, ctime: st.ctime, derived: p.derived, skips: p.skips,
	}
	if m.UID == "" {
		m.UID, m.fingerprinted = fingerprint(size, mtime, p.sum), true
	}
	if m.Arrival.IsZero() {
		m.Arrival, m.ArrivalFromMtime = mtime.UTC().Truncate(time.Second), true
	}
	m.Size = size - p.bodyOff
	for _, sp := range p.skips {
		m.Size -= sp.end - sp.start
	}
	return m, nil
}

// typeName names a non-regular file type in plain words.
func typeName(m fs.FileMode) string {
	switch {
	case m&fs.ModeDir != 0:
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "type " + m.String()
}

// errText is the OS error without the path it names (Problem.Path has it).
func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// cleanTmp removes regular files in tmp/ not modified for 36 hours: writers
// that died before their rename. Errors are ignored; the next Scan retries.
func (s *Spool) cleanTmp(now time.Time) {
	dir := filepath.Join(s.dir, dirTmp)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if fi, err := e.Info(); err == nil && now.Sub(fi.ModTime()) > tmpMaxAge {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
