package batch

import (
	"testing"
	"time"

	"github.com/mxflush/mxflush/internal/testnet"
)

// 300 messages to one domain over two sessions to a receiver that offers
// PIPELINING (go-smtp does) and is slow at end of data: each session sends
// the next message's envelope behind the previous final dot
// (deliver.Session.SendThen) while two workers share the domain's queue.
// Every message arrives exactly once and the spool is left empty.
func TestLookaheadSharedDomainDeliversEachOnce(t *testing.T) {
	const n = 300
	w := newWorld(t, []string{"127.0.0.2"}, "slow.test. MX 10 mx.slow.test.", "mx.slow.test. A 127.0.0.2")
	r := w.receive("127.0.0.2", testnet.SMTPOptions{DataDelay: 3 * time.Millisecond})
	w.putMany(n, "slow.test")
	w.cfg.ConnsPerSite = 2
	sum := w.run()
	if sum.Totals.Delivered != n || sum.Totals.Deferred != 0 || sum.Totals.Failed != 0 || len(sum.Problems) != 0 {
		t.Errorf("totals %+v, problems %v: want all %d delivered", sum.Totals, sum.Problems, n)
	}
	onceEach(t, w.rcptCount(), n, "slow.test")
	if left := w.queued(); len(left) != 0 {
		t.Errorf("spool still holds %d messages: %v", len(left), left[:min(len(left), 5)])
	}
	if s := r.Sessions(); s != 2 {
		t.Errorf("%d sessions, want 2 (ConnsPerSite)", s)
	}
}
