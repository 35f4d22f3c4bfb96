package spool

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mxflush/mxflush/addr"
)

func enqueueOne(t testing.TB, s *Spool, msg []byte, to ...string) *Message {
	t.Helper()
	id, err := s.Enqueue(Envelope{From: "a@example.test", To: to}, bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	msgs, _ := mustScan(t, s)
	for _, m := range msgs {
		if m.ID == id {
			return m
		}
	}
	t.Fatalf("enqueued %s not found by Scan", id)
	return nil
}

func TestDeferKeepsBody(t *testing.T) {
	s := newSpool(t)
	msg := bigMessage()
	m := enqueueOne(t, s, msg, "b@example.test", "c@example.test")
	arrival := m.Arrival
	next := time.Now().Add(5 * time.Minute)
	for attempt := 1; attempt <= 2; attempt++ { // new/ -> cur/, then cur/ -> cur/ in place
		env := m.Envelope
		env.To = []string{"c@example.test"}
		env.Attempts = attempt
		env.NextAttempt = next
		env.Replies = map[string]string{"c@example.test": "451 4.7.1 Greylisted\r\n", "b@example.test": "250 ok"}
		if err := s.Defer(m, env); err != nil {
			t.Fatalf("Defer %d: %v", attempt, err)
		}
		if m.Queue != "cur" || m.Attempts != attempt || m.Replies["c@example.test"] != "451 4.7.1 Greylisted" || len(m.Replies) != 1 || !m.Arrival.Equal(arrival) {
			t.Errorf("m after Defer %d: %+v", attempt, m.Envelope)
		}
		if got := files(t, s, "new"); len(got) != 0 {
			t.Errorf("new/ still holds %q", got)
		}
		if got := files(t, s, "tmp"); len(got) != 0 {
			t.Errorf("tmp/ holds %q", got)
		}
		if body := readAll(t, s, m); !bytes.Equal(body, msg) || m.Size != int64(len(msg)) {
			t.Errorf("Defer %d changed the body (%d octets, Size %d, want %d)", attempt, len(body), m.Size, len(msg))
		}
		msgs, probs := mustScan(t, s)
		if len(msgs) != 1 || len(probs) != 0 || !envEqual(msgs[0].Envelope, m.Envelope) || msgs[0].NextAttempt != next.UTC().Truncate(time.Second) {
			t.Fatalf("Scan after Defer: %+v, %v", msgs, probs)
		}
		if Due(msgs[0], time.Now()) {
			t.Errorf("deferred message is due now")
		}
	}
}

func TestDeferDerivedStripsBcc(t *testing.T) {
	s := newSpool(t)
	writeRaw(t, s, "new", "1.P1R1.host", "From: a@example.test\nBcc: hidden@example.test\nTo: b@example.test\n\nbody\n")
	msgs, _ := mustScan(t, s)
	m := msgs[0]
	if err := s.Defer(m, Envelope{From: m.From, To: []string{"hidden@example.test"}, Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(s.Dir(), "cur", m.ID))
	if !strings.HasPrefix(m.UID, "fp-") {
		t.Errorf("UID of a plain file %q, want its fingerprint", m.UID)
	}
	want := "X-Envelope-From: <a@example.test>\nX-Envelope-To: <hidden@example.test>\nX-Envelope-Id: " + m.UID + "\nX-Envelope-Arrival: " +
		m.Arrival.Format(time.RFC3339) + "\nX-Envelope-Attempts: 1\nFrom: a@example.test\nTo: b@example.test\n\nbody\n"
	if string(got) != want {
		t.Errorf("cur/ file:\n got %q\nwant %q", got, want)
	}
}

func TestDeferFailureLeavesOldState(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(t *testing.T, s *Spool, m *Message)
		env    func(m *Message) Envelope
		errSub string
	}{
		{name: "tmp/ is a file: no temp file can be made", errSub: "not a directory",
			break_: func(t *testing.T, s *Spool, m *Message) { replaceByFile(t, filepath.Join(s.Dir(), "tmp")) }},
		{name: "cur/ is a file: the rename fails after the temp file is written", errSub: "not a directory",
			break_: func(t *testing.T, s *Spool, m *Message) { replaceByFile(t, filepath.Join(s.Dir(), "cur")) }},
		{name: "file changed since Scan", errSub: "changed since it was scanned",
			break_: func(t *testing.T, s *Spool, m *Message) {
				f, _ := os.OpenFile(filepath.Join(s.Dir(), "new", m.ID), os.O_APPEND|os.O_WRONLY, 0)
				f.WriteString("more\n")
				f.Close()
			}},
		{name: "invalid address", errSub: "CR or LF",
			env: func(m *Message) Envelope { return Envelope{To: []string{"b@example.test\r\nDATA"}} }},
		{name: "no recipient left", errSub: "no pending recipient",
			env: func(m *Message) Envelope { return Envelope{From: m.From} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSpool(t)
			m := enqueueOne(t, s, bigMessage(), "b@example.test")
			p := filepath.Join(s.Dir(), "new", m.ID)
			if tc.break_ != nil {
				tc.break_(t, s, m)
			}
			old, _ := os.ReadFile(p)
			saved := *m
			env := Envelope{From: m.From, To: m.To, Attempts: 1}
			if tc.env != nil {
				env = tc.env(m)
			}
			err := s.Defer(m, env)
			if err == nil || !strings.Contains(err.Error(), tc.errSub) {
				t.Fatalf("Defer err = %v, want one containing %q", err, tc.errSub)
			}
			if now, _ := os.ReadFile(p); !bytes.Equal(now, old) {
				t.Errorf("old file changed")
			}
			if m.Queue != saved.Queue || !envEqual(m.Envelope, saved.Envelope) || m.Size != saved.Size {
				t.Errorf("m changed on error: %+v", m)
			}
			if fi, err := os.Stat(filepath.Join(s.Dir(), "tmp")); err == nil && fi.IsDir() {
				if n := files(t, s, "tmp"); len(n) != 0 {
					t.Errorf("temp file left behind: %q", n)
				}
			}
			if fi, err := os.Stat(filepath.Join(s.Dir(), "cur")); err == nil && fi.IsDir() {
				if n := files(t, s, "cur"); len(n) != 0 {
					t.Errorf("cur/ holds %q", n)
				}
			}
		})
	}
}

func replaceByFile(t *testing.T, dir string) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestFailAndList(t *testing.T) {
	s := newSpool(t)
	m := enqueueOne(t, s, []byte("Subject: x\n\nbody\n"), "gone@example.test")
	err := s.Fail(m, Envelope{From: m.From, Failed: []Failure{{Rcpt: "gone@example.test", Reply: "550 5.1.1 No such user\r\n"}}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Queue != "failed" || len(files(t, s, "new")) != 0 {
		t.Fatalf("after Fail: queue %q, new/ %q", m.Queue, files(t, s, "new"))
	}
	msgs, probs, err := s.List("failed")
	if err != nil || len(probs) != 0 || len(msgs) != 1 {
		t.Fatalf("List(failed) = %v, %v, %v", msgs, probs, err)
	}
	if f := msgs[0].Failed; len(f) != 1 || f[0] != (Failure{Rcpt: "gone@example.test", Reply: "550 5.1.1 No such user"}) || len(msgs[0].To) != 0 {
		t.Errorf("failed/ envelope: %+v", msgs[0].Envelope)
	}
	if b := readAll(t, s, msgs[0]); string(b) != "Subject: x\n\nbody\n" {
		t.Errorf("failed/ body %q", b)
	}
	if err := s.Fail(m, Envelope{From: m.From}); err == nil {
		t.Errorf("Fail with no recipient at all succeeded")
	}
	if _, _, err := s.List("bad"); err == nil {
		t.Errorf("List(bad) succeeded")
	}
	if err := s.Defer(m, Envelope{To: []string{"x@example.test"}}); err == nil {
		t.Errorf("Defer from failed/ succeeded")
	}
}

func TestRemoveAndQuarantine(t *testing.T) {
	s := newSpool(t)
	m1 := enqueueOne(t, s, []byte("Subject: 1\n\n"), "b@example.test")
	m2 := enqueueOne(t, s, []byte("Subject: 2\n\n"), "b@example.test")
	if err := s.Remove(m1); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(m1); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("second Remove: %v", err)
	}
	if err := s.Quarantine(m2, "operator said so\nsecond line"); err != nil {
		t.Fatal(err)
	}
	if got := files(t, s, "new"); len(got) != 0 {
		t.Errorf("new/ = %q", got)
	}
	reason, err := os.ReadFile(filepath.Join(s.Dir(), "bad", m2.ID+".reason"))
	if err != nil || string(reason) != "operator said so; second line\n" {
		t.Errorf("reason file %q, %v", reason, err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "bad", m2.ID)); err != nil {
		t.Errorf("quarantined file: %v", err)
	}
	// Same ID quarantined twice: the second one gets a suffix, nothing is overwritten.
	writeRaw(t, s, "new", m2.ID, "second")
	if err := s.Quarantine(&Message{ID: m2.ID, Queue: "new"}, "again"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(s.Dir(), "bad", m2.ID+".1")); err != nil || string(b) != "second" {
		t.Errorf("bad/%s.1 = %q, %v", m2.ID, b, err)
	}
	var ae *addr.Error
	if err := s.Defer(&Message{ID: "x", Queue: "new"}, Envelope{To: []string{"bad\rRSET"}}); !errors.As(err, &ae) {
		t.Errorf("Defer with an invalid address: %v, want *addr.Error", err)
	}
}
