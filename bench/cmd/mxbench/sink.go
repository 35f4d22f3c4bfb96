package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"time"
)

// sink is a Postfix smtp-sink process: the one receiver every contender
// sends to. Its -c counters are read from its stdout, so each run can be
// checked to have delivered every message.
type sink struct {
	cmd  *exec.Cmd
	done chan struct{}

	mu             sync.Mutex
	sessions, msgs int
}

// startSink runs smtp-sink on addr ("127.0.0.2:PORT") and waits until it
// accepts connections. As root it drops to nobody (-u), which smtp-sink
// requires.
func startSink(path, addr string) (*sink, error) {
	var args []string
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	args = append(args, "-c", addr, "1024")
	s := &sink{cmd: exec.Command(path, args...), done: make(chan struct{})}
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s.cmd.Stderr = os.Stderr
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting smtp-sink: %w", err)
	}
	go s.read(bufio.NewScanner(out))
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			break
		}
		if time.Since(start) > 5*time.Second {
			s.stop()
			return nil, fmt.Errorf("smtp-sink on %s did not accept connections within 5s", addr)
		}
	}
	// The probe above counts as a session; wait for it to show.
	time.Sleep(50 * time.Millisecond)
	return s, nil
}

// read follows the counter line "sess=N quit=N mesg=N", rewritten after
// each CR.
func (s *sink) read(sc *bufio.Scanner) {
	defer close(s.done)
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
			return i + 1, data[:i], nil
		}
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	for sc.Scan() {
		var sess, quit, msgs int
		if _, err := fmt.Sscanf(sc.Text(), "sess=%d quit=%d mesg=%d", &sess, &quit, &msgs); err == nil {
			s.mu.Lock()
			s.sessions, s.msgs = sess, msgs
			s.mu.Unlock()
		}
	}
}

// counts returns the sessions and messages seen so far.
func (s *sink) counts() (sessions, msgs int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions, s.msgs
}

// settle waits until the message counter stops moving (the last session's
// counters are printed when it ends), at most 2s.
func (s *sink) settle(want int) int {
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, n := s.counts()
		if n >= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *sink) stop() {
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
}
