package batch

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/spool"
)

// Command injection (RFC 5321 §4.1.2): a CR in an envelope address. The
// file is moved to bad/ with its reason, sent to nobody (the injected
// domain's MX gets no connection, no receiver sees the injected command),
// reported as a spool problem, and the valid message still goes out.
func TestRunInjectedEnvelopeIsQuarantined(t *testing.T) {
	w := newWorld(t, []string{"127.0.0.2", "127.0.0.3"},
		"a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2", "spy.test. MX 10 mx.spy.test.", "mx.spy.test. A 127.0.0.3")
	a := w.receive("127.0.0.2", testnet.SMTPOptions{})
	spy := w.receive("127.0.0.3", testnet.SMTPOptions{})
	w.put("new", "1.injected", "X-Envelope-From: <alice@example.test>\nX-Envelope-To: <bob@a.test>\rRCPT TO:<spy@spy.test>\nSubject: x\n\nhi\n")
	w.putMsg("2.good", "alice@example.test", "good", "carol@a.test")
	sum := w.run()
	if len(sum.Problems) != 1 || sum.Problems[0].ID != "1.injected" || sum.Problems[0].IOError || sum.Problems[0].MovedTo == "" {
		t.Errorf("problems %+v, want 1.injected moved aside (an invalid file, not an I/O error)", sum.Problems)
	}
	if bad := w.files("bad"); len(bad) != 2 { // the file and its .reason
		t.Errorf("bad/ holds %v, want the file and its reason", bad)
	}
	if spy.Sessions() != 0 {
		t.Error("the injected domain's MX got a connection")
	}
	for _, c := range a.Commands() {
		if strings.Contains(c, "spy") {
			t.Errorf("receiver saw an injected command %q", c)
		}
	}
	if got := a.Messages(); len(got) != 1 || !slices.Equal(got[0].To, []string{"carol@a.test"}) || len(w.queued()) != 0 {
		t.Errorf("received %+v, queued %v: want the valid message delivered", got, w.queued())
	}
}

// A producer that reuses a file name (a daily report.eml) while the earlier
// message of that name is kept in failed/: both are kept, the new one is
// delivered.
func TestRunReusedFileName(t *testing.T) {
	w := newWorld(t, []string{"127.0.0.2"}, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	r := w.receive("127.0.0.2", testnet.SMTPOptions{})
	w.cfg.NoBounce = true
	w.put("new", "report.eml", "X-Envelope-From: <x@a.test>\nX-Envelope-To: <u@missing.test>\nSubject: day 1\n\nb\n")
	if sum := w.run(); sum.Totals.Failed != 1 {
		t.Fatalf("day 1: totals %+v, want u@missing.test failed", sum.Totals)
	}
	w.put("new", "report.eml", "X-Envelope-From: <x@a.test>\nX-Envelope-To: <boss@a.test>\nSubject: day 2\n\nb\n")
	if sum := w.run(); sum.Totals.Delivered != 1 || sum.Totals.Failed+sum.Totals.Deferred != 0 || len(sum.Problems) != 0 {
		t.Fatalf("day 2: totals %+v, problems %+v; want boss@ delivered", sum.Totals, sum.Problems)
	}
	if got := r.Messages(); len(got) != 1 || got[0].To[0] != "boss@a.test" {
		t.Errorf("day 2's message was not delivered: %+v", got)
	}
	if f := w.files("failed"); len(f) != 1 || f[0] != "report.eml" {
		t.Errorf("failed/ = %v, want day 1's report.eml kept", f)
	}
	if m := w.load("failed", "report.eml"); len(m.Failed) != 1 || m.Failed[0].Rcpt != "u@missing.test" {
		t.Errorf("failed/report.eml records %+v, want day 1's failure", m.Failed)
	}
}

// A dry run resolves and plans: the summary has each domain's MX hosts,
// recipients and planned sessions, but no session is opened, no outcome
// counted, and the spool is left exactly as it was.
func TestDryRunChangesNothing(t *testing.T) {
	w := newWorld(t, []string{"127.0.0.2"}, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	r := w.receive("127.0.0.2", testnet.SMTPOptions{})
	w.putMany(3, "a.test")
	w.put("cur", "9.deferred", envelope("<alice@example.test>", "later@a.test")+"X-Envelope-Attempts: 1\nX-Envelope-Next-Attempt: "+time.Now().Add(time.Hour).UTC().Format(time.RFC3339)+"\n\nlater\n")
	w.cfg.DryRun = true
	sum := w.run()
	if r.Sessions() != 0 || len(w.files(spool.QueueNew)) != 3 || len(w.files(spool.QueueCur)) != 1 || len(w.files("failed")) != 0 {
		t.Fatalf("%d sessions, new/ %v, cur/ %v: want nothing touched", r.Sessions(), w.files(spool.QueueNew), w.files(spool.QueueCur))
	}
	row := rows(t, sum)["a.test"]
	if !sum.DryRun || sum.NotDue != 1 || row.Recipients != 3 || !slices.Equal(row.MX, []string{"mx.a.test[127.0.0.2]"}) ||
		row.Delivered+row.Deferred+row.Failed != 0 {
		t.Errorf("summary %+v, a.test row %+v: want the plan with its MX, one message not due, no outcome", sum, row)
	}
	if m := w.load(spool.QueueCur, "9.deferred"); m.Attempts != 1 {
		t.Errorf("the deferred message now has %d attempts", m.Attempts)
	}
}
