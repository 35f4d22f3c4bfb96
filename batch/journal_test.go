package batch

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/mxflush/mxflush/internal/testnet"
)

// A run delivers new/report.eml, and its journal is kept because another
// message's state change failed (cur/ is gone: a full disk does the same).
// A producer then writes the next report.eml under the same name, to the
// same recipient. The next run's journal replay must not take that
// recipient off the new message: the journal's line is about the old one
// (another UID). The new report is delivered and the dropped line reported.
func TestJournalReusedNameNotReplayed(t *testing.T) {
	w := newTestWorld(t, testnet.SMTPOptions{Rcpt: func(to string) error {
		if to == "greylisted@a.test" {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "Greylisted"}
		}
		return nil
	}})
	w.put(t, "new", "report.eml", "From: cron@src.test\nTo: ops@a.test\nSubject: report 1\n\nday 1\n")
	w.put(t, "new", "other", "X-Envelope-From: <a@src.test>\nX-Envelope-To: <greylisted@a.test>\n\nSubject: other\n\nhi\n")
	cur := filepath.Join(w.sp.Dir(), "cur")
	w.cfg.Resolver = &hookResolver{Resolver: w.cfg.Resolver, before: func() {
		// After the scan: the deferral of "other" into cur/ will fail.
		if err := os.Rename(cur, cur+".away"); err != nil {
			t.Error(err)
		}
		os.WriteFile(cur, nil, 0o600)
	}}
	sum := runLive(t, w.sp, w.cfg)
	os.Remove(cur)
	if err := os.Rename(cur+".away", cur); err != nil {
		t.Fatal(err)
	}
	if sum.Totals.Delivered != 1 || len(sum.Problems) == 0 {
		t.Fatalf("first run: totals %+v, problems %+v; want report.eml delivered and the deferral failing", sum.Totals, sum.Problems)
	}
	if j, _ := os.ReadFile(filepath.Join(w.sp.Dir(), "journal")); !strings.Contains(string(j), "report.eml\t") {
		t.Fatalf("journal not kept after the failed state change:\n%s", j)
	}

	w.put(t, "new", "report.eml", "From: cron@src.test\nTo: ops@a.test\nSubject: report 2\n\nday 2\n")
	w.cfg.Resolver = w.cfg.Resolver.(*hookResolver).Resolver
	sum = runLive(t, w.sp, w.cfg)
	var got []string
	for _, m := range w.recv.Messages() {
		if strings.Contains(string(m.Data), "Subject: report") {
			got = append(got, strings.Fields(strings.SplitN(string(m.Data), "Subject: ", 2)[1])[1])
		}
	}
	if strings.Join(got, ",") != "1,2" {
		t.Errorf("reports received: %q, want 1 and 2", got)
	}
	var reported bool
	for _, p := range sum.Problems {
		if p.ID == "report.eml" && strings.Contains(p.Reason, "reused name") {
			reported = true
		}
	}
	if !reported {
		t.Errorf("problems %+v: want the dropped journal line for report.eml reported", sum.Problems)
	}
	if j, _ := os.ReadFile(filepath.Join(w.sp.Dir(), "journal")); len(j) != 0 {
		t.Errorf("journal not emptied by the second run:\n%s", j)
	}
}

// A crash journal left by a killed run: its recipients are taken off the
// message before anything is sent (a dry run plans without them and leaves
// the journal as it is), a torn last line and a line for a message that
// is gone are dropped, and the journal is emptied after the run.
func TestJournalReplay(t *testing.T) {
	w := lifeWorld(t)
	w.put("new", "1.P1R1.host", envelope("<alice@example.test>", "x@a.test", "y@b.test", "z@a.test")+original)
	const journal = "1.P1R1.host\tx@a.test\n1.P1R1.host\ty@b.test\n2.P1R1.gone\tq@a.test\n1.P1R1.host\tz@a.te" // the last line torn
	w.put("", "journal", journal)
	w.cfg.DryRun = true
	sum := w.run()
	if rs := rows(t, sum); len(rs) != 1 || rs["a.test"].Recipients != 1 || len(w.rcptCount()) != 0 {
		t.Errorf("dry run: rows %+v, copies %v: want a.test with z@ alone, nothing sent", rs, w.rcptCount())
	}
	if j := w.journal(); j != journal {
		t.Errorf("dry run changed the journal: %q", j)
	}

	w.cfg.DryRun = false
	sum = w.run()
	if sum.Totals.Delivered != 1 || sum.Totals.Deferred+sum.Totals.Failed != 0 || sum.Replayed != 2 {
		t.Errorf("totals %+v, replayed %d: want z@ delivered and the 2 journalled recipients replayed", sum.Totals, sum.Replayed)
	}
	if c := w.rcptCount(); c["x@a.test"] != 0 || c["y@b.test"] != 0 || c["z@a.test"] != 1 {
		t.Errorf("copies %v: want only z@a.test, the one the journal does not list", c)
	}
	if j := w.journal(); j != "" {
		t.Errorf("journal not emptied: %q", j)
	}
	if left := w.queued(); len(left) != 0 {
		t.Errorf("queued after the run: %v", left)
	}
}

// A recipient taken by the first transaction of a 452 split (RFC 5321
// §4.5.3.1.10) is journalled once, when that transaction is accepted, not
// a second time when the message's item ends.
func TestJournalOnceAcross452Split(t *testing.T) {
	var mu sync.Mutex
	inTxn := 0
	w := newTestWorld(t, testnet.SMTPOptions{
		Mail: func(string, *smtp.MailOptions) error {
			mu.Lock()
			inTxn = 0
			mu.Unlock()
			return nil
		},
		Rcpt: func(string) error {
			mu.Lock()
			defer mu.Unlock()
			if inTxn++; inTxn > 2 {
				return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: "too many recipients"}
			}
			return nil
		},
	})
	w.cfg.MaxConns, w.cfg.ConnsPerSite = 1, 1
	w.put(t, "new", "m1", "X-Envelope-From: <alice@a.test>\nX-Envelope-To: <r1@a.test>\nX-Envelope-To: <r2@a.test>\nX-Envelope-To: <r3@a.test>\nX-Envelope-To: <r4@a.test>\nSubject: split\n\nhi\n")
	w.put(t, "new", "m2", "X-Envelope-From: <alice@a.test>\nX-Envelope-To: <r5@a.test>\nSubject: after\n\nhi\n")
	var lines int
	w.cfg.OnResult = func(e Event) {
		if e.ID != "m2" {
			return
		}
		j, _ := os.ReadFile(filepath.Join(w.sp.Dir(), "journal"))
		lines = strings.Count(string(j), "m1\t")
	}
	sum := runLive(t, w.sp, w.cfg)
	if sum.Totals.Delivered != 5 || len(w.recv.Messages()) != 3 {
		t.Fatalf("delivered %d in %d transactions, want 5 in 3 (m1 split in two)", sum.Totals.Delivered, len(w.recv.Messages()))
	}
	if lines != 4 {
		t.Errorf("the journal has %d lines for m1's 4 recipients, want 4", lines)
	}
}
