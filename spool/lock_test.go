package spool

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestLockInProcess(t *testing.T) {
	s := newSpool(t)
	unlock, err := s.Lock()
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	// flock belongs to the open file description: a second open conflicts.
	_, err = s.Lock()
	var le *LockedError
	if !errors.As(err, &le) || le.PID != os.Getpid() || le.Path != filepath.Join(s.Dir(), "lock") {
		t.Fatalf("second Lock: %v (%#v), want *LockedError with our pid", err, le)
	}
	want := fmt.Sprintf("spool %s is locked by another flush (pid %d)", s.Dir(), os.Getpid())
	if err.Error() != want {
		t.Errorf("Error() = %q, want %q", err, want)
	}
	if err := unlock(); err != nil {
		t.Fatalf("unlock: %v", err)
	}
	if err := unlock(); err != nil {
		t.Errorf("second unlock: %v", err)
	}
	unlock2, err := s.Lock()
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	unlock2()
	if got := (&LockedError{Path: "/x/lock"}).Error(); got != "spool /x is locked by another flush (pid unknown)" {
		t.Errorf("Error() without pid = %q", got)
	}
}

// TestLockHelper is the child process of TestLockDiesWithProcess.
func TestLockHelper(t *testing.T) {
	dir := os.Getenv("SPOOL_LOCK_HELPER")
	if dir == "" {
		t.Skip("helper process only")
	}
	s, err := Open(dir)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	if _, err := s.Lock(); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	time.Sleep(time.Minute)
	os.Exit(0)
}

// The lock of a flush killed with SIGKILL vanishes; no stale pid file blocks
// the next run.
func TestLockDiesWithProcess(t *testing.T) {
	s := newSpool(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelper$")
	cmd.Env = append(os.Environ(), "SPOOL_LOCK_HELPER="+s.Dir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("helper said %q, %v", line, err)
	}
	_, err = s.Lock()
	var le *LockedError
	if !errors.As(err, &le) || le.PID != cmd.Process.Pid {
		t.Fatalf("Lock while the helper holds it: %v, want *LockedError with pid %d", err, cmd.Process.Pid)
	}
	cmd.Process.Kill() // SIGKILL: no chance to clean up
	cmd.Wait()
	unlock, err := s.Lock()
	if err != nil {
		t.Fatalf("Lock after the holder was killed: %v", err)
	}
	unlock()
}
