package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The summary states the code the process exits with: a --metrics-file in
// a missing directory turned exit 0 into 74 while the summary's last line
// still said "exit 0: everything due was delivered"; the JSON's exit_code
// said 0 too.
func TestFlushSummaryStatesFinalExitCode(t *testing.T) {
	w := newWorld(t, nil, nil, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	prom := filepath.Join(t.TempDir(), "missing", "mxflush.prom")
	w.enqueue("alice@example.test", msg("one"), "bob@a.test")
	code, out, errs := w.flush("--metrics-file", prom)
	if code != 74 {
		t.Fatalf("exit %d, want 74\n%s%s", code, out, errs)
	}
	last := lastLine(out)
	if !strings.HasPrefix(last, "exit 74: --metrics-file") {
		t.Errorf("the summary's last line is %q, want it to say exit 74 and why", last)
	}
	w.enqueue("alice@example.test", msg("two"), "bob@a.test")
	code, out, errs = w.flush("--metrics-file", prom, "--json")
	var v struct {
		ExitCode int    `json:"exit_code"`
		Error    string `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || code != 74 || v.ExitCode != 74 || !strings.Contains(v.Error, "metrics-file") {
		t.Errorf("--json: exit %d, exit_code %d, error %q (%v), want 74 both and the reason\n%s%s", code, v.ExitCode, v.Error, err, out, errs)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// Every exit of flush --json prints one JSON object with exit_code and
// error, the early ones too: a CI step that archives the JSON never gets
// an empty file.
func TestFlushJSONEarlyExits(t *testing.T) {
	w := newWorld(t, nil, nil)
	w.enqueue("alice@example.test", msg("x"), "bob@a.test")
	unlock, err := openSpool(t, w.spool).Lock()
	if err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "no-such-spool")
	for _, tc := range []struct {
		name  string
		args  []string
		code  int
		error string
	}{
		{"lock held", []string{"--spool", w.spool}, 75, "locked by another flush"},
		{"spool missing", []string{"--spool", missing}, 66, missing},
		{"bad flag value", []string{"--spool", w.spool, "--max-conns", "0"}, 64, "--max-conns"},
		{"flag value kong refuses", []string{"--spool", w.spool, "--max-conns", "abc"}, 64, "--max-conns"},
		{"unknown flag", []string{"--spool", w.spool, "--no-such-flag"}, 64, "no-such-flag"},
	} {
		args := append([]string{"flush", "--json", "--dns", w.dns.Addr(), "--port", strconv.Itoa(w.port), "--helo", "relay.test"}, tc.args...)
		code, out, errs := w.run("", args...)
		var v map[string]any
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Errorf("%s: stdout is not one JSON object (%v): %q\n%s", tc.name, err, out, errs)
			continue
		}
		if code != tc.code || v["exit_code"] != float64(tc.code) || !strings.Contains(v["error"].(string), tc.error) {
			t.Errorf("%s: exit %d, JSON %v; want exit_code %d and an error with %q", tc.name, code, v, tc.code, tc.error)
		}
	}
	unlock()
}

// --quiet: a run that exits 0 prints nothing at all (cron mails whatever a
// job prints, through this relayer); a run that does not prints its
// summary and the lines of what was deferred, not of what was delivered.
func TestFlushQuiet(t *testing.T) {
	w := newWorld(t, nil, nil, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2",
		"down.test. MX 10 mx.down.test.", "mx.down.test. A 127.0.0.9") // nothing listens there
	openSpool(t, w.spool)
	if code, out, errs := w.flush("--quiet"); code != 0 || out != "" || errs != "" {
		t.Errorf("an empty run with --quiet: exit %d, printed %q and %q; want nothing", code, out, errs)
	}
	w.enqueue("alice@example.test", msg("one"), "bob@a.test")
	if code, out, errs := w.flush("--quiet"); code != 0 || out != "" || errs != "" || w.received() != 1 {
		t.Errorf("a delivering run with --quiet: exit %d, printed %q and %q; want nothing", code, out, errs)
	}
	w.enqueue("alice@example.test", msg("two"), "carol@a.test")
	w.enqueue("alice@example.test", msg("three"), "dave@down.test")
	code, out, errs := w.flush("--quiet")
	if code != 75 || !strings.Contains(out, "exit 75") {
		t.Errorf("a run with a deferral: exit %d, summary %q; want 75 and the summary", code, out)
	}
	if !strings.Contains(errs, "dave@down.test") || strings.Contains(errs, "carol@a.test") {
		t.Errorf("log lines with --quiet: want the deferred recipient's, not the delivered one's:\n%s", errs)
	}
}

// A closed stdout and stderr (flush | tee log, then Ctrl-C, which ends
// tee) never kill the run with SIGPIPE: it stops as for SIGTERM, leaves the
// rest queued with its journal emptied, and exits with its own code.
func TestFlushClosedOutputStopsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("long: runs the built binary")
	}
	const n = 200
	w := slowWorld(t, n)
	cmd := exec.Command(binary(t), "flush", "--spool", w.spool, "--dns", w.dns.Addr(), "--port", strconv.Itoa(w.port),
		"--helo", "relay.test", "--conns-per-site", "2")
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = outW, outW
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	outW.Close()
	// Read the first log line, then close the pipe: every later write
	// fails with EPIPE.
	var first bytes.Buffer
	buf := make([]byte, 1)
	for !bytes.Contains(first.Bytes(), []byte("\n")) {
		if _, err := outR.Read(buf); err != nil {
			t.Fatalf("reading the first line: %v", err)
		}
		first.Write(buf)
	}
	outR.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the run did not end within a minute of its output closing")
	}
	if ee, ok := err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			t.Fatalf("killed by %v, want an exit with the run's own code", ws.Signal())
		}
		if ee.ExitCode() != 75 {
			t.Errorf("exit %d, want 75 (stopped with messages left queued)", ee.ExitCode())
		}
	} else if err != nil {
		t.Fatal(err)
	}
	recv := checkNothingLost(t, w, n)
	if recv == n {
		t.Errorf("all %d delivered: the run did not stop when its output closed", n)
	}
	if b, err := os.ReadFile(filepath.Join(w.spool, "journal")); err == nil && len(b) > 0 {
		t.Errorf("the journal was left behind:\n%s", b)
	}
}
