package smtpclient

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/mxflush/mxflush/mta"
)

func read(in string) (mta.Reply, error) {
	return readReply(bufio.NewReaderSize(strings.NewReader(in), 4096), nil)
}

// The reply grammar of RFC 5321 §4.2: the code of the last line counts,
// "ddd" alone ends a reply, bare LF is taken, and anything else is a
// malformed reply, never a guess. The enhanced status code (RFC 2034 §4)
// comes off every line that repeats it, only when its class is the
// code's.
func TestReadReply(t *testing.T) {
	tests := []struct {
		in     string
		code   int
		status string
		lines  []string
		err    error
	}{
		{in: "250 ok\r\n", code: 250, lines: []string{"ok"}},
		{in: "250\r\n", code: 250, lines: []string{""}},
		{in: "250 \r\n", code: 250, lines: []string{""}},
		{in: "250 ok\n", code: 250, lines: []string{"ok"}},
		{in: "250-a\r\n250-b\r\n250 c\r\n", code: 250, lines: []string{"a", "b", "c"}},
		// RFC 5321 §4.2.1: the code of the last line is the reply's.
		{in: "220-welcome\r\n554 5.7.1 go away\r\n", code: 554, status: "5.7.1", lines: []string{"welcome", "go away"}},
		{in: "550 5.1.1 No such user\r\n", code: 550, status: "5.1.1", lines: []string{"No such user"}},
		{in: "550-5.1.1 first\r\n550 5.1.1 second\r\n", code: 550, status: "5.1.1", lines: []string{"first", "second"}},
		{in: "550-5.1.1 first\r\n550 5.7.1 second\r\n", code: 550, status: "5.1.1", lines: []string{"first", "5.7.1 second"}},
		{in: "550-first\r\n550 5.7.1 second\r\n", code: 550, status: "5.7.1", lines: []string{"first", "second"}},
		// A status of another class is text (mta.SplitStatus).
		{in: "550 4.2.2 mailbox full\r\n", code: 550, lines: []string{"4.2.2 mailbox full"}},
		{in: "250 2.0.0\r\n", code: 250, status: "2.0.0", lines: []string{""}},
		{in: "250 2.0.0 \r\n", code: 250, status: "2.0.0", lines: []string{""}},
		{in: "25\r\n", err: ErrMalformedReply},
		{in: "250x\r\n", err: ErrMalformedReply},
		{in: "abc ok\r\n", err: ErrMalformedReply},
		{in: "650 ok\r\n", err: ErrMalformedReply},
		{in: "260 ok\r\n", err: ErrMalformedReply},
		{in: "250-a\r\nnot a reply\r\n", err: ErrMalformedReply},
		{in: "", err: io.EOF},
		{in: "250-a\r\n", err: io.EOF},
		{in: "250 no line end", err: io.ErrUnexpectedEOF},
		{in: "250 " + strings.Repeat("x", MaxReplyLine) + "\r\n", err: ErrMalformedReply},
	}
	for _, tc := range tests {
		r, err := read(tc.in)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%.40q: %+v, %v; want %v", tc.in, r, err, tc.err)
			}
			continue
		}
		if err != nil || r.Code != tc.code || r.Status != tc.status || !slices.Equal(r.Lines, tc.lines) {
			t.Errorf("%q: %+v, %v; want %d %q %q", tc.in, r, err, tc.code, tc.status, tc.lines)
		}
	}
}

// The limits on one reply: a reply within 100 lines but over 64 KiB is
// refused, and one at the limits is read.
func TestReadReplyLimits(t *testing.T) {
	reply := func(lines, lineLen int) string {
		l := "250-" + strings.Repeat("X", lineLen-6) + "\r\n"
		return strings.Repeat(l, lines-1) + "250 " + strings.Repeat("X", lineLen-6) + "\r\n"
	}
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"100 lines", reply(MaxReplyLines, 80), true},
		{"101 lines", reply(MaxReplyLines+1, 80), false},
		{"64 KiB", reply(64, MaxReplyOctets/64), true},
		{"64 KiB and a line more", reply(65, MaxReplyOctets/64), false},
		// 64 KiB as sent, more with each LF counted as CRLF.
		{"bare LF line ends counted as CRLF", strings.ReplaceAll(reply(64, MaxReplyOctets/64+1), "\r\n", "\n"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := read(tc.in)
			if tc.ok && (err != nil || r.Code != 250) {
				t.Fatalf("readReply: %d, %v; want 250", r.Code, err)
			}
			if !tc.ok && !errors.Is(err, ErrReplyTooLong) {
				t.Fatalf("readReply: %d, %d lines, %v; want the reply refused as too long", r.Code, len(r.Lines), err)
			}
		})
	}
}

// formatReply writes r in wire form as a server would: the code on every
// line, the enhanced status code on every line when there is one.
func formatReply(r mta.Reply) string {
	var b strings.Builder
	for i, l := range r.Lines {
		sep := "-"
		if i == len(r.Lines)-1 {
			sep = " "
		}
		fmt.Fprintf(&b, "%d%s", r.Code, sep)
		if r.Status != "" {
			b.WriteString(r.Status + " ")
		}
		b.WriteString(l + "\r\n")
	}
	return b.String()
}

// FuzzReadReply: whatever a server sends, the reader never panics, never
// returns a reply over the limits, returns a code by the grammar, and a
// reply it read reads back the same once written out again.
func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"250 ok\r\n", "250-a\r\n250-b\r\n250 c\r\n", "220-x\n554 5.7.1 no\n", "550-5.1.1 a\r\n550 5.7.1 b\r\n",
		"250\r\n", "250 2.0.0 \r\n", "334 VXNlcm5hbWU6\r\n", "25", "250x\r\n", "550 4.2.2 full\r\n",
		strings.Repeat("250-x\r\n", 120), "250 a\rb\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReaderSize(strings.NewReader(string(in)), 4096)
		read := 0
		r, err := readReply(br, func(line []byte) { read += len(line) + 2 })
		if read > MaxReplyOctets {
			t.Fatalf("%d octets taken in, more than %d", read, MaxReplyOctets)
		}
		if err != nil {
			return
		}
		if len(r.Lines) == 0 || len(r.Lines) > MaxReplyLines || r.Code < 200 || r.Code > 559 {
			t.Fatalf("reply %+v out of bounds", r)
		}
		if r.Status != "" {
			if s, ok := mta.ParseStatus(r.Status); !ok || int(s[0]-'0') != r.Class() {
				t.Fatalf("status %q of a %d reply", r.Status, r.Code)
			}
		}
		out := formatReply(r)
		if len(out) > MaxReplyOctets || slices.ContainsFunc(strings.Split(out, "\r\n"), func(l string) bool { return len(l) > MaxReplyLine }) {
			return // written out again, the reply grew past a limit
		}
		again, err := readReply(bufio.NewReaderSize(strings.NewReader(out), 4096), nil)
		if err != nil || again.Code != r.Code || again.Status != r.Status || !slices.Equal(again.Lines, r.Lines) {
			t.Fatalf("%q read %+v, written %q, read again %+v, %v", in, r, out, again, err)
		}
	})
}
