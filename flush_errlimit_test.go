package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mxflush/mxflush/internal/testnet"
)

// A receiver that acts as Postfix at its defaults (smtpd_hard_error_limit =
// 20): for a message to one valid and 20 unknown recipients it answers 250,
// 20 x 550 and then 421 in place of DATA's reply, and closes. One flush
// delivers the valid recipient once, on a second session, and bounces the 20
// (a DSN goes to the sender); nothing is left deferred, so the message does
// not go round run after run until it expires. With and without PIPELINING.
func TestFlushErrorLimit421(t *testing.T) {
	for _, pipelining := range []bool{true, false} {
		t.Run("pipelining="+strconv.FormatBool(pipelining), func(t *testing.T) {
			w := newWorld(t, []string{"127.0.0.3"}, nil, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2",
				"example.test. MX 10 mx.example.test.", "mx.example.test. A 127.0.0.3")
			srv := &testnet.ErrorLimit{Valid: map[string]bool{"bob@a.test": true}, Pipelining: pipelining}
			sc, err := testnet.StartScript("127.0.0.2:"+strconv.Itoa(w.port), srv.Handle)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sc.Close() })
			rcpts := []string{"bob@a.test"}
			for i := range 20 {
				rcpts = append(rcpts, fmt.Sprintf("nobody%d@a.test", i))
			}
			w.enqueue("alice@example.test", msg("error limit"), rcpts...)

			code, out, errs := w.flush("--json")
			if code != 69 { // some recipients failed permanently, none deferred
				t.Errorf("exit %d, want 69\n%s\n%s", code, out, errs)
			}
			got := srv.Deliveries()
			if len(got) != 1 || !slices.Equal(got[0].To, []string{"bob@a.test"}) {
				t.Errorf("deliveries %+v, want one, to bob@a.test", got)
			}
			if row := summaryRows(t, out)["a.test"]; row.Delivered != 1 || row.Failed != 20 || row.Deferred != 0 {
				t.Errorf("a.test row %+v, want 1 delivered, 20 failed, 0 deferred", row)
			}
			if !strings.Contains(errs, "to=<bob@a.test>") || strings.Count(errs, "status=bounced (550 5.1.1 <nobody") != 20 {
				t.Errorf("the log does not show bob sent and the 20 bounced:\n%s", errs)
			}
			if sc.Sessions() != 2 {
				t.Errorf("%d sessions to a.test, want 2", sc.Sessions())
			}
			if n := len(w.recv["127.0.0.3"].Messages()); n != 1 {
				t.Errorf("%d DSNs to the sender, want 1", n)
			}
			if cur := w.files("cur"); len(cur) != 0 {
				t.Errorf("cur/ holds %v, want nothing deferred", cur)
			}
		})
	}
}
