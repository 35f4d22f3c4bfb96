package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeSpoolFile writes a producer's file the maildir way: tmp/, then new/.
func writeSpoolFile(t *testing.T, spoolDir, content string) string {
	t.Helper()
	for _, d := range []string{"tmp", "new", "cur", "failed", "hold", "bad"} {
		if err := os.MkdirAll(filepath.Join(spoolDir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	name := fmt.Sprintf("1732880000.P%d.Q%d.test", os.Getpid(), len(content))
	tmp := filepath.Join(spoolDir, "tmp", name)
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(spoolDir, "new", name)); err != nil {
		t.Fatal(err)
	}
	return name
}

// A spool file moved aside as invalid (batch's
// TestRunInjectedEnvelopeIsQuarantined checks that nothing of it is sent):
// flush exits 65 and its summary reports the spool problem, while the
// valid message still goes out.
func TestFlushInvalidFileExit65(t *testing.T) {
	w := newWorld(t, nil, nil, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	writeSpoolFile(t, w.spool, "X-Envelope-From: <alice@example.test>\nX-Envelope-To: <bob@a.test>\rRCPT TO:<spy@spy.test>\nSubject: x\n\nhi\n")
	good := w.enqueue("alice@example.test", msg("good"), "carol@a.test")
	code, out, errs := w.flush()
	if code != 65 {
		t.Errorf("exit %d, want 65 (invalid spool file moved aside)\n%s\n%s", code, out, errs)
	}
	if len(w.files("bad")) != 2 || !strings.Contains(out, "spool problem") || slices.Contains(w.files("new"), good) {
		t.Errorf("bad/ %v: the valid message should still go out and the problem be reported:\n%s", w.files("bad"), out)
	}
}

// Two flushes at once: a second flush while one holds the lock exits at once
// with 75 and names the holder's pid.
func TestFlushLockHeld(t *testing.T) {
	w := newWorld(t, nil, nil, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	w.enqueue("alice@example.test", msg("x"), "bob@a.test")
	sp := openSpool(t, w.spool)
	unlock, err := sp.Lock()
	if err != nil {
		t.Fatal(err)
	}
	code, _, errs := w.flush()
	if code != 75 || !strings.Contains(errs, fmt.Sprint(os.Getpid())) {
		t.Errorf("exit %d, stderr %q: want 75 naming pid %d", code, errs, os.Getpid())
	}
	if w.recv["127.0.0.2"].Sessions() != 0 {
		t.Error("the locked-out flush connected anyway")
	}
	unlock()
	if code, _, errs := w.flush(); code != 0 {
		t.Errorf("after unlock: exit %d: %s", code, errs)
	}
}

// --dry-run resolves and prints the plan, connects nowhere, changes nothing.
func TestFlushDryRun(t *testing.T) {
	w := newWorld(t, nil, nil, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	for i := 0; i < 3; i++ {
		w.enqueue("alice@example.test", msg(fmt.Sprint(i)), "bob@a.test")
	}
	code, out, _ := w.flush("--dry-run")
	if code != 0 || w.recv["127.0.0.2"].Sessions() != 0 || len(w.files("new")) != 3 {
		t.Fatalf("exit %d, %d sessions, %d files in new/: want 0, 0, 3", code, w.recv["127.0.0.2"].Sessions(), len(w.files("new")))
	}
	if !strings.Contains(out, "mx.a.test[127.0.0.2]") || !strings.Contains(out, "a.test") {
		t.Errorf("plan lacks the domain and its MX:\n%s", out)
	}
}

// bob@a.test and bob@A.TEST. are one recipient: one RCPT, one copy.
func TestFlushDuplicateRecipientOneCopy(t *testing.T) {
	w := newWorld(t, nil, nil, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	w.enqueue("alice@example.test", msg("dup"), "bob@a.test", "bob@A.TEST.", "<bob@a.test>")
	if code, _, errs := w.flush(); code != 0 {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	got := w.recv["127.0.0.2"].Messages()
	if len(got) != 1 || !slices.Equal(got[0].To, []string{"bob@a.test"}) {
		t.Errorf("received %+v, want one message to bob@a.test once", got)
	}
}
