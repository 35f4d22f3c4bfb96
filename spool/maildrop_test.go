package spool

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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
