package batch

import (
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/spool"
)

// scriptWorld is a world whose a.test MX (127.0.0.2) is s, and whose
// ok.test MX (127.0.0.3) is a go-smtp receiver.
func scriptWorld(t *testing.T, s *scripted) *world {
	t.Helper()
	w := newWorld(t, []string{"127.0.0.2", "127.0.0.3"}, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2",
		"ok.test. MX 10 mx.ok.test.", "mx.ok.test. A 127.0.0.3")
	w.script("127.0.0.2", s.handle)
	w.receive("127.0.0.3", testnet.SMTPOptions{})
	return w
}

// What the worker does when a session fails under it: reconnect and
// resend what the receiver cannot have, defer what it may have (RFC 5321
// §4.1.1.4: no reply to the final dot), defer the rest when reconnecting
// fails, split on 452, and fail the recipients of a server that refuses
// the session with 521. (deliver's lost_test.go and dial_test.go check the
// one session's side: which results are unresolved, and that no EHLO
// follows a 521.)
func TestSessionFaults(t *testing.T) {
	const (
		clean    = "clean"
		deferred = "deferred"
		failed   = "failed"
	)
	tests := []struct {
		name      string
		msgs      int
		rcpts     int
		hook      func(session int, cmd string, s *scriptedState) (string, bool)
		outcome   string // clean: all delivered; deferred: some deferred, none failed; failed: some failed
		sessions  int
		delivered int // messages accepted by the scripted receiver
		deferred  int // files left in cur/
	}{
		{
			// The connection drops at the third message's DATA, before any
			// of it was sent: reconnect, resend it, go on.
			name: "dropped at DATA, reconnect and resend", msgs: 5, rcpts: 1,
			hook: func(session int, cmd string, s *scriptedState) (string, bool) {
				return "", session == 1 && cmd == "DATA" && s.Delivered == 2
			},
			outcome: clean, sessions: 2, delivered: 5,
		},
		{
			// The connection drops after the third message's final dot, with
			// no reply: the receiver may have it (RFC 5321 §4.1.1.4), so it
			// is deferred, not resent; the rest go over a new session.
			name: "dropped after the final dot, deferred", msgs: 5, rcpts: 1,
			hook: func(session int, cmd string, s *scriptedState) (string, bool) {
				return "", session == 1 && cmd == "end" && s.Delivered == 2
			},
			outcome: deferred, sessions: 2, delivered: 4, deferred: 1,
		},
		{
			// The server closes with 421 right after a message is accepted.
			name: "421 on a reused connection", msgs: 2, rcpts: 1,
			hook: func(session int, cmd string, s *scriptedState) (string, bool) {
				if session == 1 && cmd == "MAIL" && s.Delivered == 1 {
					return "421 4.4.2 closing: idle timeout", false
				}
				return "", false
			},
			outcome: clean, sessions: 2, delivered: 2,
		},
		{
			// Reconnecting fails: what is still unsent is deferred, not lost.
			name: "dropped, reconnect refused", msgs: 5, rcpts: 1,
			hook: func(session int, cmd string, s *scriptedState) (string, bool) {
				if session > 1 && cmd == "greeting" {
					return "421 4.3.2 too busy", false
				}
				return "", session == 1 && cmd == "DATA" && s.Delivered == 2
			},
			outcome: deferred, sessions: 2, delivered: 2, deferred: 3,
		},
		{
			// 452 after two RCPTs: the rest go in further transactions on the same session.
			name: "452 too many recipients", msgs: 1, rcpts: 5,
			hook: func(session int, cmd string, s *scriptedState) (string, bool) {
				if cmd == "RCPT" && len(s.Rcpts) >= 2 {
					return "452 4.5.3 Too many recipients", false
				}
				return "", false
			},
			outcome: clean, sessions: 1, delivered: 3,
		},
		{
			// A 452 split, then the connection drops at the second
			// transaction's DATA: only the recipients left without a result
			// are sent again on the new session; the first transaction's
			// already have the message.
			name: "452 split, dropped in the second transaction", msgs: 1, rcpts: 5,
			hook: func(session int, cmd string, s *scriptedState) (string, bool) {
				if cmd == "RCPT" && len(s.Rcpts) >= 2 {
					return "452 4.5.3 Too many recipients", false
				}
				return "", session == 1 && cmd == "DATA" && s.Delivered == 1
			},
			outcome: clean, sessions: 2, delivered: 3,
		},
		{
			// A multi-line greeting ending in 521: no EHLO, recipients fail.
			name: "multi-line greeting ending in 521", msgs: 1, rcpts: 1,
			hook: func(session int, cmd string, s *scriptedState) (string, bool) {
				if cmd == "greeting" {
					return "220-scripted.test ESMTP\r\n521 5.7.1 sending host is on a blocklist", false
				}
				return "", false
			},
			outcome: failed, sessions: 1, delivered: 0,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &scripted{hook: tc.hook}
			w := scriptWorld(t, s)
			w.cfg.NoBounce = true // the sender's domain is not in this world
			for i := 0; i < tc.msgs; i++ {
				var rcpts []string
				for j := 0; j < tc.rcpts; j++ {
					rcpts = append(rcpts, fmt.Sprintf("u%d-%d@a.test", i, j))
				}
				w.putMsg(fmt.Sprintf("1732880000.M%d.P1.test", i), "alice@example.test", fmt.Sprint(i), rcpts...)
			}
			sum := w.run()
			tot := sum.Totals
			switch {
			case tc.outcome == clean && (tot.Deferred != 0 || tot.Failed != 0),
				tc.outcome == deferred && (tot.Deferred == 0 || tot.Failed != 0),
				tc.outcome == failed && tot.Failed == 0:
				t.Errorf("totals %+v, want the run %s", tot, tc.outcome)
			}
			if len(sum.Problems) != 0 {
				t.Errorf("spool problems %+v", sum.Problems)
			}
			if s.count() != tc.sessions {
				t.Errorf("%d sessions, want %d", s.count(), tc.sessions)
			}
			got := s.msgs()
			if len(got) != tc.delivered {
				t.Errorf("%d messages accepted, want %d", len(got), tc.delivered)
			}
			var all []string
			for _, m := range got {
				all = append(all, m.To...)
			}
			slices.Sort(all)
			if len(slices.Compact(all)) != len(all) {
				t.Errorf("a recipient got a duplicate: %v", all)
			}
			if tc.delivered > 0 && len(all) != tc.delivered*tc.rcpts && tc.rcpts == 1 {
				t.Errorf("recipients delivered %v", all)
			}
			if tc.rcpts > 1 && tc.outcome == clean && len(all) != tc.rcpts {
				t.Errorf("recipients delivered %v, want all %d", all, tc.rcpts)
			}
			if n := len(w.files(spool.QueueCur)); n != tc.deferred {
				t.Errorf("%d files deferred in cur/, want %d", n, tc.deferred)
			}
			if tc.outcome == failed && w.countEvents(Bounced, "521") != tc.rcpts*tc.msgs {
				t.Errorf("the recipients did not fail with the 521: %+v", w.outcomes("u0-0@a.test"))
			}
		})
	}
}

// A receiver that never greets is given up on after the greeting timeout
// (deliver's TestDialGreetingStall checks the timeout itself); the other
// domains go through in the same run, and the stalled domain's message is
// deferred.
func TestStalledReceiverDefersOnlyItsDomain(t *testing.T) {
	w := newWorld(t, []string{"127.0.0.2", "127.0.0.3"}, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2",
		"ok.test. MX 10 mx.ok.test.", "mx.ok.test. A 127.0.0.3")
	w.script("127.0.0.2", stall)
	ok := w.receive("127.0.0.3", testnet.SMTPOptions{})
	w.putMsg("1.stalled", "alice@example.test", "stalled", "bob@a.test")
	w.putMsg("2.fine", "alice@example.test", "fine", "carol@ok.test")
	w.cfg.Deliver.GreetingTimeout, w.cfg.Deliver.CommandTimeout = 500*time.Millisecond, 500*time.Millisecond
	sum := w.run()
	if sum.Totals.Delivered != 1 || sum.Totals.Deferred != 1 || sum.Totals.Failed != 0 {
		t.Errorf("totals %+v, want one delivered and one deferred", sum.Totals)
	}
	if len(ok.Messages()) != 1 || !slices.Equal(w.files(spool.QueueCur), []string{"1.stalled"}) {
		t.Errorf("ok.test got %d messages and cur/ holds %v: want 1 and the stalled domain's message", len(ok.Messages()), w.files(spool.QueueCur))
	}
}

// stall accepts a connection and never says anything: no banner.
func stall(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	io.Copy(io.Discard, c)
}

// A message split by 452 (RFC 5321 §4.5.3.1.10) is journalled transaction
// by transaction: while its second transaction is in flight, the crash
// journal already lists the recipients the first one delivered, so a kill
// at that moment sends only the second transaction's recipients again,
// not the whole message.
func TestJournalEachTransaction(t *testing.T) {
	inSecond, release := make(chan struct{}), make(chan struct{})
	s := &scripted{hook: func(session int, cmd string, st *scriptedState) (string, bool) {
		if cmd == "RCPT" && len(st.Rcpts) >= 2 {
			return "452 4.5.3 Too many recipients", false
		}
		if session == 1 && cmd == "DATA" && st.Delivered == 1 {
			close(inSecond)
			<-release
			return "", true
		}
		return "", false
	}}
	w := scriptWorld(t, s)
	w.cfg.NoBounce = true
	w.putMsg("1.split", "alice@example.test", "split", "r1@a.test", "r2@a.test", "r3@a.test", "r4@a.test")
	done := make(chan error)
	go func() {
		_, err := Run(t.Context(), w.sp, w.cfg)
		done <- err
	}()
	select {
	case <-inSecond:
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("the second transaction never reached DATA")
	}
	j := w.journal()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, rcpt := range []string{"r1@a.test", "r2@a.test"} {
		if !strings.Contains(j, "\t"+rcpt+"\n") {
			t.Errorf("during the second transaction the journal lacks %s, delivered by the first:\n%s", rcpt, j)
		}
	}
}
