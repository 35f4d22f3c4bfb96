package testnet

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// SinkPath returns the path of Postfix's smtp-sink (Debian package
// postfix), on PATH or in /usr/sbin, or "" when it is not installed.
func SinkPath() string {
	if p, err := exec.LookPath("smtp-sink"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/smtp-sink"); err == nil {
		return "/usr/sbin/smtp-sink"
	}
	return ""
}

// Sink is a running smtp-sink: an independent SMTP server to test against.
type Sink struct {
	cmd    *exec.Cmd
	cancel context.CancelFunc
	args   []string

	mu     sync.Mutex
	output bytes.Buffer
}

// StartSink runs the smtp-sink at path on addr ("127.0.0.2:PORT") with
// extra options (-p hides PIPELINING, -W injects delays), dumping every
// transaction into files dumpDir/dump* (-D; smtp-sink adds a suffix), for
// at most 30 s, and waits up to 5 s until it accepts connections. As root
// it runs as nobody (-u, which smtp-sink requires), and dumpDir and its
// parent are opened to nobody.
func StartSink(path, addr, dumpDir string, extra ...string) (*Sink, error) {
	var args []string
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
		if err := os.Chmod(filepath.Dir(dumpDir), 0o711); err != nil {
			return nil, fmt.Errorf("opening the dump directory to nobody: %w", err)
		}
		if err := os.Chmod(dumpDir, 0o777); err != nil {
			return nil, fmt.Errorf("opening the dump directory to nobody: %w", err)
		}
	}
	args = append(append(args, extra...), "-D", filepath.Join(dumpDir, "dump"), addr, "16")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	s := &Sink{cmd: exec.CommandContext(ctx, path, args...), cancel: cancel, args: args}
	s.cmd.Stdout, s.cmd.Stderr = (*sinkOutput)(s), (*sinkOutput)(s)
	if err := s.cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("starting smtp-sink: %w", err)
	}
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return s, nil
		}
		if time.Since(start) > 5*time.Second {
			out := s.Close()
			return nil, fmt.Errorf("smtp-sink %q did not accept connections on %s within 5 s: %s", args, addr, out)
		}
	}
}

// Close stops smtp-sink and returns its arguments and what it wrote, for a
// failing test's log.
func (s *Sink) Close() string {
	s.cancel()
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("smtp-sink %q said: %s", s.args, s.output.String())
}

// sinkOutput collects smtp-sink's stdout and stderr.
type sinkOutput Sink

func (o *sinkOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.output.Write(p)
}
