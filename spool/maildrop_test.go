package spool

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// direct is the privileged function of a process that already has the
// rights to write maildrop/ (the tests run as the spool's owner).
func direct(fn func() error) error { return fn() }

// initSpool makes a spool with Init, owned by the running user, maildrop/
// of the running user's group.
func initSpool(t *testing.T) *Spool {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "spool")
	if _, err := Init(dir, InitOptions{UID: os.Getuid(), GID: os.Getgid(), Group: os.Getgid()}); err != nil {
		t.Fatalf("Init: %v", err)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// Open and OpenReadOnly create nothing: a misspelled spool path is an
// error naming the missing directory, and no tree appears.
func TestOpenMissingCreatesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spol")
	for name, open := range map[string]func(string) (*Spool, error){"Open": Open, "OpenReadOnly": OpenReadOnly} {
		_, err := open(dir)
		var me *MissingError
		if !errors.As(err, &me) || me.Path != dir || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "spool init") {
			t.Errorf("%s(missing): err = %v, want a *MissingError naming %s", name, err, dir)
		}
		if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s created %s (%v)", name, dir, err)
		}
	}
	// A spool made before hold/ existed: the missing queue is named.
	if err := os.MkdirAll(filepath.Join(dir, "new"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"tmp", "cur", "failed", "bad"} {
		os.Mkdir(filepath.Join(dir, d), 0o700)
	}
	var me *MissingError
	if _, err := Open(dir); !errors.As(err, &me) || me.Path != filepath.Join(dir, "hold") {
		t.Errorf("Open without hold/: err = %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "hold")); err == nil {
		t.Error("Open created hold/")
	}
}

// OpenReadOnly lists a spool whose directories cannot be written (a
// read-only mount, an operator without write access); Open refuses it.
func TestOpenReadOnly(t *testing.T) {
	s := newSpool(t)
	enqueueOne(t, s, []byte("Subject: x\n\nbody\n"), "bob@example.test")
	for _, d := range queueDirs {
		if err := os.Chmod(filepath.Join(s.Dir(), d), 0o500); err != nil {
			t.Fatal(err)
		}
	}
	unprivileged(t, s.Dir(), func() {
		ro, err := OpenReadOnly(s.Dir())
		if err != nil {
			t.Fatalf("OpenReadOnly on a read-only spool: %v", err)
		}
		msgs, probs, err := ro.List(QueueNew)
		if err != nil || len(msgs) != 1 || len(probs) != 0 {
			t.Errorf("List: %d messages, %v, %v", len(msgs), probs, err)
		}
		if _, err := Open(s.Dir()); err == nil || !strings.Contains(err.Error(), "not writable") {
			t.Errorf("Open on a read-only spool: err = %v, want not writable", err)
		}
	})
}

// Init makes the layout with its modes, says what it did, and a second run
// says "ok" for everything; a wrong mode is fixed and said so.
func TestInitLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	o := InitOptions{UID: os.Getuid(), GID: os.Getgid(), Group: os.Getgid()}
	out, err := Init(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 8 || !strings.HasPrefix(out[0], "created "+dir+" ") {
		t.Errorf("first Init said %q", out)
	}
	want := map[string]os.FileMode{
		"": 0o711, "tmp": 0o700, "new": 0o700, "cur": 0o700, "failed": 0o700, "hold": 0o700, "bad": 0o700,
		"maildrop": os.ModeSticky | 0o730,
	}
	for d, m := range want {
		fi, err := os.Lstat(filepath.Join(dir, d))
		if err != nil || !fi.IsDir() || fi.Mode()&(os.ModePerm|os.ModeSticky|os.ModeSetgid) != m {
			t.Errorf("%s/: %v, %v; want mode %v", d, fi.Mode(), err, m)
		}
	}
	out, err = Init(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range out {
		if !strings.HasPrefix(l, "ok ") {
			t.Errorf("second Init: %q, want ok", l)
		}
	}
	os.Chmod(filepath.Join(dir, "new"), 0o755)
	os.WriteFile(filepath.Join(dir, "journal"), nil, 0o644)
	out, _ = Init(dir, o)
	joined := strings.Join(out, "\n")
	if !strings.Contains(joined, "fixed "+filepath.Join(dir, "new")+": mode 0755 -> 0700") ||
		!strings.Contains(joined, "fixed "+filepath.Join(dir, "journal")+": mode 0644 -> 0600") {
		t.Errorf("repair said:\n%s", joined)
	}
	// A symlink where a queue directory belongs is refused, never followed.
	os.Remove(filepath.Join(dir, "bad"))
	target := t.TempDir()
	os.Chmod(target, 0o755)
	os.Symlink(target, filepath.Join(dir, "bad"))
	if _, err := Init(dir, o); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Init with bad/ a symlink: err = %v", err)
	}
	if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o755 {
		t.Errorf("Init changed the symlink's target to %v", fi.Mode())
	}
}

const dropMsg = "From: alice@example.test\nSubject: hi\n\nhello\n"

// Drop writes exactly what Enqueue would write, under a final name
// (no dot file left), mode 0640 whatever the umask.
func TestDropWritesEnqueueFormat(t *testing.T) {
	s := initSpool(t)
	env := Envelope{From: "alice@example.test", To: []string{"bob@example.test"}, Arrival: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	old := syscall.Umask(0o077)
	name, err := Drop(filepath.Join(s.Dir(), DirMaildrop), env, strings.NewReader(dropMsg), direct)
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.Enqueue(env, strings.NewReader(dropMsg))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(s.Dir(), DirMaildrop, name))
	want, _ := os.ReadFile(filepath.Join(s.Dir(), QueueNew, id))
	if !bytes.Equal(got, want) {
		t.Errorf("maildrop file:\n%s\nenqueued file:\n%s", got, want)
	}
	if n := files(t, s, DirMaildrop); len(n) != 1 || n[0] != name {
		t.Errorf("maildrop/ = %q, want only %s", n, name)
	}
	if fi, _ := os.Stat(filepath.Join(s.Dir(), DirMaildrop, name)); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode())
	}
}

type failReader struct{ n int }

func (r *failReader) Read(p []byte) (int, error) {
	if r.n > 0 {
		n := copy(p, "Subject: x\n\n"+strings.Repeat("a", len(p)))
		r.n -= n
		return n, nil
	}
	return 0, errors.New("message too large")
}

// A message whose reader fails (a size limit) or is refused leaves nothing
// in maildrop/, not even a dot file.
func TestDropLeavesNothingOnError(t *testing.T) {
	s := initSpool(t)
	md := filepath.Join(s.Dir(), DirMaildrop)
	env := Envelope{From: "alice@example.test", To: []string{"bob@example.test"}}
	if _, err := Drop(md, env, &failReader{n: 200 << 10}, direct); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("err = %v, want the reader's", err)
	}
	if _, err := Drop(md, Envelope{From: "a@example.test", To: []string{"bob"}}, strings.NewReader(dropMsg), direct); err == nil {
		t.Error("Drop took a recipient without a domain")
	}
	if _, err := Drop(md, env, strings.NewReader("not a header\n"), direct); err == nil {
		t.Error("Drop took a message that does not start with a header field")
	}
	if n := files(t, s, DirMaildrop); len(n) != 0 {
		t.Errorf("maildrop/ = %q after failed drops", n)
	}
}

func dropOne(t *testing.T, s *Spool, to string) string {
	t.Helper()
	name, err := Drop(filepath.Join(s.Dir(), DirMaildrop), Envelope{From: "alice@example.test", To: []string{to}}, strings.NewReader(dropMsg), direct)
	if err != nil {
		t.Fatal(err)
	}
	return name
}
