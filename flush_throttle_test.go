package main

import (
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/mxflush/mxflush/internal/testnet"
)

// A receiver that throttles by answering every MAIL with 421 gets
// barrenLimit (3) connections, not two per message: after three sessions
// in a row lost without a delivery, the rest of the batch is deferred at
// once, nothing bounced, everything still queued.
func TestFlushThrottlingReceiverDeferred(t *testing.T) {
	throttle := func(string) testnet.SMTPOptions {
		return testnet.SMTPOptions{Mail: func(string, *smtp.MailOptions) error {
			return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Try again later"}
		}}
	}
	w := newWorld(t, []string{"127.0.0.2"}, throttle, "busy.test. MX 10 mx.busy.test.", "mx.busy.test. A 127.0.0.2")
	spoolMany(t, w.spool, 50, []string{"busy.test"})
	code, out, errs := w.flush("--conns-per-domain", "1", "--json")
	if code != 75 {
		t.Fatalf("exit %d, want 75 (deferred)\n%s", code, tail(errs, 2000))
	}
	r := w.recv["127.0.0.2"]
	if n := r.Sessions(); n != 3 {
		t.Errorf("%d connections, want 3 (then the batch is deferred)", n)
	}
	if n := len(w.files("new")) + len(w.files("cur")); n != 50 {
		t.Errorf("%d messages queued, want all 50", n)
	}
	if fs := w.files("failed"); len(fs) > 0 {
		t.Errorf("failed/ holds %d messages: a throttle must never bounce", len(fs))
	}
	row := summaryRows(t, out)["busy.test"]
	if row.Deferred != 50 || !strings.Contains(row.Error, "in a row") {
		t.Errorf("busy.test row %+v, want 50 deferred and the reason", row)
	}
}
