package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mxflush/mxflush/internal/testnet"
)

// setImmutable sets or clears the immutable attribute (chattr +i) of each
// file: root cannot unlink such a file either (EPERM), so the removal of a
// delivered message stays undone, as when the run is killed with its
// removal still queued. It reports whether chattr worked (not on every
// file system).
func setImmutable(t *testing.T, on bool, files ...string) bool {
	t.Helper()
	if len(files) == 0 {
		return true
	}
	flag := "-i"
	if on {
		flag = "+i"
	} else {
		var left []string // the files the runs removed are gone
		for _, f := range files {
			if _, err := os.Lstat(f); err == nil {
				left = append(left, f)
			}
		}
		if files = left; len(files) == 0 {
			return true
		}
	}
	out, err := exec.Command("chattr", append([]string{flag}, files...)...).CombinedOutput()
	if err != nil {
		t.Logf("chattr %s: %v %s", flag, err, out)
		return false
	}
	return true
}

// A delivered message whose file cannot be removed (EPERM: immutable) is
// reported as a spool problem (exit 74) and its recipients stay in the
// crash journal, which the run keeps; once the file can go, the next run's
// replay removes it without sending it again, and empties the journal.
func TestRemovalFailureKeepsJournal(t *testing.T) {
	g := newGate(0)
	w := newWorld(t, []string{"127.0.0.3"}, nil, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	sc, err := testnet.StartScript("127.0.0.2:"+strconv.Itoa(w.port), g.handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	openSpool(t, w.spool)
	const n = 6
	var stuck []string
	for i := range n {
		name := fmt.Sprintf("1732880000.M%d.P1.test", i)
		w.put("new", name, fmt.Sprintf("X-Envelope-From: <alice@example.test>\nX-Envelope-To: <r%d@a.test>\nSubject: %d\r\n\r\nbody\r\n", i, i))
		if i%3 == 0 {
			stuck = append(stuck, filepath.Join(w.spool, "new", name))
		}
	}
	t.Cleanup(func() { setImmutable(t, false, stuck...) })
	if !setImmutable(t, true, stuck...) {
		t.Skip("chattr +i failed: the spool's file system lacks the immutable attribute (ext4, xfs and btrfs have it)")
	}
	code, out, errs := w.flush()
	if code != 74 {
		t.Errorf("first run: exit %d, want 74 (files that cannot be removed)\n%s\n%s", code, out, tail(errs, 1000))
	}
	j, err := os.ReadFile(filepath.Join(w.spool, "journal"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range stuck {
		id := filepath.Base(f)
		if !strings.Contains(out, id) {
			t.Errorf("first run does not report %s, whose file could not be removed:\n%s", id, out)
		}
		if !strings.Contains(string(j), id+"\t") {
			t.Errorf("journal lacks %s, delivered but still queued:\n%s", id, j)
		}
	}
	if !setImmutable(t, false, stuck...) {
		t.Fatal("cannot clear the immutable attribute")
	}
	code, out, errs = w.flush()
	if code != 0 {
		t.Errorf("second run: exit %d, want 0\n%s\n%s", code, out, tail(errs, 1000))
	}
	if want := strconv.Itoa(len(stuck)) + " recipient(s) delivered by an earlier run"; !strings.Contains(out, want) {
		t.Errorf("second run: summary lacks %q:\n%s", want, out)
	}
	g.mu.Lock()
	for i := range n {
		if r := fmt.Sprintf("r%d@a.test", i); g.acked[r] != 1 {
			t.Errorf("%s delivered %d times, want once", r, g.acked[r])
		}
	}
	g.mu.Unlock()
	if left := w.files("new"); len(left) != 0 {
		t.Errorf("new/ holds %v after the replay", left)
	}
	if j, err := os.ReadFile(filepath.Join(w.spool, "journal")); err != nil || len(j) != 0 {
		t.Errorf("journal after the second run: %q, %v; want empty", j, err)
	}
}
