package batch

import (
	"slices"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/spool"
)

// OnPlan tells the progress line each pass's recipients before the pass
// delivers: the main pass's three, then the bounce pass's one (the DSN for
// the refused recipient), so the total grows as the run learns of work.
func TestRunOnPlanCountsEachPass(t *testing.T) {
	w := newTestWorld(t, testnet.SMTPOptions{
		Rcpt: func(to string) error {
			if to == "gone@b.test" {
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
			}
			return nil
		},
	}, "b.test. MX 10 mx.a.test.")
	w.put(t, "new", "m1", "X-Envelope-From: <alice@a.test>\nX-Envelope-To: <bob@a.test>\nX-Envelope-To: <carol@b.test>\nX-Envelope-To: <gone@b.test>\nSubject: plan\n\nhi\n")
	var mu sync.Mutex
	var passes []int
	w.cfg.OnPlan = func(n int) {
		mu.Lock()
		passes = append(passes, n)
		mu.Unlock()
	}
	if _, err := Run(t.Context(), w.sp, w.cfg); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(passes, []int{3, 1}) {
		t.Errorf("OnPlan saw passes %v, want [3 1] (the main pass, then the bounce)", passes)
	}
}

// A Selection narrows the run: with Only{Domains: a.test}, the message to
// a.test and b.test goes to a.test alone and keeps its b.test recipient
// pending, untried; a message with no a.test recipient is not planned.
func TestRunOnlySelectedDomain(t *testing.T) {
	w := newTestWorld(t, testnet.SMTPOptions{}, "b.test. MX 10 mx.a.test.")
	w.put(t, "new", "m1", "X-Envelope-From: <alice@a.test>\nX-Envelope-To: <bob@a.test>\nX-Envelope-To: <carol@b.test>\nSubject: both\n\nhi\n")
	w.put(t, "new", "m2", "X-Envelope-From: <alice@a.test>\nX-Envelope-To: <dave@b.test>\nSubject: b only\n\nhi\n")
	w.cfg.Only = &Selection{Domains: []string{"a.test"}}
	sum, err := Run(t.Context(), w.sp, w.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := w.recv.Messages(); len(got) != 1 || !slices.Equal(got[0].To, []string{"bob@a.test"}) {
		t.Errorf("received %v, want one transaction to bob@a.test", got)
	}
	if sum.NotSelected != 1 {
		t.Errorf("NotSelected = %d, want 1 (m2)", sum.NotSelected)
	}
	m1, err := w.sp.Load(spool.QueueCur, "m1")
	if err != nil {
		t.Fatalf("m1 not in cur/: %v", err)
	}
	if !slices.Equal(m1.To, []string{"carol@b.test"}) || m1.Attempts != 0 {
		t.Errorf("m1 keeps %v with %d attempts, want carol@b.test pending and no attempt", m1.To, m1.Attempts)
	}
	if _, err := w.sp.Load(spool.QueueNew, "m2"); err != nil {
		t.Errorf("m2 was touched: %v", err)
	}
}
