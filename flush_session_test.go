package main

import (
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mxflush/mxflush/internal/testnet"
)

// scriptWorld is a world whose a.test MX is a scripted receiver.
func scriptWorld(t *testing.T, s *scripted) *world {
	t.Helper()
	w := newWorld(t, []string{"127.0.0.3"}, nil, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2",
		"ok.test. MX 10 mx.ok.test.", "mx.ok.test. A 127.0.0.3")
	sc, err := testnet.StartScript("127.0.0.2:"+strconv.Itoa(w.port), s.handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	return w
}

func TestFlushSessionFaults(t *testing.T) {
	tests := []struct {
		name      string
		msgs      int
		rcpts     int
		hook      func(session int, cmd string, s *scriptedState) (string, bool)
		code      int
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
			code: 0, sessions: 2, delivered: 5,
		},
		{
			// The connection drops after the third message's final dot, with
			// no reply: the receiver may have it (RFC 5321 §4.1.1.4), so it
			// is deferred, not resent; the rest go over a new session.
			name: "dropped after the final dot, deferred", msgs: 5, rcpts: 1,
			hook: func(session int, cmd string, s *scriptedState) (string, bool) {
				return "", session == 1 && cmd == "end" && s.Delivered == 2
			},
			code: 75, sessions: 2, delivered: 4, deferred: 1,
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
			code: 0, sessions: 2, delivered: 2,
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
			code: 75, sessions: 2, delivered: 2, deferred: 3,
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
			code: 0, sessions: 1, delivered: 3,
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
			code: 0, sessions: 2, delivered: 3,
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
			code: 69, sessions: 1, delivered: 0,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &scripted{hook: tc.hook}
			w := scriptWorld(t, s)
			for i := 0; i < tc.msgs; i++ {
				var rcpts []string
				for j := 0; j < tc.rcpts; j++ {
					rcpts = append(rcpts, fmt.Sprintf("u%d-%d@a.test", i, j))
				}
				w.enqueue("alice@example.test", msg(fmt.Sprint(i)), rcpts...)
			}
			code, out, errs := w.flush()
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s\n%s", code, tc.code, out, errs)
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
			if tc.rcpts > 1 && tc.code == 0 && len(all) != tc.rcpts {
				t.Errorf("recipients delivered %v, want all %d", all, tc.rcpts)
			}
			if n := len(w.files("cur")); n != tc.deferred {
				t.Errorf("%d files deferred in cur/, want %d", n, tc.deferred)
			}
			if tc.code == 69 && !strings.Contains(errs, "521") {
				t.Errorf("the 521 text is not in the log:\n%s", errs)
			}
		})
	}
}

// Stalled servers: a receiver that never greets is given up on after the
// timeout; the other domains go through in the same run.
func TestFlushStalledReceiver(t *testing.T) {
	w := newWorld(t, []string{"127.0.0.3"}, nil, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2",
		"ok.test. MX 10 mx.ok.test.", "mx.ok.test. A 127.0.0.3")
	sc, err := testnet.StartScript("127.0.0.2:"+strconv.Itoa(w.port), stall)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	w.enqueue("alice@example.test", msg("stalled"), "bob@a.test")
	w.enqueue("alice@example.test", msg("fine"), "carol@ok.test")
	code, out, errs := w.flush("--command-timeout", "500ms")
	if code != 75 {
		t.Errorf("exit %d, want 75\n%s\n%s", code, out, errs)
	}
	if len(w.recv["127.0.0.3"].Messages()) != 1 || len(w.files("cur")) != 1 {
		t.Errorf("ok.test got %d messages and cur/ holds %d: want 1 and 1", len(w.recv["127.0.0.3"].Messages()), len(w.files("cur")))
	}
}

// stall accepts a connection and never says anything: no banner.
func stall(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	io.Copy(io.Discard, c)
}
