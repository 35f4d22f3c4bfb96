package spool

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Load reads the envelope of one message, queue/id, the way Scan reads it,
// and moves nothing: for a caller that knows the ID, such as a run that
// delivers the bounces it has just enqueued, or a journal replay. It opens
// one file and closes it before returning.
//
// Errors: a missing file wraps fs.ErrNotExist; a file that cannot be parsed
// wraps its *ParseError (it stays where it is, and the next Scan moves it to
// bad/); anything else is a local I/O problem (temporary).
func (s *Spool) Load(queue, id string) (*Message, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	switch queue {
	case QueueNew, QueueCur, QueueFailed, QueueHold:
	default:
		return nil, fmt.Errorf("spool: load: queue %q is not new, cur, failed or hold", queue)
	}
	fi, err := os.Lstat(filepath.Join(s.dir, queue, id))
	if err != nil {
		return nil, fmt.Errorf("spool: load %s/%s: %w", queue, quoteName(id), err)
	}
	m, prob := s.readOne(job{queue, fs.FileInfoToDirEntry(fi)}, bufio.NewReaderSize(nil, 4096), false)
	switch {
	case prob != nil && prob.Err != nil:
		return nil, fmt.Errorf("spool: load %s/%s: %s: %w", queue, quoteName(id), prob.Reason, prob.Err)
	case prob != nil:
		return nil, fmt.Errorf("spool: load %s/%s: %s", queue, quoteName(id), prob.Reason)
	case m == nil:
		return nil, fmt.Errorf("spool: load %s/%s: %w", queue, quoteName(id), fs.ErrNotExist)
	}
	return m, nil
}

// find loads id from the latest queue that holds it: failed/ (then it has
// nothing pending and m is returned with Queue "failed"), else cur/, else
// new/. Scan applies the same order when a crash left two copies. A missing
// ID gives (nil, nil).
func (s *Spool) find(id string) (*Message, error) {
	for _, q := range [...]string{QueueFailed, QueueCur, QueueNew} {
		m, err := s.Load(q, id)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		return m, err
	}
	return nil, nil
}
