package spool

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const nobody = 65534

// unprivileged runs fn with the effective uid of nobody when the test runs
// as root, so permission bits apply (root reads a mode 000 file). The spool
// tree is handed to nobody first, except the files the caller wants to stay
// root's. Skips when the uid cannot be changed. Not for parallel tests: the
// effective uid is per process.
func unprivileged(t *testing.T, dir string, fn func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		fn()
		return
	}
	// nobody must be able to reach dir: open up the test's own temp parents.
	for p := filepath.Dir(dir); p != os.TempDir() && p != "/" && p != "."; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Skipf("cannot open %s to nobody: %v", p, err)
		}
	}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.Mode().Perm() == 0 {
			return err // mode 000 files stay root's: "owned by another user"
		}
		return os.Lchown(p, nobody, nobody)
	})
	if err != nil {
		t.Fatalf("chown: %v", err)
	}
	if err := syscall.Setresuid(-1, nobody, -1); err != nil {
		t.Skipf("running as root and cannot drop to uid %d (%v): root reads any file", nobody, err)
	}
	defer func() {
		if err := syscall.Setresuid(-1, 0, -1); err != nil {
			panic("cannot get root back: " + err.Error())
		}
	}()
	fn()
}

// Spool permissions: a mode 000 file owned by another user is left in place,
// reported, never sent or deleted; an unlistable queue is a fatal Scan error.
func TestScanUnreadable(t *testing.T) {
	s := newSpool(t)
	writeRaw(t, s, "new", "1.P1R1.good", goodFile)
	locked := writeRaw(t, s, "cur", "2.P2R2.locked", goodFile)
	if err := os.Chmod(locked, 0); err != nil {
		t.Fatal(err)
	}
	unprivileged(t, s.Dir(), func() {
		s, err := Open(s.Dir())
		if err != nil {
			t.Fatalf("Open as an unprivileged user: %v", err)
		}
		msgs, probs := mustScan(t, s)
		if len(msgs) != 1 || msgs[0].ID != "1.P1R1.good" {
			t.Errorf("msgs = %+v", msgs)
		}
		if len(probs) != 1 || probs[0].Path != locked || probs[0].MovedTo != "" ||
			!strings.Contains(probs[0].Reason, "permission denied") {
			t.Fatalf("problems = %+v, want %s left in place with permission denied", probs, locked)
		}
		if _, err := os.Lstat(locked); err != nil {
			t.Errorf("unreadable file gone: %v", err)
		}
		if n := files(t, s, "bad"); len(n) != 0 {
			t.Errorf("bad/ = %q", n)
		}

		newDir := filepath.Join(s.Dir(), "new")
		if err := os.Chmod(newDir, 0); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(newDir, 0o700)
		if _, _, err := s.Scan(t.Context()); err == nil || !strings.Contains(err.Error(), newDir) {
			t.Errorf("Scan with new/ unreadable: err = %v, want a fatal error naming %s", err, newDir)
		}
		if _, err := Open(s.Dir()); err == nil || !strings.Contains(err.Error(), newDir) {
			t.Errorf("Open with new/ unreadable: err = %v", err)
		}
	})
}
