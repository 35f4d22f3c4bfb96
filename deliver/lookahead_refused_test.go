package deliver

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/mxflush/mxflush/mta"
)

// Regression: a server that lets the look-ahead MAIL's 250 overtake the
// reply to m1's final dot, which is a 550 and comes next, is read as: dot
// 250 (really MAIL's), MAIL 550 (really the dot's), RCPT 250, DATA 354.
// Every reply has a class its command allows, but the last two cannot
// follow a refused MAIL in order (RFC 5321 §3.3: no transaction, so DATA
// gets 503, never 354): the replies are out of step. m1 must not be
// recorded as delivered on a reply that was not its own, and m2 must not
// be refused with m1's 550 nor ended with a lone dot, which delivers an
// empty message to m2's recipient, whom the server accepted.
func TestSendThenRefusedMailThenDataAccepted(t *testing.T) {
	port := freePort(t, "127.0.0.2")
	f := &fake{reply: func(cmd string) string {
		switch {
		case cmd == ".":
			return "250 2.1.0 Ok" // the look-ahead MAIL's, overtaking the dot's
		case strings.HasPrefix(cmd, "MAIL") && strings.Contains(cmd, "SIZE=5"):
			return "550 5.7.1 Message content rejected" // the dot's, read for MAIL
		}
		return "" // RCPT 250, DATA 354
	}}
	startFake(t, "127.0.0.2", port, f)
	s := dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
	m2 := text("m2.\n") // 5 octets as sent: SIZE=5 tells its MAIL from m1's
	m2msg := message("alice@a.test", []string{"m2@b.test"}, m2, 4)
	next := func() (Message, bool) { return m2msg, true }
	rs, err := s.SendThen(context.Background(), message("alice@a.test", []string{"m1@b.test"}, text("m1\n"), 2), next)
	if err == nil {
		if rs[0].Err == nil {
			t.Errorf("m1 recorded as delivered on %q, a reply that was not its own", rs[0].Reply)
		}
		rs2, _ := s.Send(context.Background(), m2msg)
		if e := (*mta.Error)(nil); errors.As(rs2[0].Err, &e) && e.Permanent {
			t.Errorf("m2 refused permanently with %q, the reply to m1's final dot", rs2[0].Reply)
		}
	} else if le := lostError(t, err); !le.Err.OutOfOrder || le.Safe {
		t.Errorf("lost session %v (Safe %v), want OutOfOrder, not safe (m1's dot went out)", le.Err, le.Safe)
	}
	s.Close()
	if b := f.bodies(); !slices.Equal(b, []string{"m1\r\n"}) {
		t.Errorf("bodies %q, want m1's only (an empty one is a message delivered to m2@b.test)", b)
	}
}
