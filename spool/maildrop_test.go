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
