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
	Path string // the lock file, DIR/lock or DIR/lock.I-of-N
	PID  int    // pid written by the holder; 0 if unknown
	// Shards names the sharded flushes that hold the spool ("0/4, 2/4"),
	// when an unsharded Lock met them; "" otherwise.
	Shards string
	// Shard is the shard of the Lock that failed; zero when unsharded.
	Shard Shard
}

// Error returns e.g. "spool /x is locked by another flush (pid 1234)".
func (e *LockedError) Error() string {
	dir := filepath.Dir(e.Path)
	if e.Shards != "" {
		return fmt.Sprintf("spool %s is locked by sharded flushes (--shard %s running)", dir, e.Shards)
	}
	pid := "pid unknown"
	if e.PID > 0 {
		pid = "pid " + strconv.Itoa(e.PID)
	}
	if e.Shard.Sharded() && filepath.Base(e.Path) != "lock" {
		return fmt.Sprintf("shard %s of spool %s is locked by another flush (%s)", e.Shard, dir, pid)
	}
	return fmt.Sprintf("spool %s is locked by another flush (%s)", dir, pid)
}

// ShardCountError is returned by a sharded Lock while flushes with another
// shard count run: their shards cover other sets of files than this
// run's, so the two would change the same messages. It is temporary: the
// run may start when those have ended.
type ShardCountError struct {
	Dir     string
	Want    Shard // this run's shard
	Running int   // the shard count of the runs in progress
}

func (e *ShardCountError) Error() string {
	return fmt.Sprintf("spool %s is being flushed in %d shards (--shard I/%d); this run's --shard %s has another count, and runs with different shard counts never run at once (their shards would share messages): wait for those to end, or use --shard I/%d",
		e.Dir, e.Running, e.Running, e.Want, e.Running)
}

// Lock takes the spool lock without waiting: flock(LOCK_EX|LOCK_NB) on
// DIR/lock (created 0600), then writes our pid into the file for the message
// other runs print. The lock belongs to the open file, so the kernel drops it
// when the process dies, even by kill -9: no stale pid is ever trusted. Two
// flushes at once cannot both hold it: a second Lock, even from this process,
// fails while the first is held. When the lock is held elsewhere the error is
// *LockedError; other errors wrap the OS error. unlock releases the lock and
// closes the file; calling it again returns nil. Linux (and BSD) only.
//
// A sharded Spool (see WithShard) takes its shard's lock instead, which
// lets the other shards of the same count run beside it:
//
//   - a shared flock (LOCK_SH|LOCK_NB) on DIR/lock, which every shard
//     holds at once and which an unsharded Lock (exclusive) cannot take
//     while any shard holds it, nor a shard while an unsharded run holds
//     it (*LockedError either way);
//   - an exclusive flock on DIR/lock.I-of-N (the run's pid in it): a
//     second run of the same shard gets *LockedError;
//   - no DIR/lock.J-of-M with another M may be held (a
//     *ShardCountError), which it checks by trying an exclusive flock on
//     each and removes those it could take (left by ended runs).
//
// These steps run under an exclusive flock on DIR/lock.shards, held only
// for them, so that two runs that start at once with different counts
// cannot both miss each other, and a check never makes a starting shard
// see its lock as held. Every lock is an flock, gone with its holder.
func (s *Spool) Lock() (unlock func() error, err error) {
	if s.shard.Sharded() {
		return s.lockShard()
	}
	p := filepath.Join(s.dir, "lock")
	f, err := lockFile(p, syscall.LOCK_EX|syscall.LOCK_NB)
	if err != nil {
		if le := (*LockedError)(nil); errors.As(err, &le) {
			le.Shards = s.runningShards()
		}
		return nil, err
	}
	writePID(f)
	return unlocker(p, f), nil
}

// lockShard is Lock for a sharded Spool.
func (s *Spool) lockShard() (unlock func() error, err error) {
	meta, err := lockFile(filepath.Join(s.dir, "lock.shards"), syscall.LOCK_EX)
	if err != nil {
		return nil, err
	}
	defer unlocker(meta.Name(), meta)()
	whole := filepath.Join(s.dir, "lock")
	wf, err := lockFile(whole, syscall.LOCK_SH|syscall.LOCK_NB)
	if err != nil {
		if le := (*LockedError)(nil); errors.As(err, &le) {
			le.Shard = s.shard
		}
		return nil, err
	}
	unlockWhole := unlocker(whole, wf)
	others, err := s.shardLocks()
	if err != nil {
		unlockWhole()
		return nil, err
	}
	for _, o := range others {
		if o.sh.Count == s.shard.Count {
			continue
		}
		f, err := lockFile(o.path, syscall.LOCK_EX|syscall.LOCK_NB)
		if le := (*LockedError)(nil); errors.As(err, &le) {
			unlockWhole()
			return nil, &ShardCountError{Dir: s.dir, Want: s.shard, Running: o.sh.Count}
		} else if err != nil {
			unlockWhole()
			return nil, err
		}
		// Nobody holds it, and nobody can take it while we hold
		// lock.shards: an ended run's file, removed so that the next
		// start does not check it again.
		os.Remove(o.path)
		unlocker(o.path, f)()
	}
	p := filepath.Join(s.dir, "lock."+s.shard.suffix())
	f, err := lockFile(p, syscall.LOCK_EX|syscall.LOCK_NB)
	if err != nil {
		if le := (*LockedError)(nil); errors.As(err, &le) {
			le.Shard = s.shard
		}
		unlockWhole()
		return nil, err
	}
	writePID(f)
	unlockShard := unlocker(p, f)
	return func() error {
		return errors.Join(unlockShard(), unlockWhole())
	}, nil
}

// shardLock is one DIR/lock.I-of-N file.
type shardLock struct {
	path string
	sh   Shard
}

// shardLocks lists the DIR/lock.I-of-N files.
func (s *Spool) shardLocks() ([]shardLock, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("spool: lock: %w", err)
	}
	var out []shardLock
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), "lock.")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if sh, ok := parseSuffix(rest); ok {
			out = append(out, shardLock{filepath.Join(s.dir, e.Name()), sh})
		}
	}
	return out, nil
}

// runningShards names the shards whose lock is held ("0/4, 2/4"), for the
// message of an unsharded Lock that failed; "" when none is (the holder
// is an unsharded run) or they cannot be told.
func (s *Spool) runningShards() string {
	meta, err := lockFile(filepath.Join(s.dir, "lock.shards"), syscall.LOCK_EX)
	if err != nil {
		return ""
	}
	defer unlocker(meta.Name(), meta)()
	locks, err := s.shardLocks()
	if err != nil {
		return ""
	}
	var held []string
	for _, l := range locks {
		f, err := lockFile(l.path, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			unlocker(l.path, f)()
			continue
		}
		if le := (*LockedError)(nil); errors.As(err, &le) {
			held = append(held, l.sh.String())
		}
	}
	return strings.Join(held, ", ")
}

// lockFile opens p (created 0600) and flocks it with how; when the lock
// is held elsewhere (LOCK_NB) the error is *LockedError with the pid the
// file holds.
func lockFile(p string, how int) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: lock: %w", err)
	}
	if err := flock(f, how); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &LockedError{Path: p, PID: readPID(f)}
		}
		return nil, fmt.Errorf("spool: lock %s: %w", p, err)
	}
	return f, nil
}

// writePID writes our pid into a lock file we hold exclusively; it is
// informative only, and a failure to write it is not fatal.
func writePID(f *os.File) {
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
}

// unlocker returns the function that releases f's lock and closes it;
// calling it again returns nil.
func unlocker(p string, f *os.File) func() error {
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
	}
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
