package spool

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mxflush/mxflush/addr"
)

func parseBytes(data []byte, needTo bool) (parsed, error) {
	return parse(bufio.NewReader(bytes.NewReader(data)), needTo)
}

// bodyOf returns the message bytes that Open would return for p.
func bodyOf(t testing.TB, data []byte, p parsed) []byte {
	t.Helper()
	r := newBodyReader(io.NopCloser(bytes.NewReader(data[p.bodyOff:])), p.bodyOff, p.skips)
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return b
}

func TestEnvelopeRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		env  Envelope
		want string // the envelope lines formatEnvelope writes
	}{
		{"minimal", Envelope{From: "alice@example.test", To: []string{"bob@example.test"}},
			"X-Envelope-From: <alice@example.test>\nX-Envelope-To: <bob@example.test>\n"},
		{"null sender", Envelope{To: []string{"bob@example.test"}, Arrival: at},
			"X-Envelope-From: <>\nX-Envelope-To: <bob@example.test>\nX-Envelope-Arrival: 2026-11-29T12:00:00Z\n"},
		{"deferred state", Envelope{
			From: "alice@example.test", To: []string{"bob@example.test", "carol@[127.0.0.1]"},
			Arrival: at, Attempts: 3, NextAttempt: at.Add(5 * time.Minute),
			Replies: map[string]string{"carol@[127.0.0.1]": "451 4.7.1 Greylisted", "bob@example.test": ""},
			Failed:  []Failure{{Rcpt: "gone@example.test", Reply: "550 5.1.1 No such user"}},
		}, "X-Envelope-From: <alice@example.test>\nX-Envelope-To: <bob@example.test>\nX-Envelope-To: <carol@[127.0.0.1]>\n" +
			"X-Envelope-Arrival: 2026-11-29T12:00:00Z\nX-Envelope-Attempts: 3\nX-Envelope-Next-Attempt: 2026-11-29T12:05:00Z\n" +
			"X-Envelope-Reply: <bob@example.test>\nX-Envelope-Reply: <carol@[127.0.0.1]> 451 4.7.1 Greylisted\n" +
			"X-Envelope-Failed: <gone@example.test> 550 5.1.1 No such user\n"},
		{"notices and delay warning", Envelope{
			From: "alice@example.test", To: []string{"bob@example.test"}, Arrival: at, Attempts: 4, Warned: at.Add(4 * time.Hour),
			Failed: []Failure{
				{Rcpt: "gone@example.test", Reply: "550 5.1.1 No such user", Notice: NoticeBounced},
				{Rcpt: "old@example.test", Reply: "bounced by an older relayer"}, // no token: a reply that starts with a token word stays text
				{Rcpt: "x@example.test", Reply: "554 5.7.1 Rejected", Notice: NoticeNone},
			},
		}, "X-Envelope-From: <alice@example.test>\nX-Envelope-To: <bob@example.test>\n" +
			"X-Envelope-Arrival: 2026-11-29T12:00:00Z\nX-Envelope-Attempts: 4\nX-Envelope-Warned: 2026-11-29T16:00:00Z\n" +
			"X-Envelope-Failed: bounced <gone@example.test> 550 5.1.1 No such user\n" +
			"X-Envelope-Failed: <old@example.test> bounced by an older relayer\n" +
			"X-Envelope-Failed: not-bounced <x@example.test> 554 5.7.1 Rejected\n"},
		{"utf8 and literal", Envelope{From: "jörg@bücher.test", To: []string{"x@[IPv6:::1]"}},
			"X-Envelope-From: <jörg@bücher.test>\nX-Envelope-To: <x@[IPv6:::1]>\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, err := normalize(tc.env, true)
			if err != nil {
				t.Fatalf("normalize: %v", err)
			}
			got := formatEnvelope(env)
			if string(got) != tc.want {
				t.Errorf("format:\n got %q\nwant %q", got, tc.want)
			}
			p, err := parseBytes(append(got, "Subject: x\n\nbody\n"...), true)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if !envEqual(p.env, env) || p.derived || p.bodyOff != int64(len(got)) {
				t.Errorf("parse gave %+v (derived %v, off %d), want %+v", p.env, p.derived, p.bodyOff, env)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		name    string
		env     Envelope
		check   func(Envelope) bool
		addrErr bool // error must be *addr.Error
		errSub  string
	}{
		{name: "source route stripped, duplicates dropped",
			env: Envelope{To: []string{"@hop1.example.org,@hop2.example.com:bob@example.net", "bob@example.net"}},
			check: func(e Envelope) bool {
				return len(e.To) == 1 && e.To[0] == "bob@example.net"
			}},
		{name: "reply sanitised and kept only for pending",
			env: Envelope{To: []string{"bob@example.test"}, Replies: map[string]string{
				"bob@example.test": "451 4.7.1\r\nRCPT TO:<spy@example.org>\x00 ", "gone@example.test": "250 ok"}},
			check: func(e Envelope) bool {
				return len(e.Replies) == 1 && e.Replies["bob@example.test"] == "451 4.7.1  RCPT TO:<spy@example.org>"
			}},
		{name: "times to UTC seconds",
			env: Envelope{To: []string{"b@x.test"}, Arrival: time.Date(2026, 1, 2, 3, 4, 5, 999, time.FixedZone("x", 3600))},
			check: func(e Envelope) bool {
				return e.Arrival == time.Date(2026, 1, 2, 2, 4, 5, 0, time.UTC)
			}},
		{name: "CR LF in recipient", env: Envelope{To: []string{"bob@example.net>\r\nRCPT TO:<spy@example.org"}}, addrErr: true, errSub: "CR or LF"},
		{name: "CR LF in sender", env: Envelope{From: "alice@example.com\r\nRSET", To: []string{"b@x.test"}}, addrErr: true, errSub: "CR or LF"},
		{name: "NUL", env: Envelope{To: []string{"bob\x00@example.net"}}, addrErr: true, errSub: "NUL"},
		{name: "malformed route", env: Envelope{To: []string{"@hop1.example.org bob@example.net"}}, addrErr: true},
		{name: "double route sender", env: Envelope{From: "@a.test:@b.test:c@d.test", To: []string{"b@x.test"}}, addrErr: true, errSub: "not allowed in an unquoted local part"},
		{name: "injected failed rcpt", env: Envelope{To: []string{"b@x.test"}, Failed: []Failure{{Rcpt: "nobody\r\nRSET", Reply: "550"}}}, addrErr: true, errSub: "CR or LF"},
		{name: "no recipients", env: Envelope{From: "a@x.test"}, errSub: "no pending recipient"},
		{name: "unknown notice", env: Envelope{To: []string{"b@x.test"}, Failed: []Failure{{Rcpt: "c@x.test", Notice: "told"}}}, errSub: "notice"},
		{name: "negative attempts", env: Envelope{To: []string{"b@x.test"}, Attempts: -1}, errSub: "negative"},
		{name: "year out of range", env: Envelope{To: []string{"b@x.test"}, NextAttempt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, errSub: "0000-9999"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := normalize(tc.env, true)
			if tc.check != nil {
				if err != nil || !tc.check(got) {
					t.Fatalf("normalize = %+v, %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errSub) {
				t.Fatalf("err = %v, want one containing %q", err, tc.errSub)
			}
			if _, ok := err.(*addr.Error); ok != tc.addrErr {
				t.Errorf("err is %T, want *addr.Error: %v", err, tc.addrErr)
			}
		})
	}
}

func TestParseExplicit(t *testing.T) {
	const from = "X-Envelope-From: <alice@example.test>\n"
	tests := []struct {
		name    string
		in      string
		needTo  bool
		wantTo  []string
		errLine int    // expected ParseError.Line when errSub != ""
		errSub  string // "" = must parse
		addrErr bool
	}{
		{name: "LF", in: from + "X-Envelope-To: <bob@example.test>\nSubject: x\n\nbody\n", needTo: true, wantTo: []string{"bob@example.test"}},
		{name: "CRLF", in: "X-Envelope-From: <alice@example.test>\r\nX-Envelope-To: <bob@example.test>\r\nSubject: x\r\n\r\nbody\r\n", needTo: true, wantTo: []string{"bob@example.test"}},
		{name: "lower case names, tabs", in: "x-envelope-from:\t<>\nX-ENVELOPE-TO:   <bob@example.test>  \n\nbody\n", needTo: true, wantTo: []string{"bob@example.test"}},
		{name: "no message at all", in: from + "X-Envelope-To: <bob@example.test>", needTo: true, errLine: 3, errSub: "no message after the envelope lines"},
		{name: "failed/ without To", in: from + "X-Envelope-Failed: <gone@example.test> 550 5.1.1 No such user\n\nbody", needTo: false},
		{name: "injection: CR inside the address", in: from + "X-Envelope-To: <bob@example.net>\rRCPT TO:<spy@example.org>\nSubject: x\n", needTo: true, errLine: 2, errSub: `X-Envelope-To: invalid address "bob@example.net>\rRCPT TO:<spy@example.org": CR or LF`, addrErr: true},
		{name: "injection: CRLF splits the line", in: from + "X-Envelope-To: <bob@example.net>\r\nRCPT TO:<spy@example.org>\r\nSubject: x\r\n", needTo: true, errLine: 3, errSub: "does not start with a header field"},
		{name: "injection: sender split", in: "X-Envelope-From: <alice@example.com\r\nRSET>\nX-Envelope-To: <bob@example.net>\n", needTo: true, errLine: 1, errSub: "not one address in angle brackets"},
		{name: "injection: NUL", in: from + "X-Envelope-To: <bob\x00@example.net>\n", needTo: true, errLine: 2, errSub: "NUL in an address", addrErr: true},
		{name: "injection: size parameter", in: from + "X-Envelope-Size: 100\r\nRCPT TO:<spy@example.org>\n", needTo: true, errLine: 2, errSub: `unknown envelope field "X-Envelope-Size"`},
		{name: "no @ in sender", in: "X-Envelope-From: <bob>\nX-Envelope-To: <a@b.test>\n", needTo: true, errLine: 1, errSub: `X-Envelope-From: invalid address "bob": no @ in address`, addrErr: true},
		{name: "space in recipient", in: from + "X-Envelope-To: <bob smith@a.test>\n", needTo: true, errLine: 2, errSub: `X-Envelope-To: invalid address "bob smith@a.test"`, addrErr: true},
		{name: "no brackets", in: from + "X-Envelope-To: bob@example.test\n", needTo: true, errLine: 2, errSub: "angle brackets"},
		{name: "two senders", in: from + from + "X-Envelope-To: <b@x.test>\n", needTo: true, errLine: 2, errSub: "more than one X-Envelope-From"},
		{name: "no sender", in: "X-Envelope-To: <b@x.test>\n\nbody\n", needTo: true, errSub: "no X-Envelope-From"},
		{name: "no recipient in new/", in: from + "X-Envelope-Failed: <gone@example.test> 550\n\nbody\n", needTo: true, errSub: "no X-Envelope-To"},
		{name: "nothing in failed/", in: from + "\nbody", needTo: false, errSub: "neither X-Envelope-To nor X-Envelope-Failed"},
		{name: "folded envelope line", in: from + "X-Envelope-To: <b@x.test>\n <c@x.test>\n", needTo: true, errLine: 3, errSub: "never folded"},
		{name: "no colon", in: from + "X-Envelope-To <b@x.test>\n", needTo: true, errLine: 2, errSub: "no colon"},
		{name: "bad time", in: from + "X-Envelope-To: <b@x.test>\nX-Envelope-Arrival: yesterday\n", needTo: true, errLine: 3, errSub: "RFC 3339"},
		{name: "bad attempts", in: from + "X-Envelope-To: <b@x.test>\nX-Envelope-Attempts: -1\n", needTo: true, errLine: 3, errSub: "decimal count"},
		{name: "NUL in reply", in: from + "X-Envelope-To: <b@x.test>\nX-Envelope-Reply: <b@x.test> 451\x00x\n", needTo: true, errLine: 3, errSub: "control character"},
		{name: "unknown notice", in: from + "X-Envelope-Failed: told <gone@example.test> 550\n", errLine: 2, errSub: `does not start with an address in angle brackets or with "bounced"`},
		{name: "notice without address", in: from + "X-Envelope-Failed: bounced 550 5.1.1\n", errLine: 2, errSub: "angle brackets"},
		{name: "two warnings", in: from + "X-Envelope-To: <b@x.test>\nX-Envelope-Warned: 2026-01-01T00:00:00Z\nX-Envelope-Warned: 2026-01-01T00:00:00Z\n", needTo: true, errLine: 4, errSub: "more than one X-Envelope-Warned"},
		{name: "too long", in: from + "X-Envelope-To: <b@x.test>\nX-Envelope-Reply: <b@x.test> " + strings.Repeat("x", maxEnvLine) + "\n", needTo: true, errLine: 3, errSub: "longer than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parseBytes([]byte(tc.in), tc.needTo)
			if tc.errSub == "" {
				if err != nil {
					t.Fatalf("parse: %v", err)
				}
				if strings.Join(p.env.To, ",") != strings.Join(tc.wantTo, ",") {
					t.Errorf("To = %q, want %q", p.env.To, tc.wantTo)
				}
				return
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v (%T), want *ParseError", err, err)
			}
			if !strings.Contains(pe.Msg, tc.errSub) || pe.Line != tc.errLine {
				t.Errorf("got line %d %q, want line %d containing %q", pe.Line, pe.Msg, tc.errLine, tc.errSub)
			}
			if r := pe.Reason(); strings.ContainsAny(r, "\r\n\x00") {
				t.Errorf("Reason is not one line: %q", r)
			}
			var ae *addr.Error
			if errors.As(err, &ae) != tc.addrErr {
				t.Errorf("errors.As(*addr.Error) = %v, want %v", !tc.addrErr, tc.addrErr)
			}
		})
	}
}

func TestParseErrorText(t *testing.T) {
	_, err := parseBytes([]byte("X-Envelope-From: <>\nX-Envelope-Arrival: 2026-01-01T00:00:00Z\nX-Envelope-To: <bob\r>\n"), true)
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v", err)
	}
	pe.File = "new/1700.123.abc.host"
	want := `spool: new/1700.123.abc.host: line 3: X-Envelope-To: invalid address "bob\r": CR or LF in an address (RFC 5321 §4.1.2)`
	if pe.Error() != want {
		t.Errorf("Error() =\n %s\nwant\n %s", pe.Error(), want)
	}
}
