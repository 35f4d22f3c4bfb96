package spool

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// uidOf is the UID Scan gives queue/id.
func uidOf(t *testing.T, s *Spool, queue, id string) string {
	t.Helper()
	m, err := s.Load(queue, id)
	if err != nil {
		t.Fatal(err)
	}
	return m.UID
}

func openJournal(t *testing.T, s *Spool) *Journal {
	t.Helper()
	j, err := s.OpenJournal()
	if err != nil {
		t.Fatalf("OpenJournal: %v", err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

// Lines written by concurrent appenders all read back, odd IDs included;
// a torn last line (a write cut short) and damage are skipped, not fatal.
func TestJournalAppendRead(t *testing.T) {
	s := newSpool(t)
	j := openJournal(t, s)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 50 {
				if err := j.Append(fmt.Sprintf("%d.P%dR1.host", i, w), "u1", "a@x.test", "b@y.test"); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	odd := "1.P1\tR\n\"x.host" // TAB, LF and a quote: valid as a file name, quoted in the journal
	if err := j.Append(odd, "u2", "c@x.test", "c@x.test"); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(s.Dir(), "journal"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("no tab here\n\"unterminated\tq@x.test\n9.P9R9.host\ttorn@x.te")
	f.Close()

	d, skipped, err := s.ReadJournal()
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 8*50+1 || skipped != 3 {
		t.Fatalf("read %d IDs, skipped %d lines; want %d and 3", d.Len(), skipped, 8*50+1)
	}
	if got := d.Rcpts(JournalKey{"7.P3R1.host", "u1"}); !slices.Equal(got, []string{"a@x.test", "b@y.test"}) {
		t.Errorf("7.P3R1.host: %q", got)
	}
	if got := d.Rcpts(JournalKey{odd, "u2"}); !slices.Equal(got, []string{"c@x.test"}) {
		t.Errorf("odd ID: %q (duplicates must collapse)", got)
	}
}

// GroupCommit syncs what was appended and returns when its context ends;
// Reset empties the file.
func TestJournalGroupCommitAndReset(t *testing.T) {
	s := newSpool(t)
	j := openJournal(t, s)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- j.GroupCommit(ctx, time.Millisecond) }()
	for i := range 100 {
		j.Append(fmt.Sprintf("%d.P1R1.host", i), "u", "a@x.test")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("GroupCommit: %v", err)
	}
	if d, _, _ := s.ReadJournal(); d.Len() != 100 {
		t.Fatalf("%d IDs in the journal, want 100", d.Len())
	}
	if err := j.Reset(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(s.Dir(), "journal")); err != nil || fi.Size() != 0 {
		t.Fatalf("journal after Reset: %v, %v", fi, err)
	}
	j.Append("1.P1R1.host", "u", "a@x.test") // O_APPEND: after Reset, writes start at 0
	if d, skipped, _ := s.ReadJournal(); d.Len() != 1 || skipped != 0 {
		t.Errorf("after Reset and one Append: %v, %d skipped", d, skipped)
	}
	var nilJ *Journal
	if nilJ.Append("x", "u", "a@x.test") != nil || nilJ.Sync() != nil {
		t.Error("a nil journal must do nothing")
	}
}

// Replay removes journalled recipients from their messages (new/ -> cur/,
// cur/ -> removed, cur/ -> failed/), leaves later states alone, empties the
// journal, and is idempotent.
func TestReplayJournal(t *testing.T) {
	s := newSpool(t)
	writeRaw(t, s, "new", "1.P1R1.partial", "X-Envelope-From: <a@x.test>\nX-Envelope-To: <b@x.test>\nX-Envelope-To: <c@y.test>\nX-Envelope-To: <d@z.test>\nSubject: 1\n\nbody\n")
	writeRaw(t, s, "cur", "2.P1R1.done", "X-Envelope-From: <a@x.test>\nX-Envelope-To: <b@x.test>\nX-Envelope-Attempts: 2\nSubject: 2\n\nbody\n")
	writeRaw(t, s, "cur", "3.P1R1.failures", "X-Envelope-From: <a@x.test>\nX-Envelope-To: <b@x.test>\nX-Envelope-Attempts: 1\n"+
		"X-Envelope-Failed: bounced <gone@x.test> 550 5.1.1 No such user\nSubject: 3\n\nbody\n")
	failed := writeRaw(t, s, "failed", "4.P1R1.later", "X-Envelope-From: <a@x.test>\nX-Envelope-Failed: <b@x.test> 550 no\nSubject: 4\n\nbody\n")
	stale := writeRaw(t, s, "new", "4.P1R1.later", "X-Envelope-From: <a@x.test>\nX-Envelope-To: <b@x.test>\nSubject: 4\n\nbody\n")
	plain := writeRaw(t, s, "new", "5.P1R1.plain", "From: a@x.test\nTo: b@x.test, c@x.test\nSubject: 5\n\nbody\n") // derived envelope
	j := openJournal(t, s)
	uid1 := uidOf(t, s, "new", "1.P1R1.partial")
	j.Append("1.P1R1.partial", uid1, "b@x.test", "d@z.test")
	j.Append("2.P1R1.done", uidOf(t, s, "cur", "2.P1R1.done"), "b@x.test")
	j.Append("3.P1R1.failures", uidOf(t, s, "cur", "3.P1R1.failures"), "b@x.test")
	j.Append("4.P1R1.later", uidOf(t, s, "new", "4.P1R1.later"), "b@x.test")
	j.Append("5.P1R1.plain", uidOf(t, s, "new", "5.P1R1.plain"), "c@x.test")
	j.Append("6.P1R1.gone", "x", "b@x.test")

	rep, err := s.ReplayJournal()
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("ReplayJournal: %+v, %v", rep, err)
	}
	if rep.Recipients != 5 || rep.Messages != 4 {
		t.Errorf("replay removed %d recipients from %d messages, want 5 from 4", rep.Recipients, rep.Messages)
	}
	msgs, _ := mustScan(t, s)
	got := map[string]*Message{}
	for _, m := range msgs {
		got[m.ID] = m
	}
	if m := got["1.P1R1.partial"]; m == nil || m.Queue != "cur" || !slices.Equal(m.To, []string{"c@y.test"}) || m.Attempts != 1 {
		t.Errorf("partial: %+v", m)
	}
	if m := got["5.P1R1.plain"]; m == nil || m.Queue != "cur" || !slices.Equal(m.To, []string{"b@x.test"}) {
		t.Errorf("plain maildir message: %+v", m)
	}
	if _, ok := got["2.P1R1.done"]; ok || len(msgs) != 2 {
		t.Errorf("scan after replay: %d messages, 2.P1R1.done present %v", len(msgs), ok)
	}
	if f, err := s.Load("failed", "3.P1R1.failures"); err != nil || len(f.To) != 0 || f.Failed[0].Notice != NoticeBounced {
		t.Errorf("failures-only message should be in failed/ with its notice: %+v, %v", f, err)
	}
	if _, err := os.Stat(failed); err != nil {
		t.Errorf("failed/ copy touched: %v", err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale new/ copy of a failed/ message: %v (Scan removes it, replay must not deliver it)", err)
	}
	if _, err := os.Stat(plain); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("plain message still in new/: %v", err)
	}
	if d, _, _ := s.ReadJournal(); d.Len() != 0 {
		t.Errorf("journal not emptied: %v", d)
	}

	// The same lines again (a crash during replay): nothing changes.
	j.Append("1.P1R1.partial", uid1, "b@x.test", "d@z.test")
	rep, err = s.ReplayJournal()
	if err != nil || rep.Recipients != 0 || rep.Messages != 0 {
		t.Errorf("second replay: %+v, %v", rep, err)
	}
	if m, err := s.Load("cur", "1.P1R1.partial"); err != nil || m.Attempts != 1 {
		t.Errorf("second replay changed the message: %+v, %v", m, err)
	}
}

// A full disk: a message that cannot be updated is reported and the journal
// kept whole, so that nothing it lists is forgotten.
func TestReplayJournalKeepsJournalOnFailure(t *testing.T) {
	s := newSpool(t)
	writeRaw(t, s, "new", "1.P1R1.host", "X-Envelope-From: <a@x.test>\nX-Envelope-To: <b@x.test>\nX-Envelope-To: <c@x.test>\nSubject: 1\n\nbody\n")
	j := openJournal(t, s)
	uid := uidOf(t, s, "new", "1.P1R1.host")
	j.Append("1.P1R1.host", uid, "b@x.test")
	replaceByFile(t, filepath.Join(s.Dir(), "cur")) // the rewrite into cur/ fails after its temp file is written
	rep, err := s.ReplayJournal()
	if err != nil || len(rep.Problems) != 1 || rep.Problems[0].ID != "1.P1R1.host" ||
		!strings.Contains(rep.Problems[0].Reason, "not a directory") {
		t.Fatalf("ReplayJournal: %+v, %v", rep, err)
	}
	if d, _, _ := s.ReadJournal(); !slices.Equal(d.Rcpts(JournalKey{"1.P1R1.host", uid}), []string{"b@x.test"}) {
		t.Errorf("journal lost its line: %v", d)
	}
	if n := files(t, s, "tmp"); len(n) != 0 {
		t.Errorf("temp file left behind: %q", n)
	}
	if m, err := s.Load("new", "1.P1R1.host"); err != nil || len(m.To) != 2 {
		t.Errorf("message changed: %+v, %v", m, err)
	}
}

func TestLoad(t *testing.T) {
	s := newSpool(t)
	writeRaw(t, s, "cur", "1.P1R1.host", "X-Envelope-From: <a@x.test>\nX-Envelope-To: <b@x.test>\nSubject: 1\n\nbody\n")
	writeRaw(t, s, "new", "2.P1R1.host", "X-Envelope-From: <a@x.test>\nX-Envelope-To: <b@x.test>\rRCPT TO:<spy@x.test>\n\n")
	if m, err := s.Load("cur", "1.P1R1.host"); err != nil || m.Queue != "cur" || m.To[0] != "b@x.test" || m.Size != int64(len("Subject: 1\n\nbody\n")) {
		t.Errorf("Load: %+v, %v", m, err)
	}
	if _, err := s.Load("new", "1.P1R1.host"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	var pe *ParseError
	if _, err := s.Load("new", "2.P1R1.host"); !errors.As(err, &pe) {
		t.Errorf("unparsable: %v", err)
	}
	if n := files(t, s, "new"); len(n) != 1 {
		t.Errorf("Load must move nothing: new/ = %q", n)
	}
	if _, err := s.Load("bad", "x"); err == nil {
		t.Error("Load from bad/ must fail")
	}
}

// Journal lines are about a message (file name and UID), not a name: a
// line whose file now holds another message (a name reused after the
// crash) is not applied, and is reported. A plain file's fingerprint is
// written down by its first state change, so journal lines made before it
// still match after it.
func TestReplayJournalChecksUID(t *testing.T) {
	s := newSpool(t)
	writeRaw(t, s, "new", "report.eml", "From: a@x.test\nTo: b@x.test, c@x.test\nSubject: 2\n\nday 2\n")
	writeRaw(t, s, "new", "plain", "From: a@x.test\nTo: b@x.test, c@x.test\nSubject: p\n\nbody\n")
	fp := uidOf(t, s, "new", "plain")
	j := openJournal(t, s)
	j.Append("report.eml", "9f86d081884c7d659a2feaa0c55ad015", "b@x.test") // the report of day 1
	j.Append("plain", fp, "b@x.test")
	rep, err := s.ReplayJournal()
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("ReplayJournal: %+v, %v", rep, err)
	}
	if rep.Recipients != 1 || len(rep.Mismatched) != 1 || rep.Mismatched[0].ID != "report.eml" ||
		!strings.Contains(rep.Mismatched[0].Reason, "b@x.test not taken off") {
		t.Errorf("replay: %+v; want plain's b@x.test removed and report.eml's line reported", rep)
	}
	if m, err := s.Load("new", "report.eml"); err != nil || !slices.Equal(m.To, []string{"b@x.test", "c@x.test"}) {
		t.Errorf("the new report.eml lost a recipient: %+v, %v", m, err)
	}
	m, err := s.Load("cur", "plain")
	if err != nil || m.UID != fp || m.fingerprinted || !slices.Equal(m.To, []string{"c@x.test"}) {
		t.Fatalf("plain after replay: %+v, %v; want its fingerprint written as its UID", m, err)
	}
	// A journal line from before that state change still matches it.
	j.Append("plain", fp, "c@x.test")
	if rep, err := s.ReplayJournal(); err != nil || rep.Recipients != 1 || len(rep.Mismatched) != 0 {
		t.Errorf("second replay: %+v, %v", rep, err)
	}
}

// A journal written before message UIDs (name TAB recipient) is replayed as
// the old versions did, by name, but only onto files not newer than the
// journal: a file written after the crash is a new message under a reused
// name, left alone and reported.
func TestReplayJournalOldFormat(t *testing.T) {
	s := newSpool(t)
	old := writeRaw(t, s, "new", "1.old", "X-Envelope-From: <a@x.test>\nX-Envelope-To: <b@x.test>\nX-Envelope-To: <c@x.test>\n\nSubject: 1\n\nbody\n")
	reused := writeRaw(t, s, "new", "2.reused", "X-Envelope-From: <a@x.test>\nX-Envelope-To: <b@x.test>\n\nSubject: 2\n\nbody\n")
	jp := filepath.Join(s.Dir(), "journal")
	if err := os.WriteFile(jp, []byte("1.old\tb@x.test\n2.reused\tb@x.test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	crash := time.Now().Add(-time.Hour)
	os.Chtimes(old, crash.Add(-time.Minute), crash.Add(-time.Minute))
	os.Chtimes(jp, crash, crash)
	os.Chtimes(reused, crash.Add(time.Minute), crash.Add(time.Minute))
	rep, err := s.ReplayJournal()
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("ReplayJournal: %+v, %v", rep, err)
	}
	if rep.Recipients != 1 || len(rep.Mismatched) != 1 || rep.Mismatched[0].ID != "2.reused" ||
		!strings.Contains(rep.Mismatched[0].Reason, "written after the journal") {
		t.Errorf("replay: %+v; want 1.old's b@x.test removed and 2.reused's line reported", rep)
	}
	if m, err := s.Load("cur", "1.old"); err != nil || !slices.Equal(m.To, []string{"c@x.test"}) {
		t.Errorf("1.old: %+v, %v", m, err)
	}
	if m, err := s.Load("new", "2.reused"); err != nil || !slices.Equal(m.To, []string{"b@x.test"}) {
		t.Errorf("2.reused lost its recipient: %+v, %v", m, err)
	}
	if b, _ := os.ReadFile(jp); len(b) != 0 {
		t.Errorf("journal not emptied: %q", b)
	}
}
