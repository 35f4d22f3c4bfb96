package deliver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/mta"
)

// HELO fallback: EHLO refused with 500: HELO, then no extension is used;
// 8-bit and UTF-8 messages fail locally (no 8BITMIME, no SMTPUTF8).
func TestSendHELOFallback(t *testing.T) {
	port := freePort(t, "127.0.0.2")
	f := &fake{ehlo: []string{"500 5.5.1 Command unrecognized\r\n"}}
	startFake(t, "127.0.0.2", port, f)
	s := dial(t, opts(port), host("legacy.b.test", "127.0.0.2"))
	rs, err := s.Send(context.Background(), message("alice@a.test", []string{"bob@b.test"}, text("Subject: c06\n\nplain\n"), 20))
	if err != nil {
		t.Fatal(err)
	}
	wantOutcomes(t, rs, map[string]string{"bob@b.test": "sent"})
	eight := text("Subject: c25\n\ncaf\xc3\xa9\n")
	rs, _ = s.Send(context.Background(), message("alice@a.test", []string{"bob@b.test"}, eight, 20))
	wantOutcomes(t, rs, map[string]string{"bob@b.test": "perm 5.6.3"})
	eight.check(t)
	rs, _ = s.Send(context.Background(), message("alice@a.test", []string{"jos\xc3\xa9@b.test"}, text("x\n"), 2))
	wantOutcomes(t, rs, map[string]string{"jos\xc3\xa9@b.test": "perm 5.6.7"})
	s.Close()
	want := []string{"EHLO relay.a.test", "HELO relay.a.test", "MAIL FROM:<alice@a.test>", "RCPT TO:<bob@b.test>", "DATA", "QUIT"}
	if got := f.commands(); !slices.Equal(got, want) {
		t.Errorf("transcript %q, want %q", got, want)
	}
}

// HELO fallback on a new connection: the server refuses EHLO with 500 and
// closes the connection before HELO can follow. The same address is dialled
// again, starting with HELO, and the message goes out without extensions,
// under the policies that allow cleartext; a policy that needs TLS defers
// instead.
func TestSendHELOAfterClose(t *testing.T) {
	tests := []struct {
		mode     TLSMode
		want     []string
		sessions int
	}{
		{TLSNone, []string{"EHLO relay.a.test", "HELO relay.a.test", "MAIL FROM:<alice@a.test>", "RCPT TO:<bob@b.test>", "DATA", "QUIT"}, 2},
		{TLSMay, []string{"EHLO relay.a.test", "HELO relay.a.test", "MAIL FROM:<alice@a.test>", "RCPT TO:<bob@b.test>", "DATA", "QUIT"}, 2},
		{TLSEncrypt, []string{"EHLO relay.a.test"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.mode.String(), func(t *testing.T) {
			port := freePort(t, "127.0.0.2")
			f := &fake{reply: func(cmd string) string {
				if strings.HasPrefix(cmd, "EHLO") {
					return "500 5.5.1 Command unrecognized\r\n<close>"
				}
				return ""
			}}
			sc := startFake(t, "127.0.0.2", port, f)
			o := opts(port)
			o.TLS.Mode = tc.mode
			s, err := Dial(context.Background(), []mta.Host{host("legacy.b.test", "127.0.0.2")}, o)
			if tc.mode == TLSEncrypt {
				var e *mta.Error
				if !errors.As(err, &e) || e.Permanent {
					t.Fatalf("Dial: %v, want a temporary error", err)
				}
			} else {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				rs, err := s.Send(context.Background(), message("alice@a.test", []string{"bob@b.test"}, text("Subject: c06\n\nplain\n"), 20))
				if err != nil {
					t.Fatal(err)
				}
				wantOutcomes(t, rs, map[string]string{"bob@b.test": "sent"})
				rs, _ = s.Send(context.Background(), message("alice@a.test", []string{"bob@b.test"}, text("Subject: c25\n\ncaf\xc3\xa9\n"), 20))
				wantOutcomes(t, rs, map[string]string{"bob@b.test": "perm 5.6.3"})
				s.Close()
			}
			if got := f.commands(); !slices.Equal(got, tc.want) {
				t.Errorf("transcript %q, want %q", got, tc.want)
			}
			if n := sc.Sessions(); n != tc.sessions {
				t.Errorf("%d connections, want %d", n, tc.sessions)
			}
		})
	}
}

// SMTPUTF8 (RFC 6531) when offered and needed; an IDN domain alone needs none.
func TestSendSMTPUTF8(t *testing.T) {
	port := freePort(t, "127.0.0.2", "127.0.0.3")
	utf := startReceiver(t, "127.0.0.2", port, testnet.SMTPOptions{SMTPUTF8: true})
	plain := startReceiver(t, "127.0.0.3", port, testnet.SMTPOptions{})
	tests := []struct {
		ip, rcpt, want, wire string
		utf8                 bool
		r                    *testnet.Receiver
	}{
		{"127.0.0.2", "jos\xc3\xa9@b.test", "sent", "jos\xc3\xa9@b.test", true, utf},
		{"127.0.0.3", "jos\xc3\xa9@b.test", "perm 5.6.7", "", false, plain},
		{"127.0.0.3", "user@b\xc3\xbccher.test", "sent", "user@xn--bcher-kva.test", false, plain},
	}
	for _, tc := range tests {
		s := dial(t, opts(port), host("mx.b.test", tc.ip))
		before := len(tc.r.Messages())
		rs, err := s.Send(context.Background(), message("alice@a.test", []string{tc.rcpt}, text("x\n"), 2))
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		wantOutcomes(t, rs, map[string]string{tc.rcpt: tc.want})
		msgs := tc.r.Messages()[before:]
		if tc.wire == "" {
			if len(msgs) != 0 {
				t.Errorf("%s: delivered %+v", tc.rcpt, msgs)
			}
			continue
		}
		if len(msgs) != 1 || msgs[0].To[0] != tc.wire || msgs[0].Opts.UTF8 != tc.utf8 {
			t.Errorf("%s: received %+v, want RCPT %q SMTPUTF8 %v", tc.rcpt, msgs, tc.wire, tc.utf8)
		}
	}
	// A non-ASCII recipient fails alone: the ASCII one beside it goes out
	// without SMTPUTF8. A non-ASCII sender fails every recipient.
	s := dial(t, opts(port), host("mx.b.test", "127.0.0.3"))
	before := len(plain.Messages())
	rs, err := s.Send(context.Background(), message("alice@a.test", []string{"jos\xc3\xa9@b.test", "ok@b\xc3\xbccher.test"}, text("x\n"), 2))
	if err != nil {
		t.Fatal(err)
	}
	wantOutcomes(t, rs, map[string]string{"jos\xc3\xa9@b.test": "perm 5.6.7", "ok@b\xc3\xbccher.test": "sent"})
	if msgs := plain.Messages()[before:]; len(msgs) != 1 || !slices.Equal(msgs[0].To, []string{"ok@xn--bcher-kva.test"}) || msgs[0].Opts.UTF8 {
		t.Errorf("received %+v, want ok@xn--bcher-kva.test alone without SMTPUTF8", msgs)
	}
	rs, err = s.Send(context.Background(), message("jos\xc3\xa9@a.test", []string{"ok@b.test"}, text("x\n"), 2))
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	wantOutcomes(t, rs, map[string]string{"ok@b.test": "perm 5.6.7"})
	if c := plain.Commands(); slices.ContainsFunc(c, func(s string) bool { return strings.Contains(s, "jos") }) {
		t.Errorf("non-ASCII address sent to a server without SMTPUTF8: %q", c)
	}
}

// SIZE (RFC 1870) limits, including odd advertisements, and MAIL refusals.
func TestSendSize(t *testing.T) {
	tests := []struct {
		name  string
		ehlo  string
		mail  string // MAIL reply, "" = 250
		size  int64
		want  string
		limit string // in the error text
	}{
		{"over the limit", "250-SIZE 1000000\r\n", "", 2500000, "perm 5.3.4", "1000000"},
		{"under the limit", "250-SIZE 1000000\r\n", "", 10000, "sent", ""},
		{"SIZE without a number", "250-SIZE\r\n", "", 2500000, "sent", ""},
		{"SIZE 0", "250-SIZE 0\r\n", "", 2500000, "sent", ""},
		{"two lines: the smaller wins", "250-SIZE 41943040\r\n250-SIZE 10485760\r\n", "", 20000000, "perm 5.3.4", "10485760"},
		{"two lines, under both", "250-SIZE 41943040\r\n250-SIZE 10485760\r\n", "", 10000, "sent", ""},
		{"MAIL 452", "250-SIZE\r\n", "452 4.3.1 Insufficient system storage", 10000, "temp 452", ""},
		{"MAIL 552", "250-SIZE\r\n", "552 5.3.4 Message too big", 10000, "perm 552", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t, "127.0.0.2")
			f := &fake{
				ehlo: []string{"250-fake.b.test\r\n" + tc.ehlo + "250 8BITMIME\r\n"},
				reply: func(cmd string) string {
					if strings.HasPrefix(cmd, "MAIL") {
						return tc.mail
					}
					return ""
				},
			}
			startFake(t, "127.0.0.2", port, f)
			s := dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
			// Over the limit, the stored size alone refuses the message,
			// which is then never read; else the message is as large as
			// Size says, with CRLFs, so that it is as large as sent too.
			src := text("S: x\n\nsmall\n")
			if tc.limit == "" {
				src = text(crlfText(int(tc.size)))
			}
			rs, err := s.Send(context.Background(), message("alice@a.test", []string{"bob@b.test"}, src, tc.size))
			if err != nil {
				t.Fatal(err)
			}
			if tc.limit != "" && src.opens != 0 {
				t.Errorf("message opened %d times, want never (its stored size is over the limit)", src.opens)
			}
			wantOutcomes(t, rs, map[string]string{"bob@b.test": tc.want})
			if tc.limit != "" && !strings.Contains(rs[0].Reply, tc.limit) {
				t.Errorf("reply %q does not state the limit %s", rs[0].Reply, tc.limit)
			}
			s.Close()
			cmds := f.commands()
			sentMail := slices.ContainsFunc(cmds, func(c string) bool { return strings.HasPrefix(c, "MAIL") })
			if tc.limit != "" && sentMail {
				t.Errorf("MAIL sent for a message over the limit: %q", cmds)
			}
			if tc.limit == "" && !slices.Contains(cmds, fmt.Sprintf("MAIL FROM:<alice@a.test> BODY=8BITMIME SIZE=%d", tc.size)) {
				t.Errorf("no MAIL with SIZE=%d in %q", tc.size, cmds)
			}
		})
	}
}

// 8BITMIME (RFC 6152) when offered, and the 7-bit case without it.
func TestSendEightBit(t *testing.T) {
	port := freePort(t, "127.0.0.2")
	f := &fake{ehlo: []string{"250-fake.b.test\r\n250 PIPELINING\r\n"}}
	startFake(t, "127.0.0.2", port, f)
	s := dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
	seven := text("Subject: c25\n\ncafe\n")
	rs, _ := s.Send(context.Background(), message("alice@a.test", []string{"bob@b.test"}, seven, 19))
	wantOutcomes(t, rs, map[string]string{"bob@b.test": "sent"})
	if seven.opens != 1 {
		t.Errorf("7-bit message opened %d times, want once (the 8-bit scan keeps it for DATA)", seven.opens)
	}
	seven.check(t)
	s.Close()
	if c := f.commands(); c[1] != "MAIL FROM:<alice@a.test>" {
		t.Errorf("MAIL = %q, want no BODY= and no SIZE= (not offered)", c[1])
	}
}

// crlfText returns a message of exactly n octets (n >= 8) whose lines all
// end in CRLF and fit in 998 octets: it is sent as it is, n octets.
func crlfText(n int) string {
	const head = "S: x\r\n\r\n"
	var b strings.Builder
	b.WriteString(head)
	q, r := (n-len(head))/80, (n-len(head))%80
	if r > 0 && r < 3 && q > 0 {
		q, r = q-1, r+80
	}
	b.WriteString(strings.Repeat(strings.Repeat("x", 78)+"\r\n", q))
	if r > 0 {
		b.WriteString(strings.Repeat("x", r-2) + "\r\n")
	}
	return b.String()
}
