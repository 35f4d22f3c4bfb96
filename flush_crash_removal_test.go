package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mxflush/mxflush/internal/testnet"
)

// gate is a receiver (offering PIPELINING, answering in order) that counts
// a message as delivered only when it writes the 250 to its final dot. Once
// limit messages were acknowledged it stops answering final dots (holding
// the session), so that a run killed then has no acknowledgement in flight
// the crash journal could miss: a recipient it counts twice was sent twice
// by mistake, not by the kill.
type gate struct {
	limit int

	mu      sync.Mutex
	closed  bool                // no more 250s to final dots
	acked   map[string]int      // by recipient
	reached chan struct{}       // closed at limit acknowledgements
	once    sync.Once           // closes reached
	order   []string            // acknowledged recipients, in order
	hold    map[net.Conn]func() // held sessions
}

func newGate(limit int) *gate {
	return &gate{limit: limit, acked: map[string]int{}, reached: make(chan struct{})}
}

// open answers every final dot from now on.
func (g *gate) open() {
	g.mu.Lock()
	g.closed, g.limit = false, 0
	g.mu.Unlock()
}

func (g *gate) handle(c net.Conn) {
	c.SetDeadline(time.Now().Add(60 * time.Second))
	r := bufio.NewReader(c)
	say := func(s string) bool { _, err := fmt.Fprintf(c, "%s\r\n", s); return err == nil }
	if !say("220 gate.test ESMTP") {
		return
	}
	var rcpts []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			say("250-gate.test\r\n250-PIPELINING\r\n250 8BITMIME")
		case strings.HasPrefix(cmd, "MAIL"):
			rcpts = nil
			say("250 2.1.0 Ok")
		case strings.HasPrefix(cmd, "RCPT"):
			rcpts = append(rcpts, rcptArg(line))
			say("250 2.1.5 Ok")
		case cmd == "DATA":
			say("354 End data with <CR><LF>.<CR><LF>")
			if _, ok := testnet.ReadData(r); !ok {
				return
			}
			g.mu.Lock()
			if g.closed {
				g.mu.Unlock()
				io.Copy(io.Discard, r) // no reply: held until the client dies
				return
			}
			for _, rc := range rcpts {
				g.acked[rc]++
				g.order = append(g.order, rc)
			}
			if g.limit > 0 && len(g.order) >= g.limit {
				g.closed = true
				g.once.Do(func() { close(g.reached) })
			}
			// The reply is written under the lock, so that a 250 is never
			// on its way once the gate reads as closed.
			ok := say("250 2.0.0 Ok")
			g.mu.Unlock()
			if !ok {
				return
			}
		case cmd == "RSET":
			say("250 2.0.0 Ok")
		case cmd == "QUIT":
			say("221 2.0.0 Bye")
			return
		default:
			say("502 5.5.2 Error: command not recognized")
		}
	}
}

// SIGKILL of the built binary in the middle of a flush whose delivered
// messages still have their files (their removal queued, or failed with
// EPERM as here for every other file), with messages in new/ and in cur/
// (deferred earlier), some to two domains: after a second run, every
// recipient the server acknowledged was acknowledged exactly once, none is
// lost, the second run's journal replay took the delivered ones off the
// queue (their files are gone, though the first run never removed them),
// and the queue and the journal are empty.
func TestCrashWithRemovalsPending(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the built binary")
	}
	const single, deferred, double, limit = 150, 30, 30, 100
	g := newGate(limit)
	w := newWorld(t, []string{"127.0.0.3"}, nil,
		"a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2",
		"b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.4")
	for _, ip := range []string{"127.0.0.2", "127.0.0.4"} {
		sc, err := testnet.StartScript(ip+":"+strconv.Itoa(w.port), g.handle)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sc.Close() })
	}
	openSpool(t, w.spool)
	want := map[string]string{} // recipient -> its message's file
	var files []string
	body := "Subject: x\r\n\r\n" + strings.Repeat("line of the body\r\n", 40)
	put := func(queue, name, env string, rcpts ...string) {
		for _, r := range rcpts {
			want[r] = filepath.Join(w.spool, queue, name)
			env += "X-Envelope-To: <" + r + ">\n"
		}
		w.put(queue, name, "X-Envelope-From: <alice@example.test>\n"+env+body)
		files = append(files, filepath.Join(w.spool, queue, name))
	}
	for i := range single {
		put("new", fmt.Sprintf("1732880000.M%03d.P1.test", i), "", fmt.Sprintf("n%03d@a.test", i))
	}
	earlier := "X-Envelope-Arrival: " + ago(time.Hour) + "\nX-Envelope-Attempts: 1\nX-Envelope-Next-Attempt: " + ago(time.Minute) + "\n"
	for i := range deferred {
		put("cur", fmt.Sprintf("1732880001.M%03d.P1.test", i), earlier, fmt.Sprintf("c%03d@a.test", i))
	}
	for i := range double {
		put("new", fmt.Sprintf("1732880002.M%03d.P1.test", i), "", fmt.Sprintf("d%03d@a.test", i), fmt.Sprintf("d%03d@b.test", i))
	}
	var stuck []string // every other file: its removal cannot happen in the first run
	for i := 0; i < len(files); i += 2 {
		stuck = append(stuck, files[i])
	}
	t.Cleanup(func() { setImmutable(t, false, stuck...) }) // before t.TempDir's removal
	if !setImmutable(t, true, stuck...) {
		stuck = nil // the kill still lands with removals queued, only less surely
	}

	cmd := exec.Command(binary(t), "flush", "--spool", w.spool, "--dns", w.dns.Addr(), "--port", strconv.Itoa(w.port),
		"--helo", "relay.test", "--max-conns", "4", "--conns-per-site", "4")
	var out1 strings.Builder
	cmd.Stdout, cmd.Stderr = &out1, &out1
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.reached:
	case <-time.After(8 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the server never acknowledged %d recipients\n%s", limit, tail(out1.String(), 2000))
	}
	// Every acknowledged recipient reaches the journal before the kill.
	g.mu.Lock()
	acked := append([]string(nil), g.order...)
	g.mu.Unlock()
	journal := filepath.Join(w.spool, "journal")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		j, _ := os.ReadFile(journal)
		missing := ""
		for _, r := range acked {
			if !strings.Contains(string(j), "\t"+r+"\n") {
				missing = r
				break
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("%s was acknowledged but is not in the crash journal after 5 s:\n%s", missing, j)
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the first run was not killed: %v\n%s", cmd.ProcessState, tail(out1.String(), 2000))
	}
	// The journalled recipients whose message file the first run left
	// (immutable, or its removal or update not done yet): the replay must
	// take each of them off the queue.
	replay := 0
	for _, r := range acked {
		if _, err := os.Stat(want[r]); err == nil {
			replay++
		}
	}
	t.Logf("killed after %d acknowledgements; %d of their recipients still queued in %d immutable files", len(acked), replay, len(stuck))
	if len(stuck) > 0 && replay == 0 {
		t.Fatal("no delivered message was left queued by the first run: the kill did not land with removals pending")
	}

	if !setImmutable(t, false, stuck...) {
		t.Fatal("cannot clear the immutable attribute")
	}
	g.open()
	code, out, errs := w.flush("--max-conns", "4", "--conns-per-site", "4")
	if code != 0 {
		t.Errorf("second run: exit %d, want 0\n%s\n%s", code, out, tail(errs, 2000))
	}
	if !strings.Contains(out, strconv.Itoa(replay)+" recipient(s) delivered by an earlier run") {
		t.Errorf("second run did not replay the %d journalled recipients still queued:\n%s", replay, out)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for r := range want {
		if n := g.acked[r]; n != 1 {
			t.Errorf("%s acknowledged %d times over the two runs, want once", r, n)
		}
	}
	if len(g.acked) != len(want) {
		t.Errorf("%d recipients acknowledged, want %d", len(g.acked), len(want))
	}
	for _, q := range []string{"new", "cur", "failed", "bad"} {
		for _, f := range w.files(q) {
			if !strings.HasPrefix(f, ".") {
				t.Errorf("%s/%s is left after the second run", q, f)
			}
		}
	}
	if j, err := os.ReadFile(filepath.Join(w.spool, "journal")); err != nil || len(j) != 0 {
		t.Errorf("journal after the second run: %d bytes, %v; want empty", len(j), err)
	}
}

// rcptArg returns the address of a "RCPT TO:<addr>" command line.
func rcptArg(line string) string {
	line = strings.TrimSpace(line)
	return strings.Trim(line[min(len(line), len("RCPT TO:")):], "<>")
}

// setImmutable sets or clears the immutable attribute (chattr +i) of each
// file: root cannot unlink such a file either (EPERM), so the removal of a
// delivered message stays undone, as when the run is killed with its
// removal still queued. It reports whether chattr worked (not on every
// file system).
func setImmutable(t *testing.T, on bool, files ...string) bool {
	t.Helper()
	if len(files) == 0 {
		return true
	}
	flag := "-i"
	if on {
		flag = "+i"
	} else {
		var left []string // the files the runs removed are gone
		for _, f := range files {
			if _, err := os.Lstat(f); err == nil {
				left = append(left, f)
			}
		}
		if files = left; len(files) == 0 {
			return true
		}
	}
	out, err := exec.Command("chattr", append([]string{flag}, files...)...).CombinedOutput()
	if err != nil {
		t.Logf("chattr %s: %v %s", flag, err, out)
		return false
	}
	return true
}
