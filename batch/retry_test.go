package batch

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/spool"
)

// 4yz defers with the reply recorded in the message's state; a run before
// the next attempt leaves it alone (not due); a later run sends only to
// the pending recipient, with the same sender and the same body, and
// removes the message (greylisting: retry only the pending recipients).
func TestDeferThenRetryPendingOnly(t *testing.T) {
	var mu sync.Mutex
	greylist := true
	w := newWorld(t, []string{"127.0.0.2"}, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	r := w.receive("127.0.0.2", testnet.SMTPOptions{Rcpt: func(to string) error {
		mu.Lock()
		defer mu.Unlock()
		if greylist && to == "b@a.test" {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "Greylisted, retry later"}
		}
		return nil
	}})
	w.put("new", "1.big", "X-Envelope-From: <alice@example.test>\nX-Envelope-To: <a@a.test>\nX-Envelope-To: <b@a.test>\n"+
		"Subject: retry\r\n\r\n"+strings.Repeat("0123456789abcdef\r\n", 12000))
	if sum := w.run(); sum.Totals.Delivered != 1 || sum.Totals.Deferred != 1 || sum.Totals.Failed != 0 {
		t.Fatalf("run 1: totals %+v, want a@ delivered and b@ deferred", sum.Totals)
	}
	if cur := w.files(spool.QueueCur); !slices.Equal(cur, []string{"1.big"}) || len(w.files(spool.QueueNew)) != 0 {
		t.Fatalf("after run 1: cur=%v new=%v, want the message in cur/", cur, w.files(spool.QueueNew))
	}
	state, _ := os.ReadFile(filepath.Join(w.sp.Dir(), "cur", "1.big"))
	head := string(state[:strings.Index(string(state), "Subject:")])
	if strings.Contains(head, "<a@a.test>") || !strings.Contains(head, "X-Envelope-To: <b@a.test>") ||
		!strings.Contains(head, "451 4.7.1 Greylisted") || !strings.Contains(head, "X-Envelope-Attempts: 1") {
		t.Errorf("state after run 1 should keep only b@ with its reply:\n%s", head)
	}
	if sum := w.run(); sum.NotDue != 1 || len(sum.Domains) != 0 || len(r.Messages()) != 1 {
		t.Errorf("a run before the retry time: %d not due, rows %+v, %d messages received; want 1 not due, nothing tried", sum.NotDue, sum.Domains, len(r.Messages()))
	}
	mu.Lock()
	greylist = false
	mu.Unlock()
	w.cfg.All = true
	if sum := w.run(); sum.Totals.Delivered != 1 || sum.Totals.Deferred != 0 {
		t.Fatalf("run 2: totals %+v, want b@ delivered", sum.Totals)
	}
	msgs := r.Messages()
	if len(msgs) != 2 || !slices.Equal(msgs[1].To, []string{"b@a.test"}) || msgs[1].From != "alice@example.test" {
		t.Fatalf("run 2 delivered %+v, want b@a.test alone from alice", msgs)
	}
	if string(msgs[0].Data) != string(msgs[1].Data) {
		t.Error("the retried body differs from the first attempt's")
	}
	if left := w.queued(); len(left) != 0 {
		t.Errorf("entry not removed after run 2: %v", left)
	}
}
