package batch

import (
	"slices"
	"testing"

	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/spool"
)

// Only{IDs} delivers just those messages, now, even one whose next attempt
// is later (postqueue -i); the rest of the spool is left as it was, and
// counted as not selected.
func TestRunOnlySelectedIDs(t *testing.T) {
	w := newWorld(t, []string{"127.0.0.2"}, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	r := w.receive("127.0.0.2", testnet.SMTPOptions{})
	w.put("new", "1.one", "X-Envelope-Next-Attempt: 2099-01-01T00:00:00Z\n"+envelope("<alice@example.test>", "bob@a.test")+"Subject: one\n\nhi\n")
	w.putMsg("2.two", "alice@example.test", "two", "carol@a.test")
	w.cfg.Only = &Selection{IDs: []string{"1.one"}}
	sum := w.run()
	if got := r.Messages(); len(got) != 1 || !slices.Equal(got[0].To, []string{"bob@a.test"}) {
		t.Errorf("received %v, want only the message named", got)
	}
	if sum.NotSelected != 1 || sum.Totals.Delivered != 1 {
		t.Errorf("not selected %d, totals %+v: want 1 and 1 delivered", sum.NotSelected, sum.Totals)
	}
	if m := w.load(spool.QueueNew, "2.two"); m.Attempts != 0 {
		t.Errorf("the other message was tried: %d attempts", m.Attempts)
	}
	if left := w.queued(); !slices.Equal(left, []string{"2.two"}) {
		t.Errorf("queued %v, want the other message alone", left)
	}
}
