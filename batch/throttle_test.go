package batch

import (
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/mxflush/mxflush/internal/testnet"
)

// A receiver that throttles by answering every MAIL with 421 gets
// barrenLimit (3) connections, not two per message: after three sessions
// in a row lost without a delivery, the rest of the batch is deferred at
// once, nothing bounced, everything still queued.
func TestThrottlingReceiverDeferred(t *testing.T) {
	w := newWorld(t, []string{"127.0.0.2"}, "busy.test. MX 10 mx.busy.test.", "mx.busy.test. A 127.0.0.2")
	r := w.receive("127.0.0.2", testnet.SMTPOptions{Mail: func(string, *smtp.MailOptions) error {
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Try again later"}
	}})
	w.putMany(50, "busy.test")
	w.cfg.ConnsPerSite = 1
	sum := w.run()
	if n := r.Sessions(); n != 3 {
		t.Errorf("%d connections, want 3 (then the batch is deferred)", n)
	}
	if n := len(w.queued()); n != 50 {
		t.Errorf("%d messages queued, want all 50", n)
	}
	if fs := w.files("failed"); len(fs) > 0 || sum.Totals.Failed != 0 || sum.Bounces != 0 {
		t.Errorf("failed/ holds %d messages, totals %+v, %d bounces: a throttle must never bounce", len(fs), sum.Totals, sum.Bounces)
	}
	if row := rows(t, sum)["busy.test"]; row.Deferred != 50 || !strings.Contains(row.Error, "in a row") {
		t.Errorf("busy.test row %+v, want 50 deferred and the reason", row)
	}
}

// A receiver that rate-limits at the end of data (451 4.7.1 to every
// final dot) backs the site off as one that refuses MAIL or RCPT does:
// after barrenLimit such transactions in a row the rest of the site's
// mail waits for the next run, though with PIPELINING the next message's
// commands are always in flight behind the refused one's dot (the session
// is dropped in DATA, so that message is not received either). Nothing is
// received, nothing bounced, everything stays queued.
func TestThrottlingAtEndOfDataDefersSite(t *testing.T) {
	w := newWorld(t, []string{"127.0.0.2"}, "busy.test. MX 10 mx.busy.test.", "mx.busy.test. A 127.0.0.2")
	var mu sync.Mutex
	data := 0
	w.receive("127.0.0.2", testnet.SMTPOptions{Data: func(string, []string, []byte) error {
		mu.Lock()
		data++
		mu.Unlock()
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "rate limited, try again later"}
	}})
	w.putMany(50, "busy.test")
	w.cfg.ConnsPerSite = 1
	sum := w.run()
	mu.Lock()
	n := data
	mu.Unlock()
	if n > barrenLimit {
		t.Errorf("%d messages sent up to their final dot, want at most %d: the site is given up after %d throttled transactions", n, barrenLimit, barrenLimit)
	}
	if q := len(w.queued()); q != 50 || sum.Totals.Deferred != 50 || sum.Totals.Failed != 0 || sum.Bounces != 0 {
		t.Errorf("%d queued, totals %+v, %d bounces; want all 50 deferred", q, sum.Totals, sum.Bounces)
	}
	if row := rows(t, sum)["busy.test"]; !strings.Contains(row.Error, "throttling replies in a row") {
		t.Errorf("busy.test row error %q, want the reason the rest waits", row.Error)
	}
}
