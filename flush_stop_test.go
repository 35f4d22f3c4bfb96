package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mxflush/mxflush/internal/testnet"
)

// checkNothingLost asserts that each of the n messages spoolMany wrote (to
// u<i>@slow.test) was either received exactly once or is still in the
// spool, due, with its recipient and no attempt counted; it returns how
// many were received.
func checkNothingLost(t *testing.T, w *world, n int) int {
	t.Helper()
	got := map[string]int{}
	for _, r := range w.recv {
		for _, m := range r.Messages() {
			for _, to := range m.To {
				got[to]++
			}
		}
	}
	queued := map[string]bool{}
	for _, q := range []string{"new", "cur"} {
		for _, name := range w.files(q) {
			b, err := os.ReadFile(filepath.Join(w.spool, q, name))
			if err != nil {
				t.Fatal(err)
			}
			s := string(b)
			if strings.Contains(s, "X-Envelope-Attempts") || strings.Contains(s, "X-Envelope-Next-Attempt") {
				t.Errorf("%s/%s: a message left queued by a stop counts an attempt:\n%s", q, name, s[:min(len(s), 300)])
			}
			for _, line := range strings.Split(s, "\n") {
				if rcpt, ok := strings.CutPrefix(line, "X-Envelope-To: <"); ok {
					queued[strings.TrimSuffix(rcpt, ">")] = true
				}
			}
		}
	}
	for i := 0; i < n; i++ {
		rcpt := "u" + strconv.Itoa(i) + "@slow.test"
		switch {
		case got[rcpt] > 1:
			t.Errorf("%s received %d times", rcpt, got[rcpt])
		case got[rcpt] == 1 && queued[rcpt]:
			t.Errorf("%s received and still queued", rcpt)
		case got[rcpt] == 0 && !queued[rcpt]:
			t.Errorf("%s lost: neither received nor queued", rcpt)
		}
	}
	if fs := w.files("failed"); len(fs) > 0 {
		t.Errorf("failed/ holds %v", fs)
	}
	return len(got)
}

func slowWorld(t *testing.T, n int) *world {
	t.Helper()
	w := newWorld(t, nil, func(string) testnet.SMTPOptions { return testnet.SMTPOptions{DataDelay: 20 * time.Millisecond} },
		"slow.test. MX 10 mx.slow.test.", "mx.slow.test. A 127.0.0.2")
	spoolMany(t, w.spool, n, []string{"slow.test"})
	return w
}

// --max-runtime against a slow receiver: the run stops opening
// transactions, exits 75, says how many messages it left queued, and
// nothing is lost or sent twice; a second run delivers the rest.
func TestFlushMaxRuntimeLeavesRestQueued(t *testing.T) {
	const n = 100 // 20 ms each over one session: 2 s, far beyond the limit
	w := slowWorld(t, n)
	code, out, errs := w.flush("--max-runtime", "300ms", "--conns-per-site", "1")
	if code != 75 {
		t.Fatalf("exit %d, want 75\n%s\n%s", code, out, tail(errs, 1000))
	}
	recv := checkNothingLost(t, w, n)
	if recv == 0 || recv == n {
		t.Fatalf("%d of %d received: want a partial run", recv, n)
	}
	want := "stopped after --max-runtime 300ms: " + strconv.Itoa(n-recv) + " messages left queued"
	if !strings.Contains(out, want) {
		t.Errorf("summary lacks %q:\n%s", want, out)
	}
	// The rest is still due: a plain flush (no --all) delivers it.
	code, out, _ = w.flush("--conns-per-site", "4", "--max-conns", "4")
	if code != 0 {
		t.Fatalf("second flush: exit %d\n%s", code, out)
	}
	if recv := checkNothingLost(t, w, n); recv != n {
		t.Errorf("after the second flush %d of %d received", recv, n)
	}
}

// SIGTERM to the built binary stops it the same way; a second signal is
// not needed for it to end once the transactions in flight are done.
func TestFlushSIGTERMLeavesRestQueued(t *testing.T) {
	if testing.Short() {
		t.Skip("long: runs the built binary")
	}
	const n = 300
	w := slowWorld(t, n)
	cmd := exec.Command(binary(t), "flush", "--spool", w.spool, "--dns", w.dns.Addr(), "--port", strconv.Itoa(w.port),
		"--helo", "relay.test", "--conns-per-site", "2")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait for the first delivery, so that the signal lands mid-run.
	for deadline := time.Now().Add(10 * time.Second); w.received() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("nothing delivered in 10 s")
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 75 {
		t.Fatalf("wait: %v, want exit 75\n%s\n%s", err, out.String(), tail(errb.String(), 1000))
	}
	recv := checkNothingLost(t, w, n)
	want := "stopped by SIGTERM: " + strconv.Itoa(n-recv) + " messages left queued"
	if recv == n || !strings.Contains(out.String(), want) {
		t.Errorf("%d of %d received; summary lacks %q:\n%s", recv, n, want, out.String())
	}
}
