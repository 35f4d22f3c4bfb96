package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"time"
)

// ErrChanged is wrapped by Open (and so by every state change, which reads
// the message through Open) when the file under a message's name is not the
// one Scan, List or Load read: another inode (the file was replaced, for
// instance by a symbolic link to a file the spool's users cannot read, or
// by a FIFO), not a regular file, or a different size or modification
// time. Such a message is a spool problem, not a delivery: nothing of it is
// sent, it is not bounced, and the next scan reads whatever is there now.
var ErrChanged = errors.New("the file is not the one the scan read")

// fileID is a file's identity on this host: device and inode. It tells a
// replaced file from the one the scan read within one run; it is never
// written down (it differs between NFS clients and after a restore). A
// file removed and another created in its place may get its inode number
// back: that one was written by whoever can write the queue, so it holds
// nothing they could not have queued; a link to another file (hard or
// symbolic) never passes.
type fileID struct{ dev, ino uint64 }

// fileStat is what one fstat(2) of an open spool file says.
type fileStat struct {
	size  int64
	mtime time.Time
	ctime time.Time   // status change time (Linux; zero elsewhere): set by the kernel, never by cp -p, tar or touch
	mode  fs.FileMode // type bits only; 0 for a regular file
	id    fileID
}

// spoolOpenFlags are added to every open of a file in a queue directory:
// a symbolic link swapped in after the listing is not followed (ELOOP) and
// a FIFO does not block open(2) waiting for a writer (O_NONBLOCK; fstat
// then refuses it as not a regular file). Whoever can write a queue
// directory can swap names; the spool reads only what its listing saw.
const spoolOpenFlags = syscall.O_NOFOLLOW | syscall.O_NONBLOCK

// openMessage opens m's file at p for reading and checks, with the one
// fstat(2) the open costs anyway, that it is the file m was read from.
func openMessage(p string, m *Message) (*rawFile, error) {
	f, err := openRaw(p, spoolOpenFlags)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("spool: %s/%s is now a symbolic link: %w", m.Queue, quoteName(m.ID), ErrChanged)
	} else if errors.Is(err, syscall.ENXIO) { // open(2) of a socket
		return nil, fmt.Errorf("spool: %s/%s is now a socket: %w", m.Queue, quoteName(m.ID), ErrChanged)
	} else if err != nil {
		return nil, fmt.Errorf("spool: open message: %w", err)
	}
	st, err := f.stat()
	switch {
	case err != nil:
	case !st.mode.IsRegular():
		err = fmt.Errorf("spool: %s/%s is now %s: %w", m.Queue, quoteName(m.ID), typeName(st.mode), ErrChanged)
	case st.id != m.fileID:
		err = fmt.Errorf("spool: %s/%s was replaced by another file since it was scanned: %w", m.Queue, quoteName(m.ID), ErrChanged)
	case st.size != m.fileSize || !st.mtime.Equal(m.ModTime):
		err = fmt.Errorf("spool: %s/%s changed since it was scanned (size %d, was %d): %w", m.Queue, quoteName(m.ID), st.size, m.fileSize, ErrChanged)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// idOf is the identity of a file described by os.Stat or File.Stat.
func idOf(fi fs.FileInfo) fileID {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}
	}
	return fileID{}
}
