package deliver

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/mta"
)

// Postfix at its defaults (smtpd_hard_error_limit = 20) answers 20 refused
// RCPTs and then 421 in place of the next reply, and closes. The replies
// read before the 421 count: the 550s fail their recipients; the accepted
// recipient (its DATA never reached) and those left without a reply are
// unresolved, and a new session delivers to the valid one and fails the
// rest. Resending the whole group instead would meet the same 421 on every
// session, until the message expires. Without PIPELINING each refusal
// counts as it comes: the same outcome.
func TestSendErrorLimit421(t *testing.T) {
	unknown := func(from, n int) []string {
		var to []string
		for i := from; i < from+n; i++ {
			to = append(to, fmt.Sprintf("nobody%d@b.test", i))
		}
		return to
	}
	for _, tc := range []struct {
		name string
		to   []string
		// the recipients left unresolved by the first session, in order
		again []string
	}{
		{
			// 250, 20 x 550, then 421 for DATA.
			name:  "valid first, 20 unknown",
			to:    append([]string{"bob@b.test"}, unknown(0, 20)...),
			again: []string{"bob@b.test"},
		},
		{
			// 10 x 550, 250, 10 x 550, then 421 for the 22nd RCPT: the
			// last two recipients get no reply.
			name:  "valid in the middle, 22 unknown",
			to:    slices.Concat(unknown(0, 10), []string{"bob@b.test"}, unknown(10, 12)),
			again: slices.Concat([]string{"bob@b.test"}, unknown(20, 2)),
		},
	} {
		for _, pipelining := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/pipelining=%v", tc.name, pipelining), func(t *testing.T) {
				srv := &testnet.ErrorLimit{Valid: map[string]bool{"bob@b.test": true}, Pipelining: pipelining}
				port := freePort(t, "127.0.0.2")
				sc := startScript(t, "127.0.0.2", port, srv.Handle)
				hosts := []mta.Host{host("mx.b.test", "127.0.0.2")}

				s := dial(t, opts(port), hosts...)
				if s.pipelining != pipelining {
					t.Fatalf("session pipelining = %v, want %v", s.pipelining, pipelining)
				}
				src := text("Subject: t\n\nhello\n")
				rs, err := s.Send(context.Background(), message("alice@a.test", tc.to, src, 20))
				le := lostError(t, err)
				if !le.Safe || le.Err.Code != 421 {
					t.Fatalf("lost %+v (%+v), want safe after a 421", le, le.Err)
				}
				var again []string
				for _, r := range rs {
					switch {
					case le.Unresolved(r):
						again = append(again, r.Rcpt)
					case outcome(r) != "perm 550":
						t.Errorf("%s: %s (%s), want perm 550 or unresolved", r.Rcpt, outcome(r), r.Reply)
					}
				}
				if !slices.Equal(again, tc.again) {
					t.Fatalf("unresolved %v, want %v", again, tc.again)
				}
				src.check(t)

				// The caller sends the unresolved ones again on a new session.
				s2 := dial(t, opts(port), hosts...)
				rs, err = s2.Send(context.Background(), message("alice@a.test", again, src, 20))
				if err != nil {
					t.Fatalf("second session: %v", err)
				}
				want := map[string]string{}
				for _, a := range again {
					want[a] = "perm 550"
				}
				want["bob@b.test"] = "sent"
				wantOutcomes(t, rs, want)
				src.check(t)

				got := srv.Deliveries()
				if len(got) != 1 || got[0].Session != 2 || !slices.Equal(got[0].To, []string{"bob@b.test"}) {
					t.Errorf("deliveries %+v, want one, to bob@b.test, on the second session", got)
				}
				if sc.Sessions() != 2 {
					t.Errorf("%d sessions, want 2", sc.Sessions())
				}
			})
		}
	}
}

// A refused MAIL before the 421: Postfix answers each pipelined RCPT behind
// it with 503, counts those as errors too, and says 421 after 19 of them.
// The MAIL refusal was read in step, so it fails every recipient, as it
// does when the whole group is answered (RFC 2920 §3.1); resending would
// meet the same refusal and the same 421.
func TestSendErrorLimit421AfterRefusedMail(t *testing.T) {
	port := freePort(t, "127.0.0.2")
	rcpts := 0
	f := &fake{reply: func(cmd string) string {
		switch {
		case strings.HasPrefix(cmd, "MAIL"):
			return "553 5.7.1 <alice@a.test>: Sender address rejected: not owned by user"
		case strings.HasPrefix(cmd, "RCPT"):
			if rcpts++; rcpts == 20 {
				return "421 4.7.0 fake.b.test Error: too many errors\r\n<close>"
			}
			return "503 5.5.1 Error: need MAIL command"
		}
		return ""
	}}
	startFake(t, "127.0.0.2", port, f)
	s := dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
	var to []string
	for i := range 25 {
		to = append(to, fmt.Sprintf("u%d@b.test", i))
	}
	rs, err := s.Send(context.Background(), message("alice@a.test", to, text("x\n"), 2))
	if le := lostError(t, err); !le.Safe || le.Err.Code != 421 {
		t.Fatalf("lost %+v (%+v), want safe after a 421", le, le.Err)
	}
	for _, r := range rs {
		if outcome(r) != "perm 553" {
			t.Errorf("%s: %s, want perm 553 (the refused MAIL)", r.Rcpt, outcome(r))
		}
	}
}
