package main

import (
	"fmt"
	"math/rand/v2"
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

// Crash safety: the built binary is killed with SIGKILL at a random moment,
// run after run, against slow receivers; then one run finishes the queue.
// Every recipient must have been delivered at least once and none lost, and
// duplicates may only come from the transactions in flight at each kill:
// at most one per session, so at most --max-conns per kill. Each message
// goes to three domains, so without the crash journal every recipient
// delivered before a kill whose message still had a batch to go would be
// sent again, far more than that bound.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("long: 30 runs of the built binary, each killed with SIGKILL")
	}
	const (
		runs     = 30
		msgs     = 240
		domains  = 6
		perMsg   = 3 // domains per message, one recipient each
		maxConns = 3
	)
	var ips, records []string
	for d := range domains {
		ip := fmt.Sprintf("127.0.0.%d", d+2)
		ips = append(ips, ip)
		records = append(records, fmt.Sprintf("d%d.test. MX 10 mx.d%d.test.", d, d), fmt.Sprintf("mx.d%d.test. A %s", d, ip))
	}
	slow := func(string) testnet.SMTPOptions { return testnet.SMTPOptions{DataDelay: 10 * time.Millisecond} }
	w := newWorld(t, ips, slow, records...)
	openSpool(t, w.spool)
	want := map[string]bool{}
	for i := range msgs {
		var env strings.Builder
		env.WriteString("X-Envelope-From: <alice@example.test>\n")
		for k := range perMsg {
			rcpt := fmt.Sprintf("m%03d@d%d.test", i, (i+k)%domains)
			want[rcpt] = true
			fmt.Fprintf(&env, "X-Envelope-To: <%s>\n", rcpt)
		}
		w.put("new", fmt.Sprintf("1732880000.M%03d.P1.test", i), env.String()+fmt.Sprintf("Subject: m%d\r\n\r\nbody %d\r\n", i, i))
	}
	args := []string{"flush", "--spool", w.spool, "--dns", w.dns.Addr(), "--port", strconv.Itoa(w.port),
		"--helo", "relay.test", "--max-conns", strconv.Itoa(maxConns)}

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 41))
	kills := 0
	for run := range runs {
		cmd := exec.Command(binary(t), args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(20+rng.IntN(180)) * time.Millisecond
		timer := time.AfterFunc(delay, func() { cmd.Process.Signal(syscall.SIGKILL) })
		err := cmd.Wait()
		timer.Stop()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			kills++
		} else if err != nil && cmd.ProcessState.ExitCode() != 0 {
			t.Errorf("run %d ended by itself with %v", run, err)
		}
	}
	out, err := exec.Command(binary(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("final run: %v\n%s", err, tail(string(out), 3000))
	}

	copies := w.rcptCount()
	dups, lost := 0, 0
	for rcpt := range want {
		switch n := copies[rcpt]; {
		case n == 0:
			lost++
			t.Errorf("%s was never delivered", rcpt)
		case n > 1:
			dups += n - 1
		}
	}
	for rcpt := range copies {
		if !want[rcpt] {
			t.Errorf("unexpected recipient %s", rcpt)
		}
	}
	t.Logf("crash test (seed %d): %d runs, %d killed with SIGKILL, then one to finish; %d recipients in %d messages: %d lost, %d duplicates (bound: %d kills x %d sessions = %d)",
		seed, runs, kills, len(want), msgs, lost, dups, kills, maxConns, kills*maxConns)
	if kills < runs/2 {
		t.Errorf("only %d of %d runs were killed mid-run: the test did not exercise crashes", kills, runs)
	}
	if dups > kills*maxConns {
		t.Errorf("%d duplicates, more than the %d transactions that can be in flight over %d kills", dups, kills*maxConns, kills)
	}
	for _, q := range []string{"new", "cur", "failed", "bad"} {
		for _, f := range w.files(q) {
			if strings.HasPrefix(f, ".") {
				continue // a .probe file of spool.Open, killed before its unlink; Scan ignores dot files
			}
			t.Errorf("%s/%s is left:\n%s", q, f, tail(readFile(t, filepath.Join(w.spool, q, f)), 2000))
		}
	}
	if j, err := os.ReadFile(filepath.Join(w.spool, "journal")); err != nil || len(j) != 0 {
		t.Errorf("journal after the final run: %d bytes, %v", len(j), err)
	}
}
