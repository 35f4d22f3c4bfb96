package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mxflush/mxflush/internal/testnet"
)

// startSinkAt runs Postfix's smtp-sink on addr with extra options (see
// testnet.StartSink), dumping every transaction into the returned
// directory; it skips the test when smtp-sink is not installed (.ci/run
// installs it).
func startSinkAt(t *testing.T, addr string, extra ...string) string {
	t.Helper()
	path := testnet.SinkPath()
	if path == "" {
		t.Skip("smtp-sink (Debian package postfix) is not installed")
	}
	dir := t.TempDir()
	sink, err := testnet.StartSink(path, addr, dir, extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if out := sink.Close(); t.Failed() {
			t.Log(out)
		}
	})
	return dir
}

// sinkRcpts counts the recipients in smtp-sink's dump (X-Rcpt-Args lines),
// waiting up to 5 s for want distinct ones to be written.
func sinkRcpts(t *testing.T, dir string, want int) map[string]int {
	t.Helper()
	var n map[string]int
	for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(20 * time.Millisecond) {
		n = map[string]int{}
		files, _ := filepath.Glob(filepath.Join(dir, "dump*"))
		for _, f := range files {
			b, _ := os.ReadFile(f)
			for _, l := range strings.Split(string(b), "\n") {
				if r, ok := strings.CutPrefix(l, "X-Rcpt-Args: <"); ok {
					n[strings.TrimSuffix(r, ">")]++
				}
			}
		}
		if len(n) >= want {
			break
		}
	}
	return n
}

// Against Postfix's smtp-sink -W .:1, which delays each reply to a final
// dot by a second and lets the replies of the look-ahead group behind it
// overtake it: the first dot's reply is read out of order, so that message
// is deferred (at most one copy: its dot went out), the domain's next
// session goes without PIPELINING, and the other messages are delivered
// once each.
func TestSmtpSinkDelayedDot(t *testing.T) {
	const n = 3
	w := newWorld(t, []string{"127.0.0.3"}, nil, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	dir := startSinkAt(t, "127.0.0.2:"+strconv.Itoa(w.port), "-W", ".:1")
	spoolMany(t, w.spool, n, []string{"a.test"})
	code, out, errs := w.flush("--conns-per-site", "1")
	if code != 75 {
		t.Errorf("exit %d, want 75 (one message deferred)\n%s\n%s", code, out, tail(errs, 600))
	}
	if !strings.Contains(errs, "out of order") {
		t.Errorf("no recipient deferred for replies out of order:\n%s", tail(errs, 1000))
	}
	got := sinkRcpts(t, dir, n)
	for i := range n {
		if rcpt := fmt.Sprintf("u%d@a.test", i); got[rcpt] != 1 {
			t.Errorf("%s reached smtp-sink %d times, want once (dump: %v)", rcpt, got[rcpt], got)
		}
	}
	cur := w.files("cur")
	if len(cur) != 1 || len(w.files("new")) != 0 {
		t.Fatalf("cur/ %v, new/ %v: want only the message whose dot was answered out of order", cur, w.files("new"))
	}
	if m := w.load("cur", cur[0]); m.Attempts != 1 || len(m.To) != 1 {
		t.Errorf("deferred %s: to %v, attempts %d; want its recipient pending, 1 attempt", cur[0], m.To, m.Attempts)
	}
}
