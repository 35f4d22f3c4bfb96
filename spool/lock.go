package spool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// LockedError is returned by Lock when another flush holds the spool lock.
// It is temporary: try again when that run has ended.
type LockedError struct {
	Path string // the lock file, DIR/lock
	PID  int    // pid written by the holder; 0 if unknown
}

// Error returns e.g. "spool /x is locked by another flush (pid 1234)".
func (e *LockedError) Error() string {
	pid := "pid unknown"
	if e.PID > 0 {
		pid = "pid " + strconv.Itoa(e.PID)
	}
	return fmt.Sprintf("spool %s is locked by another flush (%s)", filepath.Dir(e.Path), pid)
}

// Lock takes the spool lock without waiting: flock(LOCK_EX|LOCK_NB) on
// DIR/lock (created 0600), then writes our pid into the file for the message
// other runs print. The lock belongs to the open file, so the kernel drops it
// when the process dies, even by kill -9: no stale pid is ever trusted. Two
// flushes at once cannot both hold it: a second Lock, even from this process,
// fails while the first is held. When the lock is held elsewhere the error is
// *LockedError; other errors wrap the OS error. unlock releases the lock and
// closes the file; calling it again returns nil. Linux (and BSD) only.
func (s *Spool) Lock() (unlock func() error, err error) {
	p := filepath.Join(s.dir, "lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: lock: %w", err)
	}
	if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &LockedError{Path: p, PID: readPID(f)}
		}
		return nil, fmt.Errorf("spool: lock %s: %w", p, err)
	}
	// The pid is informative only; a failure to write it is not fatal.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	var once sync.Once
	return func() error {
		var err error
		once.Do(func() {
			err = flock(f, syscall.LOCK_UN)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				err = fmt.Errorf("spool: unlock %s: %w", p, err)
			}
		})
		return err
	}, nil
}

// flock calls flock(2) on f, retrying on EINTR.
func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	err = rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.Flock(int(fd), how)
			if !errors.Is(ferr, syscall.EINTR) {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return ferr
}

// readPID reads the decimal pid in the lock file; 0 when it has none.
func readPID(f *os.File) int {
	b, err := io.ReadAll(io.LimitReader(io.NewSectionReader(f, 0, 32), 32))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}
