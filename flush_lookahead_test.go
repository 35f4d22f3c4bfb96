package main

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
func TestFlushLookaheadDeliversEachOnce(t *testing.T) {
	const n = 300
	w := newWorld(t, nil, func(string) testnet.SMTPOptions { return testnet.SMTPOptions{DataDelay: 3 * time.Millisecond} },
		"slow.test. MX 10 mx.slow.test.", "mx.slow.test. A 127.0.0.2")
	spoolMany(t, w.spool, n, []string{"slow.test"})
	code, out, errs := w.flush("--conns-per-domain", "2")
	if code != 0 {
		t.Fatalf("exit %d, want 0\n%s\n%s", code, out, tail(errs, 2000))
	}
	if recv := checkNothingLost(t, w, n); recv != n {
		t.Errorf("%d of %d messages received", recv, n)
	}
	if left := append(w.files("new"), w.files("cur")...); len(left) != 0 {
		t.Errorf("spool still holds %d messages: %v", len(left), left[:min(len(left), 5)])
	}
	if s := w.recv["127.0.0.2"].Sessions(); s != 2 {
		t.Errorf("%d sessions, want 2 (--conns-per-domain)", s)
	}
}
