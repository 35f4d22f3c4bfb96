package spool

import (
	"errors"
	"io"
)

// Open returns the RFC 5322 message of m exactly as stored after the
// envelope lines, through one file descriptor and no buffer of its own
// (callers read in large blocks: deliver reads 8 KiB at a time); Close
// releases both. For a derived envelope (a plain maildir file) the Bcc
// header fields, with their continuation lines, are left out. It fails when
// the file is gone or changed (size or modification time) since Scan or List
// read it. The open does not follow a symbolic link and does not block on
// a FIFO, and the file must be the one that was read: the same device and
// inode, size and modification time; otherwise the error wraps ErrChanged
// (the name was swapped for another file: a spool problem, never to be
// sent). Other errors are local I/O problems (temporary).
func (s *Spool) Open(m *Message) (io.ReadCloser, error) {
	p, err := s.path(m)
	if err != nil {
		return nil, err
	}
	f, err := openMessage(p, m)
	if err != nil {
		return nil, err
	}
	f.seek(m.bodyOff)
	b := newBodyReader(f, m.bodyOff, m.skips)
	b.end = m.fileSize
	return b, nil
}

// bodyReader reads a file from offset pos on, leaving out the skip spans
// (sorted, not overlapping, absolute offsets at or after pos). It has no
// buffer of its own, so opening a message allocates no large buffer (one of
// 32 KiB per message was most of a flush's allocations).
type bodyReader struct {
	r     io.ReadCloser // nil once closed
	pos   int64
	skips []span
	// end, when positive, is the file size checked at open: reading stops
	// there without the read(2) that would only return end of file.
	end int64
}

func newBodyReader(r io.ReadCloser, pos int64, skips []span) *bodyReader {
	return &bodyReader{r: r, pos: pos, skips: skips}
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.r == nil {
		return 0, errors.New("spool: read of a closed message")
	}
	for len(b.skips) > 0 && b.pos >= b.skips[0].start {
		n, err := io.CopyN(io.Discard, b.r, b.skips[0].end-b.pos)
		b.pos += n
		if err != nil {
			return 0, err
		}
		b.skips = b.skips[1:]
	}
	if b.end > 0 && b.pos >= b.end {
		return 0, io.EOF
	}
	if len(b.skips) > 0 && int64(len(p)) > b.skips[0].start-b.pos {
		p = p[:b.skips[0].start-b.pos]
	}
	n, err := b.r.Read(p)
	b.pos += int64(n)
	return n, err
}

// Close closes the file; a second Close returns nil.
func (b *bodyReader) Close() error {
	if b.r == nil {
		return nil
	}
	r := b.r
	b.r = nil
	return r.Close()
}
