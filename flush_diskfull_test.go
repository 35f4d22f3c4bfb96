package main

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A full disk, two ways. "file size limit": the flush runs as a subprocess
// under RLIMIT_FSIZE, so a write that would make a file larger than the
// limit fails (EFBIG, Go ignores SIGXFSZ), which needs no privilege. "full tmpfs": the spool on a 1 MiB
// tmpfs filled to its last page (ENOSPC), when this process may mount one
// (CI runs as root); skipped otherwise. The last free page goes to the
// crash journal's first line, so every later file write fails.
type diskFull struct {
	name  string
	setup func(t *testing.T, w *world) // before the spool is created
	fill  func(t *testing.T, w *world, limit int64) (undo func())
}

var diskFulls = []diskFull{
	{
		name:  "file size limit",
		setup: func(*testing.T, *world) {},
		fill: func(t *testing.T, w *world, limit int64) func() {
			if _, err := exec.LookPath("prlimit"); err != nil {
				t.Skip("prlimit (util-linux) is not installed")
			}
			w.fsize = limit
			return func() { w.fsize = 0 }
		},
	},
	{
		name: "full tmpfs",
		setup: func(t *testing.T, w *world) {
			mnt := filepath.Join(t.TempDir(), "tiny")
			if err := os.Mkdir(mnt, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
				t.Skipf("cannot mount a tmpfs (needs root): %v", err)
			}
			t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
			w.spool = filepath.Join(mnt, "spool")
		},
		fill: func(t *testing.T, w *world, _ int64) func() {
			sp := openSpool(t, w.spool)
			unlock, err := sp.Lock() // the lock file holds its page from now on
			if err != nil {
				t.Fatal(err)
			}
			unlock()
			p := filepath.Join(filepath.Dir(w.spool), "filler")
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			chunk := make([]byte, 64<<10)
			for {
				if _, err := f.Write(chunk); err != nil {
					if !errors.Is(err, syscall.ENOSPC) {
						t.Fatalf("filling the tmpfs: %v", err)
					}
					break
				}
			}
			size, _ := f.Seek(0, io.SeekEnd)
			if err := f.Truncate(size - 4096); err != nil { // one page free
				t.Fatal(err)
			}
			f.Close()
			var st syscall.Statfs_t
			if err := syscall.Statfs(w.spool, &st); err != nil || st.Bavail != 1 {
				t.Fatalf("tmpfs has %d free blocks (%v), want 1", st.Bavail, err)
			}
			return func() { os.Remove(p) }
		},
	},
}

// A full disk: the disk fills up while a run records its results. Variant A:
// M goes to ok@ (250) and gone@ (550), and the DSN for gone@ cannot be
// written; variant B: M goes to ok@ (250) and busy@ (451), and M's new state
// cannot be written; variant C: M goes to ok@, gone@ and busy@, its DSN is
// written but its new state is not, so the DSN is taken back. Each time M
// stays exactly as it was, no temp file or DSN is left, and the run exits 74
// naming the problem. On the next run, with space again, ok@ is not sent a
// second copy (the crash journal recorded it), and M gets the outcome it
// should have had, with exactly one DSN.
func TestDiskFullWhileRecording(t *testing.T) {
	// The spool is on a tiny file system on purpose: enqueue must not keep
	// its disk reserve (--min-free) there.
	t.Setenv("MXFLUSH_MIN_FREE", "0")
	filler := "X-Filler-1: " + strings.Repeat("f", 900) + "\r\nX-Filler-2: " + strings.Repeat("f", 900) + "\r\n"
	variants := []struct {
		name      string
		others    []string // the recipients besides ok@a.test
		headers   string   // extra header fields of M
		body      string
		want      string // the problem reported
		code2     int    // exit of the second run
		queue2    string // where M is after the second run
		dsns2     int
		limitAdd  int64 // RLIMIT_FSIZE = size of M's file + limitAdd
		fsizeOnly bool  // needs a limit between two file sizes, which a full tmpfs cannot give
	}{
		{"A: the DSN cannot be written", []string{"gone@a.test"}, filler, "body\r\n", "writing its DSN", 69, "failed", 1, 600, false},
		{"B: the new state cannot be written", []string{"busy@a.test"}, filler, "body\r\n", "recording the outcome", 75, "cur", 0, -1, false},
		{"C: the DSN is written, the new state is not", []string{"gone@a.test", "busy@a.test"}, "",
			strings.Repeat("a long body line\r\n", 400), "recording the outcome", 69, "cur", 1, -2000, true},
	}
	for _, df := range diskFulls {
		for _, v := range variants {
			t.Run(df.name+"/"+v.name, func(t *testing.T) {
				if v.fsizeOnly && df.name != "file size limit" {
					t.Skip("needs a file size limit")
				}
				w := newWorld(t, lifeIPs, refusing, lifeZone...)
				df.setup(t, w)
				id := w.enqueue("alice@example.test", "From: alice@example.test\r\n"+v.headers+"Subject: c41\r\n\r\n"+v.body,
					append([]string{"ok@a.test"}, v.others...)...)
				path := filepath.Join(w.spool, "new", id)
				before := readFile(t, path)
				undo := df.fill(t, w, int64(len(before))+v.limitAdd)
				code, out, errs := w.flush()
				undo()
				if code != 74 || !strings.Contains(out, v.want) || !strings.Contains(out, id) {
					t.Fatalf("run 1: exit %d, want 74 with a problem naming %s and %q\n%s\n%s", code, id, v.want, out, errs)
				}
				if now, err := os.ReadFile(path); err != nil || string(now) != before {
					t.Errorf("M changed or moved (%v)", err)
				}
				for _, q := range []string{"tmp", "cur", "failed"} {
					if f := w.files(q); len(f) != 0 {
						t.Errorf("%s/ holds %v after the failed write", q, f)
					}
				}
				if f := w.files("new"); len(f) != 1 || len(w.dsns()) != 0 {
					t.Errorf("new/ = %v, %d DSNs: no DSN may be queued or sent", f, len(w.dsns()))
				}
				if c := w.rcptCount(); c["ok@a.test"] != 1 {
					t.Fatalf("run 1 copies %v", c)
				}

				code, out, errs = w.flush("--all")
				if code != v.code2 {
					t.Fatalf("run 2: exit %d, want %d\n%s\n%s", code, v.code2, out, errs)
				}
				if c := w.rcptCount(); c["ok@a.test"] != 1 {
					t.Errorf("ok@a.test got %d copies: the journal should have kept it from a second one", c["ok@a.test"])
				}
				if f := w.files(v.queue2); len(f) != 1 || f[0] != id || len(w.dsns()) != v.dsns2 {
					t.Errorf("after run 2: %s/ = %v, %d DSNs; want M there and %d DSN(s)", v.queue2, f, len(w.dsns()), v.dsns2)
				}
			})
		}
	}
}
