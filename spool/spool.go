package spool

import (
	"github.com/mxflush/mxflush/mta"

	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Queue directories under the spool root.
const (
	QueueNew    = "new"    // ready, never attempted
	QueueCur    = "cur"    // attempted at least once, waiting for a retry
	QueueFailed = "failed" // permanently failed originals, kept for inspection
	QueueHold   = "hold"   // held by the operator: never scanned, never sent (see Hold)
	dirTmp      = "tmp"    // files being written; never read as messages
	dirBad      = "bad"    // quarantined files with a .reason sidecar
	// DirMaildrop is where users other than the spool's owner drop
	// messages (see Drop); flush's Pickup moves them into new/.
	DirMaildrop = "maildrop"
)

// Spool is one spool directory. Its methods are safe for concurrent use on
// different messages; state changes to one message must not run concurrently.
type Spool struct {
	dir  string
	host string // sanitised host name for unique file names
	pid  int
	// shard is the part of the spool this Spool sees (see WithShard);
	// zero: all of it.
	shard Shard
}

// Message is one spooled message as read by Scan or List: its envelope and
// where it is. Pass it back unchanged to Open, Defer, Fail, Remove or
// Quarantine; they refuse a file that changed since it was read.
type Message struct {
	ID    string // the file name (maildir unique name); same name in new/, cur/, failed/, bad/
	Queue string // "new", "cur" or "failed"
	Envelope
	Size    int64     // octets of the RFC 5322 message as Open returns it (file size minus envelope lines and, for a derived envelope, Bcc fields)
	ModTime time.Time // the file's modification time, UTC
	// ArrivalFromMtime: the file has no X-Envelope-Arrival line and Arrival
	// is its modification time, which says when the file was written, not
	// when the spool got it (cp -p, tar and touch set it to anything).
	ArrivalFromMtime bool

	bodyOff  int64     // offset of the RFC 5322 message in the file
	fileSize int64     // file size when read, to notice a changed file
	fileID   fileID    // device and inode when read, to notice a replaced file (see Open)
	ctime    time.Time // status change time when read (Linux; zero elsewhere), see sameMessage
	// fingerprinted: the file has no X-Envelope-Id line, and UID is its
	// fingerprint (the first state change writes it down).
	fingerprinted bool
	derived       bool   // envelope derived from header fields (no envelope lines)
	skips         []span // Bcc fields Open leaves out (derived only)
}

// Problem is a spool file that Scan or List could not use. It is reported,
// never deleted.
type Problem struct {
	ID, Path string // file name, and its full path where it was found
	Reason   string // one line, e.g. `line 2: X-Envelope-To: invalid address "bob": no @ in address`
	MovedTo  string // path under bad/, "" when left in place
	Err      error  // *ParseError for a file that cannot be parsed, else the OS error
}

// MissingError is returned by Open and OpenReadOnly when the spool
// directory or one of its queue directories does not exist: a misspelled
// path must not become an empty spool that reports success.
type MissingError struct {
	Path string // the directory that is missing
}

func (e *MissingError) Error() string {
	return "spool: " + quoteName(e.Path) + " does not exist (mxflush spool init creates a spool)"
}

// Unwrap makes errors.Is(err, fs.ErrNotExist) true.
func (e *MissingError) Unwrap() error { return fs.ErrNotExist }

// queueDirs are the directories Open needs; maildrop/ is optional (a spool
// made before it existed has none, and pickup then has nothing to do).
var queueDirs = [...]string{dirTmp, QueueNew, QueueCur, QueueFailed, QueueHold, dirBad}

// Create opens the spool in dir like Open, first creating dir and tmp/,
// new/, cur/, failed/, hold/ and bad/ (mode 0700) when missing. It is for
// enqueue run by the user who owns (or will own) the spool; every other
// command uses Open or OpenReadOnly, which create nothing, and Init makes
// the full layout with maildrop/.
func Create(dir string) (*Spool, error) {
	dir = filepath.Clean(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	for _, d := range queueDirs {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("spool: %w", err)
		}
	}
	return Open(dir)
}

// Open opens the existing spool in dir for a run that changes it (flush,
// the admin commands) and creates nothing: dir and tmp/, new/, cur/,
// failed/, hold/ and bad/ must exist (else a *MissingError) and each must
// be readable and writable, so a permission problem shows now rather than
// after a delivery. Errors wrap the OS error, which names the path.
func Open(dir string) (*Spool, error) {
	return open(dir, true)
}

// OpenReadOnly opens the existing spool in dir for reading only (queue,
// show): it checks that the directories exist and can be listed, and
// writes nothing, so a read-only spool (a read-only mount, a snapshot, an
// operator without write access) can still be listed. A state change made
// through the returned Spool fails with the OS error.
func OpenReadOnly(dir string) (*Spool, error) {
	return open(dir, false)
}

func open(dir string, write bool) (*Spool, error) {
	dir = filepath.Clean(dir)
	if err := exists(dir); err != nil {
		return nil, err
	}
	for _, d := range queueDirs {
		p := filepath.Join(dir, d)
		if err := exists(p); err != nil {
			return nil, err
		}
		if err := checkDir(p, write); err != nil {
			return nil, err
		}
	}
	host, _ := os.Hostname()
	return &Spool{dir: dir, host: sanitizeHost(host), pid: os.Getpid()}, nil
}

// exists returns a *MissingError when p does not exist, an error when it
// is not a directory.
func exists(p string) error {
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return &MissingError{Path: p}
	} else if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("spool: %s is not a directory", quoteName(p))
	}
	return nil
}

// checkDir reads one name of p and, when write is set, creates and removes
// a hidden probe file in it (Scan ignores dot files), which tests what
// access(2) cannot: a read-only file system, and the effective rather than
// the real user.
func checkDir(p string, write bool) error {
	d, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("spool: directory is not readable: %w", err)
	}
	_, err = d.Readdirnames(1)
	d.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("spool: directory is not readable: %w", err)
	}
	if !write {
		return nil
	}
	f, err := os.CreateTemp(p, ".probe-*")
	if err != nil {
		return fmt.Errorf("spool: directory is not writable: %w", err)
	}
	f.Close()
	if err := os.Remove(f.Name()); err != nil {
		return fmt.Errorf("spool: directory is not writable: %w", err)
	}
	return nil
}

// Dir returns the spool directory as given to Open, cleaned.
func (s *Spool) Dir() string { return s.dir }

// sanitizeHost keeps [A-Za-z0-9.-] of a host name and turns anything else
// (notably "/" and ":", which maildir forbids) into "_".
func sanitizeHost(h string) string {
	if h == "" {
		return "localhost"
	}
	return strings.Map(func(r rune) rune {
		if r == '.' || r == '-' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') {
			return r
		}
		return '_'
	}, h)
}

// newID returns a maildir unique name: "UNIXNANO.PpidRrandom.host", e.g.
// "1732881600123456789.P4242R9f86d081884c7d65.mx1". It has no "/" or ":".
// A sharded Spool draws names until one hashes to its shard (N draws on
// average for N shards), so that what it creates stays its own.
func (s *Spool) newID() string {
	for {
		if id := uniqueName(s.pid, s.host); s.shard.Owns(id) {
			return id
		}
	}
}

func uniqueName(pid int, host string) string {
	var b [8]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return strconv.FormatInt(time.Now().UnixNano(), 10) + ".P" + strconv.Itoa(pid) + "R" + hex.EncodeToString(b[:]) + "." + host
}

// validID refuses a name that is not a plain file name in one directory.
func validID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") || id[0] == '.' {
		return fmt.Errorf("spool: %q is not a message ID", id)
	}
	return nil
}

// path returns the full path of m, after checking its ID and queue.
func (s *Spool) path(m *Message) (string, error) {
	if err := validID(m.ID); err != nil {
		return "", err
	}
	switch m.Queue {
	case QueueNew, QueueCur, QueueFailed, QueueHold:
		return filepath.Join(s.dir, m.Queue, m.ID), nil
	}
	return "", fmt.Errorf("spool: message %s: queue %q is not new, cur, failed or hold", m.ID, m.Queue)
}

// syncDir fsyncs a directory so a rename or unlink in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: fsync directory: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("spool: fsync directory %s: %w", dir, err)
	}
	return nil
}

// Enqueue adds a message to new/ and returns its ID. env is checked first:
// From is "" (null sender) or passes addr.Check, To has at least one
// recipient and each passes addr.Check; an address error is returned as the
// *addr.Error itself. Arrival defaults to now, UID to a fresh random ID
// (written as X-Envelope-Id). msg must be an RFC 5322
// message: its first line must be a header field or empty (else an error,
// since it would be misread as part of the envelope). The file is written in
// tmp/, fsynced, renamed into new/ and new/ is fsynced; on any error nothing
// is left in tmp/ or new/. A message that breaks these rules gives a
// *ParseError with File "message". Errors other than *addr.Error and
// *ParseError are local I/O problems (ENOSPC, EACCES), worth retrying later.
func (s *Spool) Enqueue(env Envelope, msg io.Reader) (id string, err error) {
	nenv, br, err := prepare(env, msg)
	if err != nil {
		return "", err
	}
	id = s.newID()
	if _, err := s.writeState(QueueNew, id, nenv, br, true); err != nil {
		return "", err
	}
	return id, nil
}

// prepare checks env and the start of msg as Enqueue documents and returns
// the normalized envelope and a reader of the whole message.
func prepare(env Envelope, msg io.Reader) (Envelope, *bufio.Reader, error) {
	if env.Arrival.IsZero() {
		env.Arrival = time.Now()
	}
	if env.UID == "" {
		env.UID = newUID()
	}
	for _, rcpt := range env.To { // stricter than normalize: refuse, do not keep, a bad recipient
		if _, err := checkMailbox(rcpt); err != nil {
			return Envelope{}, nil, err
		}
	}
	nenv, err := normalize(env, true)
	if err != nil {
		return Envelope{}, nil, err
	}
	br := bufio.NewReaderSize(msg, 32<<10)
	head, err := br.Peek(len(envPrefix))
	if err != nil && !errors.Is(err, io.EOF) {
		return Envelope{}, nil, fmt.Errorf("spool: enqueue: reading the message: %w", err)
	}
	if hasEnvPrefix(head) {
		return Envelope{}, nil, &ParseError{File: "message", Line: 1, Msg: "the message starts with an X-Envelope- field, which would be read as an envelope line"}
	}
	if err := checkFirstLine(br, 1); err != nil {
		var pe *ParseError
		if errors.As(err, &pe) {
			pe.File = "message"
			return Envelope{}, nil, pe
		}
		return Envelope{}, nil, fmt.Errorf("spool: enqueue: reading the message: %w", err)
	}
	return nenv, br, nil
}

// Remove deletes m after every recipient was delivered, then fsyncs its
// directory. An error means the file may still be there (it would be sent
// again on the next run).
func (s *Spool) Remove(m *Message) error {
	p, err := s.path(m)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("spool: remove: %w", err)
	}
	return syncDir(filepath.Dir(p))
}

// RemoveUnsynced deletes m like Remove but does not fsync its directory:
// after a power loss (not a crash: the kernel has the unlink) the file may
// come back. It is for a caller that has already made the delivery durable
// elsewhere, such as the crash journal, and calls SyncQueues before it
// forgets that record. It saves one directory fsync per delivered message.
func (s *Spool) RemoveUnsynced(m *Message) error {
	p, err := s.path(m)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("spool: remove: %w", err)
	}
	return nil
}

// SyncQueues fsyncs new/, cur/ and failed/, making every RemoveUnsynced
// before it durable.
func (s *Spool) SyncQueues() error {
	for _, q := range [...]string{QueueNew, QueueCur, QueueFailed} {
		if err := syncDir(filepath.Join(s.dir, q)); err != nil {
			return err
		}
	}
	return nil
}

// Quarantine moves m to bad/ID and writes reason (made one line) to
// bad/ID.reason. If bad/ID exists already, a ".N" suffix is added. On error
// the message is where it was.
func (s *Spool) Quarantine(m *Message, reason string) error {
	if _, err := s.path(m); err != nil {
		return err
	}
	_, err := s.quarantine(m.Queue, m.ID, reason)
	return err
}

// quarantine moves queue/id to bad/ and returns its new path.
func (s *Spool) quarantine(queue, id, reason string) (string, error) {
	return s.quarantineAs(queue, id, id, reason)
}

// quarantineAs moves queue/id to bad/base (base.N when taken) and returns
// its new path.
func (s *Spool) quarantineAs(queue, id, base, reason string) (string, error) {
	src := filepath.Join(s.dir, queue, id)
	bad := filepath.Join(s.dir, dirBad)
	name := base
	for n := 1; ; n++ {
		_, err := os.Lstat(filepath.Join(bad, name))
		if errors.Is(err, fs.ErrNotExist) {
			break
		} else if err != nil {
			return "", fmt.Errorf("spool: quarantine: %w", err)
		}
		name = base + "." + strconv.Itoa(n)
	}
	dst := filepath.Join(bad, name)
	if err := writeFileAtomic(filepath.Join(s.dir, dirTmp), dst+".reason", []byte(mta.OneLine(reason)+"\n")); err != nil {
		return "", err
	}
	if err := os.Rename(src, dst); err != nil {
		os.Remove(dst + ".reason")
		return "", fmt.Errorf("spool: quarantine: %w", err)
	}
	if err := syncDir(bad); err != nil {
		return dst, err
	}
	return dst, syncDir(filepath.Dir(src))
}

// writeFileAtomic writes data to a temp file in tmpDir, fsyncs it and
// renames it to dst. On error no temp file remains.
func writeFileAtomic(tmpDir, dst string, data []byte) error {
	f, err := os.CreateTemp(tmpDir, filepath.Base(dst)+".*")
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), dst)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("spool: writing %s: %w", dst, err)
	}
	return nil
}

// Due reports whether m should be attempted at now: its NextAttempt is zero
// or not after now. It does not clamp a NextAttempt set far in the future by
// a wrong clock; the caller applies its maximum backoff.
func Due(m *Message, now time.Time) bool {
	return m.NextAttempt.IsZero() || !m.NextAttempt.After(now)
}
