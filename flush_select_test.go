package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// flush ID... delivers just the messages named (batch's
// TestRunOnlySelectedIDs checks the selection), and says how many it left;
// a name that is no spool file name is a usage error.
func TestFlushIDs(t *testing.T) {
	w := newWorld(t, nil, nil, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	one := w.enqueue("alice@example.test", msg("one"), "bob@a.test")
	two := w.enqueue("alice@example.test", msg("two"), "carol@a.test")
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

// flush --domain D selects the recipients in D, the domain given in any
// case (batch's TestRunOnlySelectedDomain checks what is left pending):
// --domain A.TEST sends to a.test only.
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
	if !slices.Contains(w.files("cur"), both) || !slices.Contains(w.files("new"), onlyB) {
		t.Errorf("new/ %v, cur/ %v: want the message to both domains waiting for b.test, the other untouched", w.files("new"), w.files("cur"))
	}
}
