package spool

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/mxflush/mxflush/addr"
)

func newSpool(t testing.TB) *Spool {
	t.Helper()
	s, err := Create(filepath.Join(t.TempDir(), "spool"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// files lists the names in DIR/sub, dot files included.
func files(t testing.TB, s *Spool, sub string) []string {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(s.Dir(), sub))
	if err != nil {
		t.Fatalf("ReadDir: %v", err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func writeRaw(t testing.TB, s *Spool, queue, id, content string) string {
	t.Helper()
	p := filepath.Join(s.Dir(), queue, id)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustScan(t testing.TB, s *Spool) ([]*Message, []Problem) {
	t.Helper()
	msgs, probs, err := s.Scan(context.Background())
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return msgs, probs
}

func readAll(t testing.TB, s *Spool, m *Message) []byte {
	t.Helper()
	r, err := s.Open(m)
	if err != nil {
		t.Fatalf("Open(%s): %v", m.ID, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", m.ID, err)
	}
	return b
}

func fdCount(t testing.TB) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return len(es)
}

func TestCreateLayout(t *testing.T) {
	s := newSpool(t)
	for _, d := range []string{"tmp", "new", "cur", "failed", "bad"} {
		fi, err := os.Stat(filepath.Join(s.Dir(), d))
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v", d, fi.Mode(), err)
		}
		if n := files(t, s, d); len(n) != 0 {
			t.Errorf("%s not empty after Open: %q", d, n)
		}
	}
	// A file where a queue directory should be: the error names the path.
	dir := filepath.Join(t.TempDir(), "spool")
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "cur"), nil, 0o600)
	if _, err := Create(dir); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "cur")) {
		t.Errorf("Create with cur/ a file: err = %v, want it to name %s/cur", err, dir)
	}
}

func TestEnqueue(t *testing.T) {
	s := newSpool(t)
	at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	msg := "From: alice@example.test\nSubject: x\n\nbody\n"
	id, err := s.Enqueue(Envelope{From: "alice@example.test", To: []string{"bob@example.test", "@hop.test:carol@example.test"}, Arrival: at}, strings.NewReader(msg))
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if strings.ContainsAny(id, "/:") || len(strings.Split(id, ".")) < 3 {
		t.Errorf("id %q is not a maildir unique name", id)
	}
	got, _ := os.ReadFile(filepath.Join(s.Dir(), "new", id))
	m, err := s.Load("new", id)
	if err != nil || len(m.UID) != 32 || m.fingerprinted {
		t.Fatalf("enqueued message has no random X-Envelope-Id: %+v, %v", m, err)
	}
	want := "X-Envelope-From: <alice@example.test>\nX-Envelope-To: <bob@example.test>\nX-Envelope-To: <carol@example.test>\nX-Envelope-Id: " + m.UID + "\nX-Envelope-Arrival: 2026-11-29T12:00:00Z\n" + msg
	if string(got) != want {
		t.Errorf("file:\n got %q\nwant %q", got, want)
	}
	if n := files(t, s, "tmp"); len(n) != 0 {
		t.Errorf("tmp/ not empty: %q", n)
	}
	id2, err := s.Enqueue(Envelope{To: []string{"b@example.test"}}, strings.NewReader(msg))
	if err != nil || id2 == id {
		t.Fatalf("second Enqueue: %q, %v", id2, err)
	}
	msgs, probs := mustScan(t, s)
	if len(msgs) != 2 || len(probs) != 0 {
		t.Fatalf("Scan: %d msgs, problems %v", len(msgs), probs)
	}
	for _, m := range msgs {
		if m.ID == id2 && (m.From != "" || time.Since(m.Arrival) > time.Minute || m.Arrival.Location() != time.UTC) {
			t.Errorf("null-sender message: From %q Arrival %v", m.From, m.Arrival)
		}
		if b := readAll(t, s, m); string(b) != msg || m.Size != int64(len(msg)) {
			t.Errorf("%s: body %q size %d, want %q", m.ID, b, m.Size, msg)
		}
	}
}

func TestEnqueueRefuses(t *testing.T) {
	msg := "Subject: x\n\nbody\n"
	tests := []struct {
		name    string
		env     Envelope
		msg     io.Reader
		addrErr bool
		errSub  string
	}{
		{"CR LF in recipient", Envelope{To: []string{"bob@example.net>\r\nRCPT TO:<spy@example.org"}}, strings.NewReader(msg), true, "CR or LF"},
		{"CR LF in sender", Envelope{From: "alice@example.com\r\nRSET", To: []string{"b@example.test"}}, strings.NewReader(msg), true, "CR or LF"},
		{"NUL", Envelope{To: []string{"b\x00@example.test"}}, strings.NewReader(msg), true, "NUL"},
		{"no @", Envelope{To: []string{"bob"}}, strings.NewReader(msg), true, "no @"},
		{"too long", Envelope{To: []string{strings.Repeat("a", 65) + "@example.test"}}, strings.NewReader(msg), true, "64"},
		{"no recipient", Envelope{From: "a@example.test"}, strings.NewReader(msg), false, "no pending recipient"},
		{"message starts with an envelope line", Envelope{To: []string{"b@example.test"}}, strings.NewReader("X-Envelope-To: <spy@example.org>\n\n"), false, "X-Envelope-"},
		{"message does not start with a header", Envelope{To: []string{"b@example.test"}}, strings.NewReader("RCPT TO:<spy@example.org>\n"), false, "does not start with a header"},
		{"reader fails half way", Envelope{To: []string{"b@example.test"}}, io.MultiReader(strings.NewReader("Subject: x\n\n"+strings.Repeat("y", 100<<10)), iotest.ErrReader(errors.New("disk on fire"))), false, "disk on fire"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSpool(t)
			id, err := s.Enqueue(tc.env, tc.msg)
			if err == nil || !strings.Contains(err.Error(), tc.errSub) {
				t.Fatalf("Enqueue = %q, %v; want error containing %q", id, err, tc.errSub)
			}
			if _, ok := err.(*addr.Error); ok != tc.addrErr {
				t.Errorf("err is %T; want *addr.Error untouched: %v", err, tc.addrErr)
			}
			for _, d := range []string{"tmp", "new"} {
				if n := files(t, s, d); len(n) != 0 {
					t.Errorf("%s/ not empty: %q", d, n)
				}
			}
		})
	}
}

func TestOpenBody(t *testing.T) {
	const env = "X-Envelope-From: <a@example.test>\nX-Envelope-To: <b@example.test>\n"
	tests := []struct {
		name, file, want string
	}{
		{"explicit envelope keeps Bcc", env + "Bcc: c@example.test\nSubject: x\n\nX-Envelope-To: <body@example.test>\n",
			"Bcc: c@example.test\nSubject: x\n\nX-Envelope-To: <body@example.test>\n"},
		{"explicit CRLF", strings.ReplaceAll(env, "\n", "\r\n") + "Subject: x\r\n\r\nbody\r\n", "Subject: x\r\n\r\nbody\r\n"},
		{"derived strips Bcc", "To: b@example.test\nBcc: c@example.test,\n d@example.test\nFrom: a@example.test\n\nBcc: kept\n",
			"To: b@example.test\nFrom: a@example.test\n\nBcc: kept\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSpool(t)
			writeRaw(t, s, "new", "1.P1R1.host", tc.file)
			msgs, probs := mustScan(t, s)
			if len(msgs) != 1 || len(probs) != 0 {
				t.Fatalf("Scan: %d msgs, %v", len(msgs), probs)
			}
			m := msgs[0]
			before := fdCount(t)
			r, err := s.Open(m)
			if err != nil {
				t.Fatal(err)
			}
			if n := fdCount(t); n != before+1 {
				t.Errorf("open body reader holds %d descriptors, want 1", n-before)
			}
			var got bytes.Buffer
			if _, err := io.CopyBuffer(&got, r, make([]byte, 7)); err != nil { // small reads cross the skips
				t.Fatal(err)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if n := fdCount(t); n != before {
				t.Errorf("%d descriptors leaked by the body reader", n-before)
			}
			if got.String() != tc.want || m.Size != int64(len(tc.want)) {
				t.Errorf("body %q (Size %d), want %q (%d)", got.String(), m.Size, tc.want, len(tc.want))
			}
			if strings.HasPrefix(got.String(), "X-Envelope-") {
				t.Errorf("body starts with an envelope line")
			}
		})
	}
}

func TestOpenRefusesChangedFile(t *testing.T) {
	s := newSpool(t)
	p := writeRaw(t, s, "new", "1.P1R1.host", "X-Envelope-From: <>\nX-Envelope-To: <b@example.test>\n\nbody\n")
	msgs, _ := mustScan(t, s)
	os.WriteFile(p, []byte("X-Envelope-From: <>\nX-Envelope-To: <b@example.test>\nX-Envelope-Attempts: 1\n\nbody\n"), 0o600)
	if _, err := s.Open(msgs[0]); err == nil || !strings.Contains(err.Error(), "changed since it was scanned") {
		t.Errorf("Open of a changed file: %v", err)
	}
	if _, err := s.Open(&Message{ID: "../lock", Queue: "new"}); err == nil {
		t.Errorf("Open accepted an ID with a slash")
	}
}

func TestDue(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		next time.Time
		want bool
	}{{time.Time{}, true}, {now.Add(-time.Second), true}, {now, true}, {now.Add(time.Second), false}} {
		if got := Due(&Message{Envelope: Envelope{NextAttempt: tc.next}}, now); got != tc.want {
			t.Errorf("Due(next %v) = %v", tc.next, got)
		}
	}
}

// bigMessage returns a header and ~200 KB of random bytes as its body.
func bigMessage() []byte {
	r := rand.New(rand.NewPCG(1, 2))
	body := make([]byte, 200<<10)
	for i := range body {
		body[i] = byte(r.Uint32())
	}
	return append([]byte("From: a@example.test\r\nSubject: big\r\n\r\n"), body...)
}
