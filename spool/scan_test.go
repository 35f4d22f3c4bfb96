package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mxflush/mxflush/addr"
)

const goodFile = "X-Envelope-From: <alice@example.com>\nX-Envelope-To: <bob@example.net>\nSubject: ok\n\nbody\n"

func TestScanQuarantinesInvalid(t *testing.T) {
	tests := []struct {
		name      string
		queue     string
		file      string
		reasonSub string
		addrErr   bool
	}{
		{"injection: CR in recipient", "new", "X-Envelope-From: <alice@example.com>\nX-Envelope-To: <bob@example.net>\rRCPT TO:<spy@example.org>\nSubject: x\n\nbody\n", "CR or LF", true},
		{"injection: CRLF splits recipient", "new", "X-Envelope-From: <alice@example.com>\r\nX-Envelope-To: <bob@example.net>\r\nRCPT TO:<spy@example.org>\r\n\r\nbody\r\n", "line 3: the message does not start with a header field", false},
		{"injection: CRLF in sender", "cur", "X-Envelope-From: <alice@example.com\r\nRSET>\nX-Envelope-To: <bob@example.net>\n\nbody\n", "line 1: X-Envelope-From:", false},
		{"injection: NUL in recipient", "new", "X-Envelope-From: <alice@example.com>\nX-Envelope-To: <bob\x00@example.net>\n\nbody\n", "NUL in an address", true},
		{"injection: size parameter", "new", "X-Envelope-From: <alice@example.com>\nX-Envelope-To: <bob@example.net>\nX-Envelope-Size: 100\r\nRCPT TO:<spy@example.org>\n\n", `unknown envelope field "X-Envelope-Size"`, false},
		{"no recipient", "cur", "X-Envelope-From: <alice@example.com>\n\nbody\n", "no X-Envelope-To", false},
		{"plain message without sender", "new", "To: bob@example.net\n\nbody\n", "no Return-Path, Sender or From", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSpool(t)
			writeRaw(t, s, "new", "1.P1R1.good", goodFile)
			id := "2.P2R2.bad"
			path := writeRaw(t, s, tc.queue, id, tc.file)
			msgs, probs := mustScan(t, s)
			if len(msgs) != 1 || msgs[0].ID != "1.P1R1.good" || msgs[0].To[0] != "bob@example.net" {
				t.Errorf("Scan returned %v, want only the good message", msgs)
			}
			if len(probs) != 1 {
				t.Fatalf("problems = %+v, want 1", probs)
			}
			p := probs[0]
			bad := filepath.Join(s.Dir(), "bad", id)
			if p.ID != id || p.Path != path || p.MovedTo != bad || !strings.Contains(p.Reason, tc.reasonSub) || strings.ContainsAny(p.Reason, "\r\n\x00") {
				t.Errorf("problem = %+v\nwant reason containing %q, moved to %s", p, tc.reasonSub, bad)
			}
			var pe *ParseError
			if !errors.As(p.Err, &pe) || pe.File != tc.queue+"/"+id {
				t.Errorf("Problem.Err = %v, want *ParseError for %s/%s", p.Err, tc.queue, id)
			}
			var ae *addr.Error
			if errors.As(p.Err, &ae) != tc.addrErr {
				t.Errorf("Problem.Err is *addr.Error: %v, want %v", !tc.addrErr, tc.addrErr)
			}
			if got, err := os.ReadFile(bad); err != nil || string(got) != tc.file {
				t.Errorf("bad/ copy: %q, %v (must be the file unchanged)", got, err)
			}
			if reason, err := os.ReadFile(bad + ".reason"); err != nil || string(reason) != p.Reason+"\n" {
				t.Errorf("reason file %q, %v; want %q", reason, err, p.Reason)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("invalid file still in %s/: %v", tc.queue, err)
			}
			// List reports without moving.
			if err := os.Rename(bad, path); err != nil {
				t.Fatal(err)
			}
			_, probs, err := s.List(tc.queue)
			if err != nil || len(probs) != 1 || probs[0].MovedTo != "" {
				t.Errorf("List: %+v, %v", probs, err)
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("List moved the file: %v", err)
			}
		})
	}
}

func TestScanSameIDInTwoQueues(t *testing.T) {
	state := func(attempts int) string {
		return fmt.Sprintf("X-Envelope-From: <a@example.test>\nX-Envelope-To: <b@example.test>\nX-Envelope-Attempts: %d\n\nbody\n", attempts)
	}
	tests := []struct {
		name       string
		queues     []string // where copies are, with Attempts 0, 1, 2 in that order
		wantQueue  string
		wantGone   []string
		wantInScan bool
	}{
		{"new and cur: cur wins", []string{"new", "cur"}, "cur", []string{"new"}, true},
		{"new and failed: failed wins", []string{"new", "failed"}, "failed", []string{"new"}, false},
		{"all three", []string{"new", "cur", "failed"}, "failed", []string{"new", "cur"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSpool(t)
			const id = "5.P5R5.host"
			for i, q := range tc.queues {
				f := state(i)
				if q == "failed" {
					f = "X-Envelope-From: <a@example.test>\nX-Envelope-Failed: <b@example.test> 550\n\nbody\n"
				}
				writeRaw(t, s, q, id, f)
			}
			msgs, probs := mustScan(t, s)
			if len(probs) != 0 {
				t.Errorf("problems: %+v", probs)
			}
			if tc.wantInScan != (len(msgs) == 1) || (tc.wantInScan && (msgs[0].Queue != tc.wantQueue || msgs[0].Attempts != 1)) {
				t.Errorf("Scan = %+v", msgs)
			}
			for _, q := range tc.wantGone {
				if _, err := os.Stat(filepath.Join(s.Dir(), q, id)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("stale copy in %s/ not removed: %v", q, err)
				}
			}
			if _, err := os.Stat(filepath.Join(s.Dir(), tc.wantQueue, id)); err != nil {
				t.Errorf("winning copy in %s/: %v", tc.wantQueue, err)
			}
		})
	}
}

func TestScanIgnoresAndCleans(t *testing.T) {
	s := newSpool(t)
	writeRaw(t, s, "new", ".hidden", "garbage")
	writeRaw(t, s, "new", "3.P3R3.host", goodFile)
	fresh := writeRaw(t, s, "tmp", "fresh", "partial")
	old := writeRaw(t, s, "tmp", "old", "partial")
	long := time.Now().Add(-37 * time.Hour)
	os.Chtimes(old, long, long)
	os.Mkdir(filepath.Join(s.Dir(), "new", "subdir"), 0o700)
	if err := syscall.Mkfifo(filepath.Join(s.Dir(), "cur", "4.P4R4.fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	msgs, probs := mustScan(t, s)
	if len(msgs) != 1 {
		t.Errorf("msgs = %+v", msgs)
	}
	var reasons []string
	for _, p := range probs {
		reasons = append(reasons, p.ID+": "+p.Reason)
		if p.MovedTo != filepath.Join(s.Dir(), "bad", p.ID) {
			t.Errorf("%s moved to %q, want bad/ (a run must not report it forever)", p.ID, p.MovedTo)
		}
	}
	if len(probs) != 2 || !strings.Contains(strings.Join(reasons, "|"), "4.P4R4.fifo: not a regular file") {
		t.Errorf("problems = %q, want the FIFO and the directory reported", reasons)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh tmp file removed: %v", err)
	}
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("tmp file older than 36h kept: %v", err)
	}
}

func TestScanDescriptorsAndOrder(t *testing.T) {
	s := newSpool(t)
	for i := range 300 {
		arrival := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(300-i) * time.Minute)
		writeRaw(t, s, []string{"new", "cur"}[i%2], fmt.Sprintf("%d.P1R1.host", i),
			"X-Envelope-From: <a@example.test>\nX-Envelope-To: <b@example.test>\nX-Envelope-Arrival: "+arrival.Format(time.RFC3339)+"\n\nbody\n")
	}
	before := fdCount(t)
	msgs, probs := mustScan(t, s)
	if n := fdCount(t); n != before {
		t.Errorf("Scan leaked %d descriptors", n-before)
	}
	if len(msgs) != 300 || len(probs) != 0 {
		t.Fatalf("Scan: %d msgs, %v", len(msgs), probs)
	}
	for i := 1; i < len(msgs); i++ {
		if msgs[i].Arrival.Before(msgs[i-1].Arrival) {
			t.Fatalf("messages not sorted by Arrival at %d", i)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.Scan(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Scan with a cancelled context: %v", err)
	}
}

func TestScanArrivalDefaultsToMtime(t *testing.T) {
	s := newSpool(t)
	p := writeRaw(t, s, "new", "6.P6R6.host", goodFile)
	mt := time.Date(2026, 3, 4, 5, 6, 7, 800, time.UTC)
	os.Chtimes(p, mt, mt)
	msgs, _ := mustScan(t, s)
	if len(msgs) != 1 || !msgs[0].Arrival.Equal(mt.Truncate(time.Second)) {
		t.Errorf("Arrival = %v, want the file mtime %v", msgs[0].Arrival, mt)
	}
}

// When bad/ cannot take the file, it stays where it is and the reason says why.
func TestScanQuarantineFails(t *testing.T) {
	s := newSpool(t)
	path := writeRaw(t, s, "new", "7.P7R7.host", "X-Envelope-From: <>\nX-Envelope-To: <bob\x00>\n\n")
	if err := os.RemoveAll(filepath.Join(s.Dir(), "bad")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(s.Dir(), "bad"), nil, 0o600)
	_, probs := mustScan(t, s)
	if len(probs) != 1 || probs[0].MovedTo != "" || !strings.Contains(probs[0].Reason, "could not move it to bad/") ||
		!strings.Contains(probs[0].Reason, `line 2: X-Envelope-To: invalid address "bob\x00": NUL in an address`) {
		t.Errorf("problems = %+v", probs)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("file gone: %v", err)
	}
}

// A name that is not safe to print (a control character, an unprintable
// character, an octet that is not UTF-8) is never read as a message: Scan
// moves the file to bad/ under a fresh unique name, with the original name
// escaped in its reason.
func TestScanQuarantinesUnsafeNames(t *testing.T) {
	s := newSpool(t)
	const content = "X-Envelope-From: <a@example.test>\nX-Envelope-To: <b@example.test>\n\nbody\n"
	unsafe := []string{"x\nstatus=sent", "tab\there", "esc\x1b[2J", "c1\u009b", "rtl\u202egnp.exe", "bad\xffutf8"}
	for _, name := range unsafe {
		writeRaw(t, s, "new", name, content)
	}
	writeRaw(t, s, "cur", "cur\rname", content)
	writeRaw(t, s, "new", "fine name é.eml", content)
	msgs, probs := mustScan(t, s)
	if len(msgs) != 1 || msgs[0].ID != "fine name é.eml" {
		t.Errorf("scan kept %d messages, want only the safe name: %+v", len(msgs), msgs)
	}
	if len(probs) != len(unsafe)+1 {
		t.Fatalf("%d problems, want %d: %+v", len(probs), len(unsafe)+1, probs)
	}
	for _, p := range probs {
		base := filepath.Base(p.MovedTo)
		if !safeName(base) || strings.HasPrefix(p.MovedTo, filepath.Join(s.Dir(), "bad")) == false {
			t.Errorf("%q moved to %q, want a safe name in bad/", p.ID, p.MovedTo)
		}
		reason, err := os.ReadFile(p.MovedTo + ".reason")
		if err != nil || !strings.Contains(string(reason), strconv.QuoteToASCII(p.ID)) {
			t.Errorf("reason for %q: %q, %v; want the name quoted", p.ID, reason, err)
		}
	}
	if n := files(t, s, "new"); len(n) != 1 {
		t.Errorf("new/ holds %q", n)
	}
}
