package spool

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sameLook gives p the size and modification time of the message file the
// scan read, so that only the file's identity tells them apart.
func sameLook(t *testing.T, p string, m *Message) {
	t.Helper()
	if err := os.Chtimes(p, m.ModTime, m.ModTime); err != nil {
		t.Fatal(err)
	}
}

// A queued file replaced after the scan, by a symbolic link to a file the
// attacker cannot read, by a FIFO, or by another regular file of the same
// size and modification time, is never read as the message: every open
// (delivery, the state changes that copy the body) fails with ErrChanged.
func TestOpenRefusesSwappedFile(t *testing.T) {
	const secret = "X-Envelope-From: <a@example.test>\nX-Envelope-To: <b@example.test>\n\nsecret body\n"
	cases := map[string]func(t *testing.T, p string, m *Message){
		"symlink": func(t *testing.T, p string, m *Message) {
			victim := filepath.Join(t.TempDir(), "shadow")
			os.WriteFile(victim, []byte(secret), 0o600)
			sameLook(t, victim, m)
			if err := os.Symlink(victim, p); err != nil {
				t.Fatal(err)
			}
		},
		"other file": func(t *testing.T, p string, m *Message) {
			os.WriteFile(p, []byte(secret), 0o600)
			sameLook(t, p, m)
		},
		"hard link": func(t *testing.T, p string, m *Message) {
			victim := filepath.Join(filepath.Dir(filepath.Dir(p)), "victim")
			os.WriteFile(victim, []byte(secret), 0o600)
			sameLook(t, victim, m)
			if err := os.Link(victim, p); err != nil {
				t.Fatal(err)
			}
		},
		"socket": func(t *testing.T, p string, m *Message) {
			l, err := net.Listen("unix", p)
			if err != nil {
				t.Skipf("cannot make a unix socket at %s: %v", p, err)
			}
			t.Cleanup(func() { l.Close() })
		},
		"directory": func(t *testing.T, p string, m *Message) {
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
		},
		"fifo": func(t *testing.T, p string, m *Message) {
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, swap := range cases {
		t.Run(name, func(t *testing.T) {
			s, m := swapAfterScan(t, swap)
			for op, f := range map[string]func() error{
				"Open": func() error {
					rc, err := s.Open(m)
					if err == nil {
						b, _ := io.ReadAll(rc)
						rc.Close()
						return errors.New("opened, read " + strings.TrimSpace(string(b)))
					}
					return err
				},
				"Defer": func() error {
					mm := *m
					env := mm.Envelope
					env.Attempts++
					return s.Defer(&mm, env)
				},
			} {
				done := make(chan error, 1)
				go func() { done <- f() }()
				select {
				case err := <-done:
					if !errors.Is(err, ErrChanged) {
						t.Errorf("%s: err %v, want ErrChanged", op, err)
					}
				case <-time.After(time.Minute): // liveness only: a blocked open(2) hangs forever
					t.Fatalf("%s blocked on the swapped file", op)
				}
			}
			if got := files(t, s, "cur"); len(got) != 0 {
				t.Errorf("cur/ holds %q: a state change copied the swapped file", got)
			}
		})
	}
}

// swapAfterScan scans a one-message spool, then lets swap replace the
// message's file by something else, as a user who can write new/ can, and
// returns the scanned message.
func swapAfterScan(t *testing.T, swap func(t *testing.T, p string, m *Message)) (*Spool, *Message) {
	t.Helper()
	s := newSpool(t)
	p := writeRaw(t, s, "new", "1.P1R1.host", "X-Envelope-From: <a@example.test>\nX-Envelope-To: <b@example.test>\n\nqueued body\n")
	msgs, probs := mustScan(t, s)
	if len(msgs) != 1 || len(probs) != 0 {
		t.Fatalf("scan: %d messages, problems %v", len(msgs), probs)
	}
	m := msgs[0]
	// Moved away, not removed: a removed file's inode number could be
	// given to the replacement (the identity check is for a file that
	// differs, such as a hard link to another user's file).
	if err := os.Rename(p, filepath.Join(s.Dir(), "moved-away")); err != nil {
		t.Fatal(err)
	}
	swap(t, p, m)
	return s, m
}

// The leak as a local user would try it: nobody, who may write new/ (the
// spool handed to nobody), cannot read root's secret, swaps the scanned
// file for a symbolic link to it with the size and modification time
// copied; root's Open, as a flush would do it, refuses the link.
func TestOpenRefusesSymlinkByAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the swap is made as nobody against a file only root can read")
	}
	const content = "X-Envelope-From: <a@example.test>\nX-Envelope-To: <b@example.test>\n\nqueued body\n"
	secretDir := t.TempDir()
	secret := filepath.Join(secretDir, "shadow")
	if err := os.WriteFile(secret, []byte(strings.Replace(content, "queued", "SECRET", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newSpool(t)
	p := writeRaw(t, s, "new", "1.P1R1.host", content)
	msgs, _ := mustScan(t, s)
	m := msgs[0]
	os.Chtimes(secret, m.ModTime, m.ModTime)
	unprivileged(t, s.Dir(), func() {
		if _, err := os.ReadFile(secret); err == nil {
			t.Fatal("nobody can read the secret: the test proves nothing")
		}
		if err := os.Rename(p, filepath.Join(s.Dir(), "tmp", "moved-away")); err != nil {
			t.Fatalf("as nobody: %v", err)
		}
		if err := os.Symlink(secret, p); err != nil {
			t.Fatalf("as nobody: %v", err)
		}
	})
	rc, err := s.Open(m)
	if err == nil {
		b, _ := io.ReadAll(rc)
		rc.Close()
		t.Fatalf("root opened the link and read %q", b)
	}
	if !errors.Is(err, ErrChanged) {
		t.Errorf("Open: %v, want ErrChanged", err)
	}
}
