package batch

import (
	"fmt"
	"slices"
	"testing"

	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/spool"
)

// A receiver that acts as Postfix at its defaults (smtpd_hard_error_limit =
// 20): for a message to one valid and 20 unknown recipients it answers 250,
// 20 x 550 and then 421 in place of DATA's reply, and closes. One run
// delivers the valid recipient once, on a second session, and bounces the 20
// (a DSN goes to the sender); nothing is left deferred, so the message does
// not go round run after run until it expires. With and without PIPELINING,
// and with a second such message, whose group goes out behind the first
// one's final dot (the look-ahead) and meets the 421 there.
func TestErrorLimit421BouncesAndDeliversOnce(t *testing.T) {
	for _, tc := range []struct {
		pipelining bool
		msgs       int
		// connections to a.test: each message meets the 421 once and is
		// sent again on a new session; pipelined, the second message's
		// group first went out behind the first's final dot, met the 421
		// there and was sent again whole, as a look-ahead that never got
		// a DATA accepted.
		sessions int
	}{{true, 1, 2}, {false, 1, 2}, {true, 2, 4}, {false, 2, 3}} {
		t.Run(fmt.Sprintf("pipelining=%v/messages=%d", tc.pipelining, tc.msgs), func(t *testing.T) {
			n := tc.msgs
			w := newWorld(t, []string{"127.0.0.2", "127.0.0.3"}, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2",
				"example.test. MX 10 mx.example.test.", "mx.example.test. A 127.0.0.3")
			srv := &testnet.ErrorLimit{Valid: map[string]bool{"bob@a.test": true}, Pipelining: tc.pipelining}
			sc := w.script("127.0.0.2", srv.Handle)
			senders := w.receive("127.0.0.3", testnet.SMTPOptions{})
			rcpts := []string{"bob@a.test"}
			for i := range 20 {
				rcpts = append(rcpts, fmt.Sprintf("nobody%d@a.test", i))
			}
			for i := range n {
				w.putMsg(fmt.Sprintf("1732880000.M%d.P1.test", i), "alice@example.test", fmt.Sprint("error limit ", i), rcpts...)
			}

			sum := w.run()
			if sc.Sessions() != tc.sessions {
				t.Errorf("%d sessions to a.test, want %d", sc.Sessions(), tc.sessions)
			}
			got := srv.Deliveries()
			var bodies []string
			for _, d := range got {
				if !slices.Equal(d.To, []string{"bob@a.test"}) {
					t.Errorf("a delivery to %v, want to bob@a.test alone", d.To)
				}
				bodies = append(bodies, d.Data)
			}
			if slices.Sort(bodies); len(got) != n || len(slices.Compact(bodies)) != n {
				t.Errorf("%d deliveries, %d different: want each of the %d messages once", len(got), len(bodies), n)
			}
			if row := rows(t, sum)["a.test"]; row.Delivered != n || row.Failed != 20*n || row.Deferred != 0 {
				t.Errorf("a.test row %+v, want %d delivered, %d failed, 0 deferred", row, n, 20*n)
			}
			if sum.Totals.Deferred != 0 || sum.Bounces != n {
				t.Errorf("totals %+v, %d bounces: want nothing deferred, one DSN per message", sum.Totals, sum.Bounces)
			}
			if sent, bounced := len(w.outcomes("bob@a.test")), w.countEvents(Bounced, "550 5.1.1 <nobody"); sent != n || bounced != 20*n {
				t.Errorf("events: bob %d, bounced with the 550 %d; want bob sent and the 20 bounced per message", sent, bounced)
			}
			for _, e := range w.outcomes("bob@a.test") {
				if e.Status != Sent {
					t.Errorf("bob@a.test: %+v, want sent", e)
				}
			}
			if got := senders.Messages(); len(got) != n {
				t.Errorf("%d DSNs to the sender, want %d", len(got), n)
			}
			if cur := w.files(spool.QueueCur); len(cur) != 0 {
				t.Errorf("cur/ holds %v, want nothing deferred", cur)
			}
		})
	}
}
