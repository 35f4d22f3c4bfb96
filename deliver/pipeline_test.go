package deliver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// A refused MAIL fails every recipient with its own error, whatever the
// RCPTs and DATA of a pipelined group got (503 here, RFC 2920 §3.1); no
// body goes out, no RSET is needed, and the next Send works. A 530 defers
// as a configuration error (mta.Error.Config) instead of failing.
func TestSendMailRefused(t *testing.T) {
	tests := []struct {
		name, mail string
		perm       bool
		code       int
		status     string
		config     bool
	}{
		{"550", "550 5.7.1 sender rejected", true, 550, "5.7.1", false},
		{"530", "530 5.7.0 Authentication required", false, 0, "4.7.0", true},
	}
	mail := "MAIL FROM:<alice@a.test> BODY=8BITMIME SIZE=3"
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				port := freePort(t, "127.0.0.2")
				mails := 0
				f := &fake{ehlo: m.ehlo, reply: func(cmd string) string {
					switch {
					case strings.HasPrefix(cmd, "MAIL"):
						if mails++; mails == 1 {
							return tc.mail
						}
					case mails == 1 && strings.HasPrefix(cmd, "RCPT"):
						return "503 5.5.1 Error: need MAIL command"
					case mails == 1 && cmd == "DATA":
						return "503 5.5.1 Error: need RCPT command"
					}
					return ""
				}}
				startFake(t, "127.0.0.2", port, f)
				s := m.dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
				rs, err := s.Send(context.Background(), message("alice@a.test", []string{"a@b.test", "b@b.test"}, text("1\n"), 2))
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range rs {
					e := asError(t, r)
					if e.Command != "MAIL FROM" || e.Permanent != tc.perm || e.Code != tc.code || e.Status != tc.status ||
						e.Config != tc.config || !strings.Contains(r.Reply, tc.mail) {
						t.Errorf("%s: %+v (reply %q), want the MAIL error %q", r.Rcpt, e, r.Reply, tc.mail)
					}
				}
				rs, err = s.Send(context.Background(), message("alice@a.test", []string{"c@b.test"}, text("2\n"), 2))
				if err != nil || rs[0].Err != nil {
					t.Fatalf("next Send: %v %v", err, rs)
				}
				s.Close()
				wantTranscript(t, f, slices.Concat([]string{"EHLO relay.a.test", mail},
					m.pick(nil, slices.Concat(rcptLines("a@b.test", "b@b.test"), []string{"DATA"})),
					[]string{mail, "RCPT TO:<c@b.test>", "DATA", "QUIT"}))
				if b := f.bodies(); !slices.Equal(b, []string{"2\r\n"}) {
					t.Errorf("bodies %q, want only the second message", b)
				}
			})
		})
	}
}

// DATA refused after accepted RCPTs: every accepted recipient gets the
// DATA error, RSET ends the transaction, and the next Send works.
func TestSendDataRefusedTranscript(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		port := freePort(t, "127.0.0.2")
		datas := 0
		f := &fake{ehlo: m.ehlo, reply: func(cmd string) string {
			if cmd == "DATA" {
				if datas++; datas == 1 {
					return "554 5.7.1 no DATA for you"
				}
			}
			return ""
		}}
		startFake(t, "127.0.0.2", port, f)
		s := m.dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
		rs, err := s.Send(context.Background(), message("alice@a.test", []string{"a@b.test", "b@b.test"}, text("1\n"), 2))
		if err != nil {
			t.Fatal(err)
		}
		wantOutcomes(t, rs, map[string]string{"a@b.test": "perm 554", "b@b.test": "perm 554"})
		for _, r := range rs {
			if e := asError(t, r); e.Command != "DATA" || r.Reply != "554 5.7.1 no DATA for you" {
				t.Errorf("%s: %+v %q, want the DATA error", r.Rcpt, e, r.Reply)
			}
		}
		rs, err = s.Send(context.Background(), message("alice@a.test", []string{"c@b.test"}, text("2\n"), 2))
		if err != nil || rs[0].Err != nil {
			t.Fatalf("next Send: %v %v", err, rs)
		}
		s.Close()
		mail := "MAIL FROM:<alice@a.test> BODY=8BITMIME SIZE=3"
		wantTranscript(t, f, slices.Concat([]string{"EHLO relay.a.test", mail}, rcptLines("a@b.test", "b@b.test"),
			[]string{"DATA", "RSET", mail, "RCPT TO:<c@b.test>", "DATA", "QUIT"}))
		if b := f.bodies(); !slices.Equal(b, []string{"2\r\n"}) {
			t.Errorf("bodies %q, want only the second message", b)
		}
	})
}

// A 421 to the second RCPT (RFC 5321 §3.8), then a close: the session is
// lost, safe to resend (no final dot went out), every recipient deferred
// with the 421, and the session refuses the next Send.
func TestSend421MidEnvelope(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		port := freePort(t, "127.0.0.2")
		f := &fake{ehlo: m.ehlo, reply: func(cmd string) string {
			if cmd == "RCPT TO:<b@b.test>" {
				return "421 4.3.0 mx.b.test closing\r\n<close>"
			}
			return ""
		}}
		startFake(t, "127.0.0.2", port, f)
		s := m.dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
		to := []string{"a@b.test", "b@b.test", "c@b.test"}
		rs, err := s.Send(context.Background(), message("alice@a.test", to, text("x\n"), 2))
		le := lostError(t, err)
		if !le.Safe || le.Err.Permanent || le.Err.Code != 421 || le.Err.Command != "RCPT TO" {
			t.Errorf("lost %+v %+v, want safe, temporary, 421 at RCPT TO", le, le.Err)
		}
		wantOutcomes(t, rs, map[string]string{"a@b.test": "temp 421", "b@b.test": "temp 421", "c@b.test": "temp 421"})
		if rs2, err2 := s.Send(context.Background(), message("alice@a.test", to[:1], text("x\n"), 2)); !errors.Is(err2, le) || rs2[0].Err == nil {
			t.Errorf("Send after loss: %v %v", err2, rs2)
		}
		wantTranscript(t, f, slices.Concat([]string{"EHLO relay.a.test", "MAIL FROM:<alice@a.test> BODY=8BITMIME SIZE=3"},
			rcptLines("a@b.test", "b@b.test")))
		if b := f.bodies(); len(b) != 0 {
			t.Errorf("bodies %q, want none", b)
		}
	})
}

// Every recipient goes in one transaction, in order, however many there
// are: with PIPELINING they are written in groups of at most maxGroup
// RCPTs (the write boundaries are not visible here; order and results
// are).
func TestSendManyRcpts(t *testing.T) {
	for _, n := range []int{1, maxGroup, maxGroup + 1, 250} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				port := freePort(t, "127.0.0.2")
				f := &fake{ehlo: m.ehlo}
				startFake(t, "127.0.0.2", port, f)
				s := m.dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
				to := make([]string, n)
				for i := range to {
					to[i] = fmt.Sprintf("r%03d@b.test", i)
				}
				src := text("Subject: many\n\nhi\n")
				rs, err := s.Send(context.Background(), message("alice@a.test", to, src, 18))
				if err != nil {
					t.Fatal(err)
				}
				for i, r := range rs {
					if r.Rcpt != to[i] || r.Err != nil || r.Reply != "250 2.0.0 queued as F1" {
						t.Fatalf("result %d: %+v, want %s delivered", i, r, to[i])
					}
				}
				s.Close()
				wantTranscript(t, f, slices.Concat([]string{"EHLO relay.a.test", "MAIL FROM:<alice@a.test> BODY=8BITMIME SIZE=21"},
					rcptLines(to...), []string{"DATA", "QUIT"}))
				if b := f.bodies(); !slices.Equal(b, []string{"Subject: many\r\n\r\nhi\r\n"}) || src.opens != 1 {
					t.Errorf("bodies %q, opens %d: want one body", b, src.opens)
				}
			})
		})
	}
}

// One pipelined group with a 550, a 452 and a 250: the 550 fails, the 250
// gets the message in the first transaction, and the 452 one (RFC 5321
// §4.5.3.1.10) goes in a second; every RCPT of the group was sent.
func TestSendPipelinedMixed(t *testing.T) {
	port := freePort(t, "127.0.0.2")
	full, dots := 0, 0
	f := &fake{reply: func(cmd string) string {
		switch cmd {
		case "RCPT TO:<gone@b.test>":
			return "550 5.1.1 No such user"
		case "RCPT TO:<full@b.test>":
			if full++; full == 1 {
				return "452 4.5.3 Too many recipients"
			}
		case ".":
			dots++
			return fmt.Sprintf("250 2.0.0 queued as Q%d", dots)
		}
		return ""
	}}
	startFake(t, "127.0.0.2", port, f)
	s := mode{"pipelining", nil, true}.dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
	src := text("x\n")
	rs, err := s.Send(context.Background(), message("alice@a.test", []string{"gone@b.test", "full@b.test", "ok@b.test"}, src, 2))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	wantOutcomes(t, rs, map[string]string{"gone@b.test": "perm 550", "full@b.test": "sent", "ok@b.test": "sent"})
	if e := asError(t, rs[0]); e.Command != "RCPT TO" || e.Status != "5.1.1" {
		t.Errorf("gone: %+v", e)
	}
	if rs[1].Reply != "250 2.0.0 queued as Q2" || rs[2].Reply != "250 2.0.0 queued as Q1" {
		t.Errorf("replies full %q, ok %q: want full in the second transaction, ok in the first", rs[1].Reply, rs[2].Reply)
	}
	mail := "MAIL FROM:<alice@a.test> BODY=8BITMIME SIZE=3"
	wantTranscript(t, f, slices.Concat([]string{"EHLO relay.a.test", mail},
		rcptLines("gone@b.test", "full@b.test", "ok@b.test"), []string{"DATA", mail, "RCPT TO:<full@b.test>", "DATA", "QUIT"}))
	if b := f.bodies(); len(b) != 2 || src.opens != 1 { // measured once, kept for both
		t.Errorf("bodies %q, opens %d: want two transactions", b, src.opens)
	}
	src.check(t)
}

// A multi-line reply to RCPT: the enhanced status code comes from the
// first line and is left out of every line that repeats it (RFC 2034 §4);
// the lines are joined with "; ".
func TestSendMultilineRcptReply(t *testing.T) {
	tests := []struct{ reply, status, msg string }{
		{"550-5.1.1 first\r\n550 5.1.1 second", "5.1.1", "first; second"},
		{"550-5.1.1 first\r\n550 second", "5.1.1", "first; second"},
		{"550-5.1.1 first\r\n550 5.7.1 second", "5.1.1", "first; 5.7.1 second"},
		{"550-first\r\n550 second", "5.0.0", "first; second"},
		{"450-4.2.1 busy\r\n450-4.2.1 try\r\n450 4.2.1 later", "4.2.1", "busy; try; later"},
	}
	for i, tc := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				port := freePort(t, "127.0.0.2")
				f := &fake{ehlo: m.ehlo, reply: func(cmd string) string {
					if cmd == "RCPT TO:<x@b.test>" {
						return tc.reply
					}
					return ""
				}}
				startFake(t, "127.0.0.2", port, f)
				s := m.dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
				rs, err := s.Send(context.Background(), message("alice@a.test", []string{"x@b.test", "ok@b.test"}, text("x\n"), 2))
				if err != nil {
					t.Fatal(err)
				}
				code := tc.reply[:3]
				e := asError(t, rs[0])
				if want := code + " " + tc.status + " " + tc.msg; e.Status != tc.status || e.Msg != tc.msg ||
					e.Reply() != want || rs[0].Reply != want || e.Permanent != (code[0] == '5') {
					t.Errorf("%q: %+v, Reply %q, want %q", tc.reply, e, rs[0].Reply, want)
				}
				if rs[1].Err != nil {
					t.Errorf("ok: %v", rs[1].Err)
				}
			})
		})
	}
}
