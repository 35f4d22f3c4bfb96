package spool

import (
	"github.com/mxflush/mxflush/mta"

	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// journalName is the journal's file name in the spool root.
const journalName = "journal"

// maxJournalLine bounds one journal line; a longer one is damage and skipped.
const maxJournalLine = 8192

// Journal is the crash journal of one flush, SPOOL/journal: an append-only
// list of the recipients a server has accepted (2yz after the end of data,
// RFC 5321 §4.1.1.4) whose message file may not say so yet. A message's
// file changes only once all of its domain batches are done, so without the
// journal a crash would send every recipient delivered so far in that run
// again. ReplayJournal, at the start of the next run, removes them from
// their messages.
//
// One line per recipient: the message's file name, a TAB, its UID (see
// Envelope.UID), a TAB, the recipient as spooled, a LF:
//
//	1732880000.M5P4242Q1.host	9f86d081884c7d659a2feaa0c55ad015	bob@example.test
//
// A name that holds a control character or starts with `"` is written as a
// Go quoted string (strconv.Quote); UIDs and recipients never hold one
// (checkUID, addr.Check). The name finds the file and the UID proves it is
// the message the line is about: a producer that reuses a name (a daily
// "report.eml") after a crash must not lose its new message to the old
// one's journal lines. The UID is kept by every state change and by a move
// to another host, which device and inode numbers are not.
//
// Lines of two fields (name TAB recipient) were written by versions before
// the UID; a crash before the upgrade may leave them. They are matched by
// name alone, as those versions did, but only to a file that is not newer
// than the journal (its modification time is at most the journal's): a
// file written after the crashed run's last journal line is a new message.
//
// Durability. Append writes its lines with one write(2) before it returns,
// so they are in the kernel's page cache and survive the death of the
// process (kill -9, OOM, a panic): duplicates after a process crash are
// limited to the transactions whose reply had arrived but whose Append had
// not yet been made, at most one per session. fsync is group-committed:
// GroupCommit syncs whenever lines were appended since the last sync, one
// fsync at a time, so one fsync covers every line appended while the
// previous one ran and no worker waits for the disk. After an operating
// system crash or power loss, the lines appended since the last completed
// fsync (at most about two fsync durations' worth) may be lost, and those
// recipients may get a second copy.
//
// A Journal is safe for concurrent use; a nil *Journal appends and syncs
// nothing (a run that could not open its journal goes on without one). The
// caller holds the spool lock.
type Journal struct {
	f    *os.File
	kick chan struct{} // wakes GroupCommit; buffered 1

	mu    sync.Mutex
	dirty bool // lines written since the last fsync started
	buf   []byte
}

// OpenJournal opens SPOOL/journal for appending, creating it (mode 0600)
// when missing and fsyncing the spool directory so the new name is durable.
// A sharded Spool (see WithShard) has its own, SPOOL/journal.I-of-N, so
// that the shards running at once never write one file. Errors are local
// I/O problems.
func (s *Spool) OpenJournal() (*Journal, error) {
	f, err := os.OpenFile(filepath.Join(s.dir, s.journalName()), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: journal: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return nil, err
	}
	return &Journal{f: f, kick: make(chan struct{}, 1)}, nil
}

// Append records that the recipients rcpts (as spooled) of the message
// with file name id and UID uid (Message.ID, Message.UID) were delivered,
// with one write(2) of one line each. It does not fsync (see GroupCommit).
// Nothing is written for an empty rcpts. Errors (ENOSPC, EIO) are local and
// mean the lines may be missing: the recipients may be sent again if the
// process dies before their message's file is updated.
func (j *Journal) Append(id, uid string, rcpts ...string) error {
	if j == nil || len(rcpts) == 0 {
		return nil
	}
	j.mu.Lock()
	b := j.buf[:0]
	for _, r := range rcpts {
		b = appendJournalLine(b, id, uid, r)
	}
	j.buf = b
	_, err := j.f.Write(b)
	j.dirty = true // even a short write may have reached the file
	j.mu.Unlock()
	select {
	case j.kick <- struct{}{}:
	default:
	}
	if err != nil {
		return fmt.Errorf("spool: journal: %w", err)
	}
	return nil
}

// Sync fsyncs the journal when lines were appended since the last sync
// began. Appends made while it runs are left for the next Sync.
func (j *Journal) Sync() error {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	dirty := j.dirty
	j.dirty = false
	j.mu.Unlock()
	if !dirty {
		return nil
	}
	if err := j.f.Sync(); err != nil {
		j.mu.Lock()
		j.dirty = true
		j.mu.Unlock()
		return fmt.Errorf("spool: journal: fsync: %w", err)
	}
	return nil
}

// GroupCommit syncs the journal when lines have been appended since the
// last sync, one fsync at a time and at most one per interval, until ctx
// ends; then it syncs once more and returns the first error met (it keeps
// going after an error). The interval bounds what a power loss can take
// from the journal (the lines of about two intervals; each such recipient
// is sent again by the next run, never lost), and saves the fsyncs (and
// the thread switches around them) of a busy run: with one session, an
// fsync per message took a third of the CPU.
func (j *Journal) GroupCommit(ctx context.Context, interval time.Duration) error {
	var first error
	keep := func(err error) {
		if first == nil {
			first = err
		}
	}
	for {
		select {
		case <-ctx.Done():
			keep(j.Sync())
			return first
		case <-j.kick:
			keep(j.Sync())
		}
		select {
		case <-ctx.Done():
			keep(j.Sync())
			return first
		case <-time.After(interval):
		}
	}
}

// Reset empties the journal and fsyncs it: to be called when every message
// it names has had its state change committed.
func (j *Journal) Reset() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.f.Truncate(0); err != nil {
		return fmt.Errorf("spool: journal: truncate: %w", err)
	}
	j.dirty = false
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("spool: journal: fsync: %w", err)
	}
	return nil
}

// Close closes the journal file; it does not sync.
func (j *Journal) Close() error { return j.f.Close() }

// journalField quotes s when it could not be read back from a line as is.
func journalField(s string) string {
	if s == "" || s[0] == '"' || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return strconv.Quote(s)
	}
	return s
}

// Delivered is what a journal records: for each message (file name and
// UID), the recipients (as spooled) that a server accepted, in journal
// order, without duplicates.
type Delivered struct {
	lines map[JournalKey][]string
	mtime time.Time // the journal's modification time, for lines without a UID
}

// JournalKey names the message of a journal line: its file name and UID;
// UID is "" for a line written before UIDs existed.
type JournalKey struct{ ID, UID string }

// Len is the number of messages the journal names.
func (d Delivered) Len() int { return len(d.lines) }

// Keys returns the messages the journal names, sorted.
func (d Delivered) Keys() []JournalKey {
	keys := make([]JournalKey, 0, len(d.lines))
	for k := range d.lines {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b JournalKey) int {
		if c := strings.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return strings.Compare(a.UID, b.UID)
	})
	return keys
}

// Rcpts returns the recipients the journal lists for k.
func (d Delivered) Rcpts(k JournalKey) []string { return d.lines[k] }

// Matches reports whether journal lines for k are about m: same file name
// and UID, or, for a line without a UID, same name and m's file not newer
// than the journal. When not, why says why, in plain words.
func (d Delivered) Matches(k JournalKey, m *Message) (ok bool, why string) {
	switch {
	case k.ID != m.ID:
		return false, "another file name"
	case k.UID == "" && m.ModTime.After(d.mtime):
		return false, fmt.Sprintf("a line without a message UID (written before an upgrade) names %s, whose file was written after the journal (at %s, the journal at %s): it is a new message under a reused name",
			quoteName(m.ID), m.ModTime.UTC().Format(time.RFC3339Nano), d.mtime.UTC().Format(time.RFC3339Nano))
	case k.UID != "" && k.UID != m.UID:
		return false, fmt.Sprintf("the journal's lines are about message %s, and the file %s now holds message %s: a new message under a reused name",
			k.UID, quoteName(m.ID), m.UID)
	}
	return true, ""
}

// For returns the recipients the journal lists as delivered for m (see
// Matches), for a caller that reads the journal without replaying it.
func (d Delivered) For(m *Message) []string {
	var out []string
	for _, uid := range [...]string{m.UID, ""} {
		k := JournalKey{m.ID, uid}
		if ok, _ := d.Matches(k, m); ok {
			out = append(out, d.lines[k]...)
		}
	}
	return out
}

// journalName is the file name of s's own crash journal: "journal", or
// "journal.I-of-N" for a shard.
func (s *Spool) journalName() string {
	if !s.shard.Sharded() {
		return journalName
	}
	return journalName + "." + s.shard.suffix()
}

// journalFile is one crash journal in the spool root: SPOOL/journal
// (shard zero) or SPOOL/journal.I-of-N.
type journalFile struct {
	name string
	sh   Shard
}

// journalFiles lists the crash journals in the spool root.
func (s *Spool) journalFiles() ([]journalFile, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("spool: journal: %w", err)
	}
	var out []journalFile
	for _, e := range entries {
		if e.Name() == journalName {
			out = append(out, journalFile{name: journalName})
			continue
		}
		if rest, ok := strings.CutPrefix(e.Name(), journalName+"."); ok {
			if sh, ok := parseSuffix(rest); ok {
				out = append(out, journalFile{name: e.Name(), sh: sh})
			}
		}
	}
	return out, nil
}

// ReadJournal reads every crash journal of the spool (SPOOL/journal and
// the shards' SPOOL/journal.I-of-N) without changing anything. skipped
// counts the lines that could not be read: a last line without its LF (a
// write cut short by a power loss), or damage. A missing journal is empty.
func (s *Spool) ReadJournal() (d Delivered, skipped int, err error) {
	files, err := s.journalFiles()
	if err != nil {
		return Delivered{}, 0, err
	}
	d = Delivered{lines: map[JournalKey][]string{}}
	for _, jf := range files {
		one, n, err := s.readJournal(jf.name)
		if err != nil {
			return Delivered{}, 0, err
		}
		skipped += n
		if jf.name == journalName {
			d.mtime = one.mtime // lines without a UID are only ever in it
		}
		for _, k := range one.Keys() {
			for _, r := range one.lines[k] {
				if !slices.Contains(d.lines[k], r) {
					d.lines[k] = append(d.lines[k], r)
				}
			}
		}
	}
	return d, skipped, nil
}

// readJournal reads the crash journal SPOOL/name as ReadJournal does.
func (s *Spool) readJournal(name string) (d Delivered, skipped int, err error) {
	d = Delivered{lines: map[JournalKey][]string{}}
	// Not through a symbolic link, and not blocked by a FIFO: see spoolOpenFlags.
	f, err := os.OpenFile(filepath.Join(s.dir, name), os.O_RDONLY|spoolOpenFlags, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return d, 0, nil
	} else if err != nil {
		return Delivered{}, 0, fmt.Errorf("spool: journal: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Delivered{}, 0, fmt.Errorf("spool: journal: %w", err)
	} else if !fi.Mode().IsRegular() {
		return Delivered{}, 0, fmt.Errorf("spool: journal %s is %s, not a regular file", f.Name(), typeName(fi.Mode().Type()))
	}
	d.mtime = fi.ModTime()
	type seenKey struct {
		k    JournalKey
		rcpt string
	}
	seen := map[seenKey]bool{}
	br := bufio.NewReaderSize(f, 32<<10)
	buf := make([]byte, 0, 256)
	for {
		line, err := readLine(br, buf, maxJournalLine)
		if errors.Is(err, io.EOF) {
			return d, skipped, nil
		}
		if errors.Is(err, errLineTooLong) {
			skipped++
			if err := skipLine(br); err != nil {
				return d, skipped, nil
			}
			continue
		}
		if err != nil {
			return Delivered{}, 0, fmt.Errorf("spool: journal: %w", err)
		}
		buf = line
		k, rcpt, ok := parseJournalLine(line)
		if !ok {
			skipped++
			continue
		}
		if sk := (seenKey{k, rcpt}); !seen[sk] {
			seen[sk] = true
			d.lines[k] = append(d.lines[k], rcpt)
		}
	}
}

// skipLine discards the rest of an over-long line.
func skipLine(br *bufio.Reader) error {
	for {
		_, err := br.ReadSlice('\n')
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
}

// parseJournalLine splits "ID\tUID\tRCPT\n", or "ID\tRCPT\n" as written
// before UIDs existed (UID ""); a line without its LF is torn.
func parseJournalLine(line []byte) (k JournalKey, rcpt string, ok bool) {
	if len(line) == 0 || line[len(line)-1] != '\n' {
		return JournalKey{}, "", false
	}
	f := strings.Split(string(line[:len(line)-1]), "\t")
	unq := func(s string) (string, bool) {
		if strings.HasPrefix(s, `"`) {
			u, err := strconv.Unquote(s)
			return u, err == nil
		}
		return s, !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
	}
	var a, uid, b string
	switch len(f) {
	case 2:
		a, b = f[0], f[1]
	case 3:
		a, uid, b = f[0], f[1], f[2]
		if checkUID(uid) != nil {
			return JournalKey{}, "", false
		}
	default:
		return JournalKey{}, "", false
	}
	id, ok1 := unq(a)
	rcpt, ok2 := unq(b)
	if !ok1 || !ok2 || validID(id) != nil || rcpt == "" {
		return JournalKey{}, "", false
	}
	return JournalKey{id, uid}, rcpt, true
}

// Replay is what ReplayJournal did.
type Replay struct {
	Recipients int       // recipients removed from their message's pending list
	Messages   int       // messages rewritten, moved to failed/ or removed
	Skipped    int       // journal lines that could not be read (see ReadJournal)
	Problems   []Problem // messages that could not be updated; the journal is kept for them
	// Mismatched are the journal lines not applied because their file
	// holds another message now (see Delivered.Matches): a name reused
	// after the crash. They are dropped with the journal, and reported.
	Mismatched []Problem
}

// ReplayJournal applies the journal a crashed run left, then empties it.
// Each journalled recipient still pending in its message (cur/ or new/; a
// copy in failed/ is a later state and is left alone) is removed from it:
// the file is rewritten into cur/ with one more attempt and its next-attempt
// time unchanged (Defer), or moved to failed/ when only failures remain
// (Fail), or removed when nothing remains (Remove). Replay is idempotent: a
// recipient that is no longer pending is skipped, so a crash during replay
// only means replaying again.
//
// An unsharded Spool replays every journal in the spool root (its own,
// SPOOL/journal, and those shards left, SPOOL/journal.I-of-N), and empties
// its own and removes the others. A sharded Spool (see WithShard)
// replays its own journal, and the lines of its shard's messages in the
// journals of runs with another shard count or none (a crash before the
// shard count changed); it leaves alone the journals of the other shards
// of its count, which may be running. Such a foreign journal is rewritten
// without the lines it applied (and removed once none is left) under the
// shards' lock file (see Lock), since the other shards do the same.
//
// A message whose file cannot be updated (ENOSPC, EACCES) is reported in
// Problems and its journal is kept whole, so the next run tries again; the
// caller must not deliver that message in this run (its journalled
// recipients would get a second copy). err is only for a journal that
// cannot be read or emptied. The caller holds the spool lock.
func (s *Spool) ReplayJournal() (Replay, error) {
	files, err := s.journalFiles()
	if err != nil {
		return Replay{}, err
	}
	var rep Replay
	var foreign []journalFile
	for _, jf := range files {
		switch {
		case !s.shard.Sharded() || jf.name == s.journalName():
			if err := s.replayFile(jf.name, &rep); err != nil {
				return rep, err
			}
		case jf.sh.Count != s.shard.Count:
			foreign = append(foreign, jf)
		}
	}
	if len(foreign) == 0 {
		return rep, nil
	}
	meta, err := lockFile(filepath.Join(s.dir, "lock.shards"), syscall.LOCK_EX)
	if err != nil {
		return rep, fmt.Errorf("spool: journal: %w", err)
	}
	defer unlocker(meta.Name(), meta)()
	for _, jf := range foreign {
		if err := s.replayFile(jf.name, &rep); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// replayFile replays the lines of the journal SPOOL/name about messages
// s owns and adds what it did to rep. When every one was applied, the
// journal is emptied if it is s's own, else rewritten with the lines of
// other shards' messages only, or removed when there are none.
func (s *Spool) replayFile(name string, rep *Replay) error {
	d, skipped, err := s.readJournal(name)
	if err != nil {
		return err
	}
	rep.Skipped += skipped
	var rest []JournalKey // lines about other shards' messages
	failed := false
	for _, k := range d.Keys() {
		if !s.shard.Owns(k.ID) {
			rest = append(rest, k)
			continue
		}
		n, why, err := s.replayOne(d, k)
		switch {
		case err != nil:
			failed = true
			rep.Problems = append(rep.Problems, Problem{ID: k.ID, Err: err,
				Reason: mta.OneLine("cannot remove the recipients the crash journal lists as delivered: " + err.Error())})
		case why != "":
			rep.Mismatched = append(rep.Mismatched, Problem{ID: k.ID,
				Reason: mta.OneLine("crash journal lines not applied (" + strings.Join(d.Rcpts(k), ", ") + " not taken off): " + why)})
		case n > 0:
			rep.Recipients += n
			rep.Messages++
		}
	}
	if failed || (d.Len() == len(rest) && skipped == 0) {
		return nil // kept whole, or nothing of s's in it
	}
	p := filepath.Join(s.dir, name)
	if len(rest) > 0 {
		// The lines of the other shards' messages stay for their runs;
		// the file keeps its modification time, which tells its lines
		// without a UID from files written after it (see Matches).
		var b []byte
		for _, k := range rest {
			for _, r := range d.Rcpts(k) {
				b = appendJournalLine(b, k.ID, k.UID, r)
			}
		}
		if err := writeFileAtomic(filepath.Join(s.dir, dirTmp), p, b); err != nil {
			return fmt.Errorf("spool: journal: %w", err)
		}
		if !d.mtime.IsZero() {
			os.Chtimes(p, d.mtime, d.mtime)
		}
		return syncDir(s.dir)
	}
	if name != s.journalName() {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("spool: journal: %w", err)
		}
		return syncDir(s.dir)
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("spool: journal: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("spool: journal: truncate: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("spool: journal: fsync: %w", err)
	}
	return nil
}

// appendJournalLine appends one journal line to b: ID TAB UID TAB RCPT LF,
// or ID TAB RCPT LF for a line read without a UID.
func appendJournalLine(b []byte, id, uid, rcpt string) []byte {
	b = append(b, journalField(id)...)
	b = append(b, '\t')
	if uid != "" {
		b = append(b, journalField(uid)...)
		b = append(b, '\t')
	}
	b = append(b, journalField(rcpt)...)
	return append(b, '\n')
}

// replayOne removes k's recipients from the pending list of k's message
// and returns how many it removed. A message that is gone, in failed/, or
// unparsable (Scan will move it to bad/) is left alone; a file that holds
// another message now is left alone and why says so.
func (s *Spool) replayOne(d Delivered, k JournalKey) (n int, why string, err error) {
	m, err := s.find(k.ID)
	var pe *ParseError
	switch {
	case errors.As(err, &pe):
		return 0, "", nil
	case err != nil:
		return 0, "", err
	case m == nil || m.Queue == QueueFailed:
		return 0, "", nil
	}
	if ok, why := d.Matches(k, m); !ok {
		return 0, why, nil
	}
	rcpts := d.Rcpts(k)
	done := make(map[string]bool, len(rcpts))
	for _, r := range rcpts {
		done[r] = true
	}
	env := m.Envelope
	env.To = nil
	for _, r := range m.To {
		if !done[r] {
			env.To = append(env.To, r)
		}
	}
	n = len(m.To) - len(env.To)
	if n == 0 {
		return 0, "", nil
	}
	env.Attempts++
	switch {
	case len(env.To) > 0:
		err = s.Defer(m, env)
	case len(env.Failed) > 0:
		env.NextAttempt = time.Time{}
		err = s.Fail(m, env)
	default:
		err = s.Remove(m)
	}
	if err != nil {
		return 0, "", err
	}
	return n, "", nil
}
