package batch

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/spool"
)

// startSink runs Postfix's smtp-sink on ip at the world's port with extra
// options (see testnet.StartSink), dumping every transaction into the
// returned directory; it skips the test when smtp-sink is not installed
// (.ci/run installs it).
func (w *world) startSink(ip string, extra ...string) string {
	w.t.Helper()
	path := testnet.SinkPath()
	if path == "" {
		w.t.Skip("smtp-sink (Debian package postfix) is not installed")
	}
	dir := w.t.TempDir()
	sink, err := testnet.StartSink(path, fmt.Sprintf("%s:%d", ip, w.port), dir, extra...)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() {
		if out := sink.Close(); w.t.Failed() {
			w.t.Log(out)
		}
	})
	return dir
}

// sinkRcpts counts the recipients in smtp-sink's dump (X-Rcpt-Args lines),
// waiting up to 5 s for want distinct ones to be written.
func sinkRcpts(dir string, want int) map[string]int {
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
	w := newWorld(t, []string{"127.0.0.2"}, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	dir := w.startSink("127.0.0.2", "-W", ".:1")
	w.putMany(n, "a.test")
	w.cfg.ConnsPerSite = 1
	sum := w.run()
	if sum.Totals.Deferred != 1 || sum.Totals.Delivered != n-1 || sum.Totals.Failed != 0 {
		t.Errorf("totals %+v: want one message deferred, %d delivered", sum.Totals, n-1)
	}
	if w.countEvents(Deferred, "out of order") != 1 {
		t.Errorf("no recipient deferred for replies out of order: %+v", w.events)
	}
	onceEach(t, sinkRcpts(dir, n), n, "a.test")
	cur := w.files(spool.QueueCur)
	if len(cur) != 1 || len(w.files(spool.QueueNew)) != 0 {
		t.Fatalf("cur/ %v, new/ %v: want only the message whose dot was answered out of order", cur, w.files(spool.QueueNew))
	}
	if m := w.load(spool.QueueCur, cur[0]); m.Attempts != 1 || len(m.To) != 1 {
		t.Errorf("deferred %s: to %v, attempts %d; want its recipient pending, 1 attempt", cur[0], m.To, m.Attempts)
	}
}
