package batch

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
		files = left
	}
	if len(files) == 0 {
		return true
	}
	out, err := exec.Command("chattr", append([]string{flag}, files...)...).CombinedOutput()
	if err != nil {
		t.Logf("chattr %s: %v %s", flag, err, out)
		return false
	}
	return true
}

// A delivered message whose file cannot be removed (EPERM: immutable) is
// reported as a spool problem (an I/O error, naming it) and its recipients
// stay in the crash journal, which the run keeps; once the file can go,
// the next run's replay removes it without sending it again, and empties
// the journal.
func TestRemovalFailureKeepsJournal(t *testing.T) {
	w := newWorld(t, []string{"127.0.0.2"}, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	w.receive("127.0.0.2", testnet.SMTPOptions{})
	const n = 6
	var stuck []string
	for i := range n {
		id := fmt.Sprintf("1732880000.M%d.P1.test", i)
		w.putMsg(id, "alice@example.test", fmt.Sprint(i), fmt.Sprintf("u%d@a.test", i))
		if i%3 == 0 {
			stuck = append(stuck, filepath.Join(w.sp.Dir(), "new", id))
		}
	}
	t.Cleanup(func() { setImmutable(t, false, stuck...) }) // before t.TempDir's removal
	if !setImmutable(t, true, stuck...) {
		t.Skip("chattr +i failed: the spool's file system lacks the immutable attribute (ext4, xfs and btrfs have it), or this is not root")
	}
	sum := w.run()
	if sum.Totals.Delivered != n {
		t.Errorf("first run: totals %+v, want all %d delivered", sum.Totals, n)
	}
	j := w.journal()
	for _, f := range stuck {
		id := filepath.Base(f)
		var reported bool
		for _, p := range sum.Problems {
			reported = reported || p.ID == id && p.IOError
		}
		if !reported {
			t.Errorf("first run does not report %s, whose file could not be removed, as an I/O error: %+v", id, sum.Problems)
		}
		if !strings.Contains(j, id+"\t") {
			t.Errorf("journal lacks %s, delivered but still queued:\n%s", id, j)
		}
	}
	if len(sum.Problems) != len(stuck) {
		t.Errorf("%d problems, want %d: %+v", len(sum.Problems), len(stuck), sum.Problems)
	}
	if !setImmutable(t, false, stuck...) {
		t.Fatal("cannot clear the immutable attribute")
	}
	sum = w.run()
	if sum.Replayed != len(stuck) || len(sum.Domains) != 0 || len(sum.Problems) != 0 {
		t.Errorf("second run: replayed %d, rows %+v, problems %+v; want the %d journalled recipients replayed, nothing sent", sum.Replayed, sum.Domains, sum.Problems, len(stuck))
	}
	onceEach(t, w.rcptCount(), n, "a.test")
	if left := w.queued(); len(left) != 0 {
		t.Errorf("queued after the replay: %v", left)
	}
	if j := w.journal(); j != "" {
		t.Errorf("journal after the second run: %q; want empty", j)
	}
}
