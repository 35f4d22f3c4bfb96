package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// flush ID... delivers just those messages, now, even one whose next
// attempt is later (postqueue -i); the rest of the spool is left as it was.
func TestFlushIDs(t *testing.T) {
	w := newWorld(t, nil, nil, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	one := w.enqueue("alice@example.test", msg("one"), "bob@a.test")
	two := w.enqueue("alice@example.test", msg("two"), "carol@a.test")
	// one is deferred into the future: flush ID sends it anyway.
	p := filepath.Join(w.spool, "new", one)
	b, _ := os.ReadFile(p)
	os.WriteFile(p, []byte("X-Envelope-Next-Attempt: 2099-01-01T00:00:00Z\n"+string(b)), 0o600)
	code, out, errs := w.flush(one)
	if code != 0 {
		t.Fatalf("flush %s: exit %d\n%s%s", one, code, out, errs)
	}
	got := w.recv["127.0.0.2"].Messages()
	if len(got) != 1 || got[0].To[0] != "bob@a.test" {
		t.Errorf("received %v, want only the message named", got)
	}
	if _, err := os.Stat(filepath.Join(w.spool, "new", two)); err != nil {
		t.Errorf("the other message was touched: %v", err)
	}
	if !strings.Contains(out, "1 message(s) not selected") {
		t.Errorf("summary does not say one message was left:\n%s", out)
	}
	if code, _, errs := w.flush("../etc/passwd"); code != 64 {
		t.Errorf("flush ../etc/passwd: exit %d, want 64\n%s", code, errs)
	}
}

// flush --domain D delivers the recipients in D now (postqueue -s); a
// message's recipients in other domains stay pending as they were, with no
// attempt counted, and messages with none in D are not touched.
func TestFlushDomain(t *testing.T) {
	w := newWorld(t, []string{"127.0.0.2", "127.0.0.3"}, nil,
		"a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2", "b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.3")
	both := w.enqueue("alice@example.test", msg("both"), "bob@a.test", "carol@b.test")
	onlyB := w.enqueue("alice@example.test", msg("only b"), "dave@b.test")
	code, out, errs := w.flush("--domain", "A.TEST")
	if code != 0 {
		t.Fatalf("flush --domain A.TEST: exit %d\n%s%s", code, out, errs)
	}
	if n := len(w.recv["127.0.0.2"].Messages()); n != 1 {
		t.Errorf("a.test got %d messages, want 1", n)
	}
	if n := len(w.recv["127.0.0.3"].Messages()); n != 0 {
		t.Errorf("b.test got %d messages, want none", n)
	}
	rest, err := os.ReadFile(filepath.Join(w.spool, "cur", both))
	if err != nil {
		t.Fatalf("the message to both domains: %v (queues: new %v cur %v)", err, w.files("new"), w.files("cur"))
	}
	if s := string(rest); !strings.Contains(s, "X-Envelope-To: <carol@b.test>") || strings.Contains(s, "bob@a.test>") || strings.Contains(s, "X-Envelope-Attempts") {
		t.Errorf("the message to both domains should keep carol@b.test pending, untried:\n%s", s)
	}
	if !slices.Contains(w.files("new"), onlyB) {
		t.Errorf("the message to b.test only was touched: new/ %v", w.files("new"))
	}
}
