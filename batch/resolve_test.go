package batch

import (
	"fmt"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/spool"
)

// Before any session opens, a run resolves every domain, many at a time:
// with 100 domains whose MX answers each take 100 ms, the DNS server sees
// about as many queries in flight as the run may have sessions (one after
// another per worker, it would see one per site). Each domain is asked
// once, and the bounce pass asks nothing again: the DSN for the refused
// recipient goes to d0.test, already resolved.
func TestRunResolvesEveryDomainFirstAndOnce(t *testing.T) {
	var recs []string
	for i := range 100 {
		recs = append(recs, fmt.Sprintf("d%d.test. MX 10 mx.a.test.", i))
	}
	w := newTestWorld(t, testnet.SMTPOptions{
		Rcpt: func(to string) error {
			if to == "gone@d1.test" {
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
			}
			return nil
		},
	}, recs...)
	w.cfg.MaxConns = resolveInFlight // lookups in flight are bounded by it too
	for i := range 100 {
		w.dns.Delay(fmt.Sprintf("d%d.test", i), 100*time.Millisecond)
		w.put(t, "new", fmt.Sprintf("m%d", i), fmt.Sprintf("X-Envelope-From: <alice@d0.test>\nX-Envelope-To: <bob@d%d.test>\nSubject: %d\n\nhi\n", i, i))
	}
	w.put(t, "new", "gone", "X-Envelope-From: <alice@d0.test>\nX-Envelope-To: <gone@d1.test>\nSubject: gone\n\nhi\n")
	sum := runLive(t, w.sp, w.cfg)
	if sum.Totals.Delivered != 101 || sum.Totals.Failed != 1 || sum.Bounces != 1 {
		t.Fatalf("delivered %d, failed %d, bounces %d; want 101 (the DSN too), 1, 1 (%+v)", sum.Totals.Delivered, sum.Totals.Failed, sum.Bounces, sum.Totals)
	}
	if n := w.dns.MaxInFlight(); n < resolveInFlight/2 {
		t.Errorf("at most %d DNS queries were in flight at once, want about %d (domains resolved first, concurrently)", n, resolveInFlight)
	}
	for i := range 100 {
		if n := w.dns.Queries(fmt.Sprintf("d%d.test", i), dns.TypeMX); n != 1 {
			t.Errorf("d%d.test: %d MX queries, want 1", i, n)
		}
	}
	if _, err := w.sp.Load(spool.QueueNew, "gone"); err == nil {
		t.Errorf("the refused message is still in new/")
	}
}

// A failed lookup is remembered for the run too: two passes, one query.
func TestRunCachesFailedLookups(t *testing.T) {
	w := newTestWorld(t, testnet.SMTPOptions{
		Rcpt: func(to string) error {
			if to == "gone@a.test" {
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
			}
			return nil
		},
	}, "broken.test. MX 10 mx.a.test.")
	w.dns.SetRcode("broken.test", dns.RcodeServerFailure)
	// The DSN of gone@a.test goes back to the sender at broken.test, in
	// the bounce pass: its domain failed in the main pass already.
	w.put(t, "new", "m1", "X-Envelope-From: <alice@broken.test>\nX-Envelope-To: <gone@a.test>\nX-Envelope-To: <x@broken.test>\nSubject: s\n\nhi\n")
	sum := runLive(t, w.sp, w.cfg)
	if sum.Bounces != 1 {
		t.Fatalf("bounces %d, want 1", sum.Bounces)
	}
	if n := w.dns.Queries("broken.test", dns.TypeMX); n != 1 {
		t.Errorf("broken.test: %d MX queries over both passes, want 1", n)
	}
}
