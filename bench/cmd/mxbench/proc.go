package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// usage is what one contender's run cost, measured from outside the
// process: wall time from start to exit, peak open files (sampled from
// /proc/PID/fd every 2 ms), peak RSS and CPU time (from the kernel's
// rusage of the exited child).
type usage struct {
	Wall     time.Duration
	PeakFDs  int
	PeakRSS  int64 // bytes (ru_maxrss)
	CPU      time.Duration
	ExitCode int
}

// runMeasured runs name args with stdout into stdout (may be nil) and
// stderr into a file at errPath, and measures it. A non-zero exit is not
// an error here; the caller decides.
func runMeasured(ctx context.Context, stdout io.Writer, errPath string, name string, args ...string) (usage, error) {
	var u usage
	errf, err := os.Create(errPath)
	if err != nil {
		return u, fmt.Errorf("stderr file: %w", err)
	}
	defer errf.Close()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = stdout, errf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return u, fmt.Errorf("starting %s: %w", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	fdDir := fmt.Sprintf("/proc/%d/fd", cmd.Process.Pid)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			u.Wall = time.Since(start)
			if cmd.ProcessState == nil {
				return u, fmt.Errorf("%s: %w", name, err)
			}
			u.ExitCode = cmd.ProcessState.ExitCode()
			u.CPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
				u.PeakRSS = ru.Maxrss * 1024 // Linux reports KiB
			}
			return u, nil
		case <-tick.C:
			if n := countFDs(fdDir); n > u.PeakFDs {
				u.PeakFDs = n
			}
		}
	}
}

// countFDs counts the entries of /proc/PID/fd without allocating an entry
// per descriptor; 0 when the process is gone.
func countFDs(dir string) int {
	f, err := os.Open(dir)
	if err != nil {
		return 0
	}
	defer f.Close()
	names, _ := f.Readdirnames(-1)
	return len(names)
}

// tailFile returns the last n octets of a file, for error messages.
func tailFile(path string, n int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
	}
	return strings.TrimSpace(string(b))
}
