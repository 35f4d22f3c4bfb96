package batch

import (
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mxflush/mxflush/spool"
)

// A bounce, delivered to the sender's MX in the same run's second pass,
// checked field by field against RFC 3464 and RFC 3462 after a MIME parser
// has read it: one recipient block, for the refused recipient only, with
// the relay that refused it and its reply.
func TestBounceFormat(t *testing.T) {
	w := lifeWorld(t)
	const id = "1732880000.M1.P1.test"
	w.put("new", id, envelope("<alice@example.test>", "gone@a.test", "bob@a.test")+original)
	sum := w.run()
	if sum.Totals.Failed != 1 || sum.Bounces != 1 {
		t.Fatalf("totals %+v, %d bounces: want gone@ failed and one DSN", sum.Totals, sum.Bounces)
	}
	if row, ok := rows(t, sum)["example.test"]; !ok || row.Pass != PassBounces || row.Delivered != 1 {
		t.Errorf("summary rows %+v: want the DSN delivered in the bounce pass", sum.Domains)
	}
	d := w.dsns()
	if len(d) != 1 || !slices.Equal(d[0].To, []string{"alice@example.test"}) {
		t.Fatalf("the sender's MX got %d DSNs (%+v), want one from <> to alice@example.test", len(d), d)
	}
	r := parseDSN(t, d[0].Data)
	for name, want := range map[string]string{
		"From":           "Mail Delivery System <MAILER-DAEMON@relay.test>",
		"To":             "<alice@example.test>",
		"Subject":        "Undelivered Mail Returned to Sender",
		"Auto-Submitted": "auto-replied",
		"Mime-Version":   "1.0",
	} {
		if got := r.top.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if _, err := mail.ParseDate(r.top.Get("Date")); err != nil || !strings.HasSuffix(r.top.Get("Message-Id"), "@relay.test>") {
		t.Errorf("Date %q (%v), Message-ID %q", r.top.Get("Date"), err, r.top.Get("Message-Id"))
	}
	if r.report["report-type"] != "delivery-status" || strings.Join(r.types, ",") != "text/plain,message/delivery-status,text/rfc822-headers" {
		t.Errorf("report-type %q, parts %v", r.report["report-type"], r.types)
	}
	if r.perMsg.Get("Reporting-Mta") != "dns; relay.test" || r.perMsg.Get("X-Mxflush-Queue-Id") != id {
		t.Errorf("per-message fields %v", r.perMsg)
	}
	if at, err := mail.ParseDate(r.perMsg.Get("Arrival-Date")); err != nil || time.Since(at) > time.Minute {
		t.Errorf("Arrival-Date %q: %v", r.perMsg.Get("Arrival-Date"), err)
	}
	if len(r.perRcpt) != 1 {
		t.Fatalf("%d recipient blocks, want 1 (bob was delivered)", len(r.perRcpt))
	}
	for name, want := range map[string]string{
		"Final-Recipient": "rfc822; gone@a.test",
		"Action":          "failed",
		"Status":          "5.1.1",
		"Remote-Mta":      "dns; mx.a.test",
		"Diagnostic-Code": "smtp; 550 5.1.1 No such user",
	} {
		if got := r.perRcpt[0].Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if _, err := mail.ParseDate(r.perRcpt[0].Get("Last-Attempt-Date")); err != nil {
		t.Errorf("Last-Attempt-Date: %v", err)
	}
	if want := "From: Alice <alice@example.test>\r\nTo: team@example.test\r\nSubject: quarterly report\r\nMessage-ID: <q4@example.test>\r\n"; r.headers != want {
		t.Errorf("text/rfc822-headers:\n%q\nwant\n%q", r.headers, want)
	}
	if !strings.Contains(r.text, "<gone@a.test>") || !strings.Contains(r.text, "550 5.1.1 No such user") || strings.Contains(r.text, "bob@") {
		t.Errorf("human-readable part:\n%s", r.text)
	}
	f := w.load("failed", id)
	if len(f.Failed) != 1 || f.Failed[0].Notice != spool.NoticeBounced {
		t.Errorf("failed/ record %+v, want gone@ marked bounced", f.Failed)
	}
	if left := w.queued(); len(left) != 0 {
		t.Errorf("queue not empty after the bounce pass: %v", left)
	}
}

// A 5xx is final: every recipient that fails in one run, across domains, goes
// into one DSN; later runs send nothing more for the message; the recipient
// still pending is retried alone, and its later success bounces nothing
// again.
func TestBounceOncePerMessage(t *testing.T) {
	w := lifeWorld(t)
	const id = "1732880000.M1.P1.test"
	w.put("new", id, envelope("<alice@example.test>", "gone1@a.test", "bob@a.test", "gone2@a.test", "relay@b.test", "busy@b.test")+original)
	if sum := w.run(); sum.Totals.Failed != 3 || sum.Totals.Deferred != 1 || sum.Totals.Delivered != 2 || sum.Bounces != 1 {
		t.Fatalf("run 1: totals %+v, %d bounces; want bob@ delivered, busy@ deferred, 3 failed and one DSN (and the DSN delivered)", sum.Totals, sum.Bounces)
	}
	d := w.dsns()
	if len(d) != 1 {
		t.Fatalf("run 1: %d DSNs, want exactly one for three failed recipients", len(d))
	}
	r := parseDSN(t, d[0].Data)
	if len(r.perRcpt) != 3 {
		t.Errorf("%d recipient blocks, want gone1, gone2 and relay", len(r.perRcpt))
	}
	if h := r.rcptBlock(t, "relay@b.test"); h.Get("Status") != "5.7.1" || h.Get("Diagnostic-Code") != "smtp; 550 5.7.1 Relaying denied" ||
		h.Get("Remote-Mta") != "dns; mx.b.test" {
		t.Errorf("relay@b.test block %v", h)
	}
	r.rcptBlock(t, "gone1@a.test")
	r.rcptBlock(t, "gone2@a.test")
	m := w.load("cur", id)
	if !slices.Equal(m.To, []string{"busy@b.test"}) || len(m.Failed) != 3 {
		t.Fatalf("cur/ state: pending %v, failed %+v; want busy@ pending and three failures", m.To, m.Failed)
	}
	for _, f := range m.Failed {
		if f.Notice != spool.NoticeBounced {
			t.Errorf("failure %+v not marked bounced", f)
		}
	}

	w.cfg.All = true
	if sum := w.run(); sum.Totals.Deferred != 1 || sum.Totals.Failed != 0 || len(w.dsns()) != 1 { // busy@ still greylisted
		t.Fatalf("run 2: totals %+v, %d DSNs; want busy@ deferred and still one DSN", sum.Totals, len(w.dsns()))
	}
	if c := w.rcptCount(); c["gone1@a.test"]+c["gone2@a.test"]+c["relay@b.test"] != 0 || c["bob@a.test"] != 1 {
		t.Errorf("copies after run 2: %v", c)
	}
	raw, err := os.ReadFile(filepath.Join(w.sp.Dir(), "cur", id))
	if err != nil {
		t.Fatal(err)
	}
	w.put("cur", id, strings.Replace(string(raw), "<busy@b.test>", "<ok@b.test>", 2))
	if sum := w.run(); sum.Totals.Delivered != 1 || sum.Totals.Deferred+sum.Totals.Failed != 0 || len(w.dsns()) != 1 || w.rcptCount()["ok@b.test"] != 1 {
		t.Fatalf("run 3: totals %+v, %d DSNs, copies %v", sum.Totals, len(w.dsns()), w.rcptCount())
	}
	if f := w.load("failed", id); len(f.Failed) != 3 || len(f.To) != 0 {
		t.Errorf("failed/ record after the last recipient was delivered: %+v", f.Envelope)
	}
	w.cfg.All = false
	if sum := w.run(); len(sum.Domains) != 0 || len(w.dsns()) != 1 {
		t.Errorf("run 4: rows %+v, %d DSNs: nothing may happen any more", sum.Domains, len(w.dsns()))
	}
}

// No DSN for a message from <> (no bounce loops), nor under NoBounce;
// the record says why; a DSN that itself fails is kept in failed/ and
// bounces nothing.
func TestNoBounce(t *testing.T) {
	tests := []struct {
		name     string
		from     string
		noBounce bool
		failed   int // files in failed/ after the run
	}{
		{"null sender", "<>", false, 1},
		{"NoBounce", "<alice@example.test>", true, 1},
		{"the DSN fails too", "<nobody@example.test>", false, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := lifeWorld(t)
			const id = "1732880000.M1.P1.test"
			w.put("new", id, envelope(tc.from, "gone@a.test")+original)
			w.cfg.NoBounce = tc.noBounce
			if sum := w.run(); sum.Totals.Failed == 0 || sum.Totals.Deferred != 0 {
				t.Fatalf("totals %+v, want gone@ failed", sum.Totals)
			}
			if len(w.dsns()) != 0 || len(w.queued()) != 0 {
				t.Errorf("%d DSNs received, queued %v: want nothing delivered or queued", len(w.dsns()), w.queued())
			}
			if got := w.files("failed"); len(got) != tc.failed {
				t.Fatalf("failed/ = %v, want %d file(s)", got, tc.failed)
			}
			want := spool.NoticeNone
			if tc.failed == 2 {
				want = spool.NoticeBounced
				for _, f := range w.files("failed") {
					if f == id {
						continue
					}
					b := w.load("failed", f)
					if b.From != "" || len(b.Failed) != 1 || b.Failed[0].Rcpt != "nobody@example.test" || b.Failed[0].Notice != spool.NoticeNone {
						t.Errorf("the failed DSN's record: %+v", b.Envelope)
					}
					var logged bool
					for _, e := range w.outcomes("nobody@example.test") {
						logged = logged || e.ID == f && e.Status == Bounced && e.Reply == "550 5.1.1 No such user"
					}
					if !logged {
						t.Errorf("the DSN's failure is not reported: %+v", w.outcomes("nobody@example.test"))
					}
				}
			}
			if f := w.load("failed", id).Failed; len(f) != 1 || f[0].Notice != want {
				t.Errorf("original's record %+v, want notice %q", f, want)
			}
			w.cfg.All = true
			if sum := w.run(); len(sum.Domains) != 0 || len(w.dsns()) != 0 {
				t.Errorf("second run: rows %+v, %d DSNs; want nothing tried and none", sum.Domains, len(w.dsns()))
			}
		})
	}
}
