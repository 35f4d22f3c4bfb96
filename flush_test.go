package main

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mxflush/mxflush/internal/testnet"
)

// --max-conns and --conns-per-domain reach the run (batch's split and
// connection-limit tests check what the run does with them): two slow
// domains under --max-conns 1 are served one session at a time; 201
// messages to one domain under --conns-per-domain 1 go over one session,
// where the default 4 would open three. The text summary has its total row
// and every delivery its log line.
func TestFlushConnectionFlags(t *testing.T) {
	slow := func(string) testnet.SMTPOptions { return testnet.SMTPOptions{DataDelay: 2 * time.Millisecond} }
	w := newWorld(t, []string{"127.0.0.2", "127.0.0.3"}, slow,
		"a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2", "b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.3")
	spoolMany(t, w.spool, 10, []string{"a.test", "b.test"})
	code, out, errs := w.flush("--max-conns", "1")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	if got := w.gauge.Max(); got != 1 {
		t.Errorf("peak concurrent sessions = %d, want 1 (--max-conns 1)", got)
	}
	if !strings.Contains(out, "total") || strings.Count(errs, "status=sent") != 10 {
		t.Errorf("summary or log lines missing:\n%s\n%s", out, errs)
	}

	spoolMany(t, w.spool, 201, []string{"a.test"})
	before := w.recv["127.0.0.2"].Sessions()
	if code, out, errs := w.flush("--conns-per-domain", "1"); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, tail(errs, 2000))
	}
	if got := w.recv["127.0.0.2"].Sessions() - before; got != 1 {
		t.Errorf("%d sessions for 201 messages, want 1 (--conns-per-domain 1)", got)
	}
}

// The command line of a retry: a deferral exits 75; a run before the next
// attempt exits 0 and says the message is not due; --all sends it now.
// (batch's TestDeferThenRetryPendingOnly checks the state kept between.)
func TestFlushDeferThenRetry(t *testing.T) {
	var mu sync.Mutex
	greylist := true
	w := newWorld(t, nil, func(string) testnet.SMTPOptions {
		return testnet.SMTPOptions{Rcpt: func(to string) error {
			mu.Lock()
			defer mu.Unlock()
			if greylist && to == "b@a.test" {
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "Greylisted, retry later"}
			}
			return nil
		}}
	}, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	w.enqueue("alice@example.test", msg("retry"), "a@a.test", "b@a.test")
	if code, out, errs := w.flush(); code != 75 || !strings.Contains(errs, "status=deferred (451 4.7.1 Greylisted") {
		t.Fatalf("run 1: exit %d, want 75 and b@ deferred in the log\n%s\n%s", code, out, errs)
	}
	code, out, _ := w.flush()
	if code != 0 || w.received() != 1 || !strings.Contains(out, "1 message(s) not due") {
		t.Errorf("a run before the retry time: exit %d, %d messages received, want 0 (nothing due) and still 1\n%s", code, w.received(), out)
	}
	mu.Lock()
	greylist = false
	mu.Unlock()
	if code, out, errs := w.flush("--all"); code != 0 || w.received() != 2 {
		t.Fatalf("--all: exit %d, %d messages received; want 0 and the retry sent\n%s\n%s", code, w.received(), out, errs)
	}
	if left := append(w.files("new"), w.files("cur")...); len(left) != 0 {
		t.Errorf("entry not removed after --all: %v", left)
	}
}
