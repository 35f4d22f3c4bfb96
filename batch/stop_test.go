package batch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mxflush/mxflush/internal/testnet"
)

// Config.Stop ends a run gracefully (flush's --max-runtime and SIGTERM):
// the transaction in flight finishes, no new one starts, and every message
// not reached is left queued exactly as it was, still due and with no
// attempt counted; the summary gives the cause and how many were left.
// Nothing is lost or sent twice, and the next run delivers the rest.
func TestStopLeavesRestQueued(t *testing.T) {
	const n, before = 40, 5
	w := newWorld(t, []string{"127.0.0.2"}, "slow.test. MX 10 mx.slow.test.", "mx.slow.test. A 127.0.0.2")
	stop, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	var mu sync.Mutex
	accepted := 0
	r := w.receive("127.0.0.2", testnet.SMTPOptions{Data: func(string, []string, []byte) error {
		mu.Lock()
		defer mu.Unlock()
		if accepted++; accepted == before {
			cancel(errors.New("after --max-runtime 300ms"))
		}
		return nil
	}})
	w.putMany(n, "slow.test")
	w.cfg.ConnsPerSite = 1
	w.cfg.Stop = stop
	sum := w.run()
	got := len(r.Messages())
	if got < before || got == n {
		t.Fatalf("%d of %d received: want the run stopped after the %dth", got, n, before)
	}
	if sum.Stopped != "after --max-runtime 300ms" || sum.LeftQueued != n-got {
		t.Errorf("stopped %q, left queued %d; want the cause and %d", sum.Stopped, sum.LeftQueued, n-got)
	}
	if sum.Totals.Delivered != got || sum.Totals.Deferred != 0 || sum.Totals.Failed != 0 {
		t.Errorf("totals %+v: want %d delivered, nothing deferred or failed", sum.Totals, got)
	}
	count := w.rcptCount()
	queued := map[string]bool{}
	for _, id := range w.queued() {
		raw, err := os.ReadFile(filepath.Join(w.sp.Dir(), "new", id))
		if err != nil {
			t.Fatalf("%s: %v (a message left by a stop must stay in new/, untouched)", id, err)
		}
		if s := string(raw); strings.Contains(s, "X-Envelope-Attempts") || strings.Contains(s, "X-Envelope-Next-Attempt") {
			t.Errorf("%s: a message left queued by a stop counts an attempt:\n%s", id, s[:min(len(s), 300)])
		}
		queued[w.load("new", id).To[0]] = true
	}
	for rcpt := range count {
		if queued[rcpt] {
			t.Errorf("%s received and still queued", rcpt)
		}
	}
	if len(queued)+got != n {
		t.Errorf("%d received + %d queued, want %d: a message was lost", got, len(queued), n)
	}

	w.cfg.Stop = nil
	if sum := w.run(); sum.Totals.Delivered != n-got || sum.Stopped != "" || sum.NotDue != 0 {
		t.Errorf("second run: totals %+v, stopped %q, %d not due; want the %d left delivered", sum.Totals, sum.Stopped, sum.NotDue, n-got)
	}
	onceEach(t, w.rcptCount(), n, "slow.test")
}
