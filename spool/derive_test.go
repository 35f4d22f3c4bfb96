package spool

import (
	"errors"
	"strings"
	"testing"
)

func TestDeriveEnvelope(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantFrom string
		wantTo   []string
		wantBody string // what Open returns; "" = the input unchanged
		errSub   string
	}{
		{name: "To Cc Bcc in header order, Bcc stripped with continuation",
			in:       "From: Alice <alice@example.test>\nTo: Bob <bob@example.test>,\n carol@example.test\nBcc: spy@example.test,\n\tspy2@example.test\nCc: dave@example.test\nSubject: hi\n\nBcc: body line stays\n",
			wantFrom: "alice@example.test", wantTo: []string{"bob@example.test", "carol@example.test", "spy@example.test", "spy2@example.test", "dave@example.test"},
			wantBody: "From: Alice <alice@example.test>\nTo: Bob <bob@example.test>,\n carol@example.test\nCc: dave@example.test\nSubject: hi\n\nBcc: body line stays\n"},
		{name: "CRLF, lower-case bcc first, obsolete space before colon",
			in:       "bcc : hidden@example.test,\r\n  more@example.test\r\nFrom: alice@example.test\r\nTo: bob@example.test\r\n\r\nbody\r\n",
			wantFrom: "alice@example.test", wantTo: []string{"hidden@example.test", "more@example.test", "bob@example.test"},
			wantBody: "From: alice@example.test\r\nTo: bob@example.test\r\n\r\nbody\r\n"},
		{name: "groups and duplicates",
			in:       "From: a@example.test\nTo: Team: x@example.test, y@example.test;, undisclosed-recipients:;\nCc: x@example.test\nBcc:\n\nb\n",
			wantFrom: "a@example.test", wantTo: []string{"x@example.test", "y@example.test"},
			wantBody: "From: a@example.test\nTo: Team: x@example.test, y@example.test;, undisclosed-recipients:;\nCc: x@example.test\n\nb\n"},
		{name: "Return-Path wins over Sender and From",
			in:       "From: f@example.test\nSender: s@example.test\nReturn-Path: <rp@example.test>\nTo: b@example.test\n\n",
			wantFrom: "rp@example.test", wantTo: []string{"b@example.test"}},
		{name: "Return-Path <> is the null sender",
			in:       "Return-Path: <>\nFrom: f@example.test\nTo: b@example.test\n\n",
			wantFrom: "", wantTo: []string{"b@example.test"}},
		{name: "Sender wins over From",
			in:       "From: f@example.test\nSender: Secretary <s@example.test>\nTo: b@example.test\n\n",
			wantFrom: "s@example.test", wantTo: []string{"b@example.test"}},
		{name: "From with several authors: the first",
			in:       "From: f1@example.test, f2@example.test\nTo: b@example.test\n",
			wantFrom: "f1@example.test", wantTo: []string{"b@example.test"}},
		{name: "no body, no blank line",
			in:       "From: f@example.test\nTo: b@example.test",
			wantFrom: "f@example.test", wantTo: []string{"b@example.test"}},
		{name: "no recipient", in: "From: f@example.test\nSubject: x\n\nTo: b@example.test\n", errSub: "no recipient in To, Cc or Bcc"},
		{name: "no sender", in: "To: b@example.test\n\n", errSub: "no Return-Path, Sender or From"},
		{name: "bad Cc", in: "From: f@example.test\nTo: b@example.test\nCc: c@exa mple.test\n\n", errSub: "Cc: cannot parse"},
		{name: "invalid domain", in: "From: f@example.test\nTo: b@-bad-.test\n\n", errSub: "To: invalid address"},
		{name: "not a header", in: "From alice@example.test Mon Jan 1\nTo: b@example.test\n\n", errSub: "not a header field"},
		{name: "X-Envelope after Bcc", in: "Bcc: b@example.test\nX-Envelope-Note: x\nFrom: f@example.test\n\n", errSub: "would read as an envelope line"},
		{name: "continuation first", in: " To: b@example.test\n\n", errSub: "continuation line before any header field"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parseBytes([]byte(tc.in), true)
			if tc.errSub != "" {
				var pe *ParseError
				if !errors.As(err, &pe) || !strings.Contains(pe.Msg, tc.errSub) {
					t.Fatalf("err = %v, want *ParseError containing %q", err, tc.errSub)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if !p.derived || p.bodyOff != 0 {
				t.Errorf("derived = %v, bodyOff = %d", p.derived, p.bodyOff)
			}
			if p.env.From != tc.wantFrom || strings.Join(p.env.To, ",") != strings.Join(tc.wantTo, ",") {
				t.Errorf("From %q To %q, want %q %q", p.env.From, p.env.To, tc.wantFrom, tc.wantTo)
			}
			want := tc.wantBody
			if want == "" {
				want = tc.in
			}
			if got := string(bodyOf(t, []byte(tc.in), p)); got != want {
				t.Errorf("body:\n got %q\nwant %q", got, want)
			}
		})
	}
}
