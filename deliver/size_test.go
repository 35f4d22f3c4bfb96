package deliver

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mxflush/mxflush/mta"
)

// SIZE= on MAIL is the size of the message as transmitted after the 354
// (RFC 1870 §4): every line ended by CRLF (a bare LF or CR counts two
// octets, an unterminated last line gets its CRLF), and the line breaks the
// normaliser inserts into lines over 998 octets counted, but not the dots
// of dot-stuffing nor the final dot. The transcript proves it: SIZE= equals
// the octets the server read, unstuffed. The message is read once, or
// twice when it is too large to keep in memory between the two.
func TestSendSizeAsSent(t *testing.T) {
	long := strings.Repeat("x", 2500)
	tests := []struct{ name, msg string }{
		{"CRLF", "Subject: a\r\n\r\nbody\r\n"},
		{"bare LF", "Subject: a\n\nbody\nmore\n"},
		{"bare CR", "Subject: a\r\rbody\r"},
		{"no final line end", "Subject: a\n\nbody"},
		{"dot-stuffing not counted", "Subject: a\n\n.one\n..two\n.\n"},
		{"long body line broken", "Subject: a\n\n" + long + "\n"},
		{"long header folded at a space", "Subject: " + strings.Repeat("word ", 500) + "\n\nbody\n"},
		{"long header without a space", "X-Long: " + long + "\n\nbody\n"},
		{"too large to keep: read again for DATA", "Subject: a\n\n" + strings.Repeat("line\n", 20000)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t, "127.0.0.2")
			f := &fake{}
			startFake(t, "127.0.0.2", port, f)
			s := dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
			src := text(tc.msg)
			rs, err := s.Send(context.Background(), message("alice@a.test", []string{"bob@b.test"}, src, int64(len(tc.msg))))
			if err != nil {
				t.Fatal(err)
			}
			wantOutcomes(t, rs, map[string]string{"bob@b.test": "sent"})
			s.Close()
			bodies := f.bodies()
			if len(bodies) != 1 {
				t.Fatalf("bodies %q, want one", bodies)
			}
			sent := unstuff(bodies[0])
			mail := fmt.Sprintf("MAIL FROM:<alice@a.test> BODY=8BITMIME SIZE=%d", len(sent))
			if cmds := f.commands(); !slices.Contains(cmds, mail) {
				t.Errorf("commands %q, want %q: %d octets were sent (stored: %d)", cmds, mail, len(sent), len(tc.msg))
			}
			if want := map[bool]int{true: 1, false: 2}[len(sent) <= maxKept]; src.opens != want {
				t.Errorf("message opened %d times, want %d", src.opens, want)
			}
			src.check(t)
		})
	}
}

// unstuff undoes dot-stuffing (RFC 5321 §4.5.2) of a body as the fake
// records it (CRLF lines, without the final dot).
func unstuff(wire string) string {
	lines := strings.SplitAfter(wire, "\r\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, ".")
	}
	return strings.Join(lines, "")
}

// A bare-LF message under the server's SIZE limit as stored but over it as
// sent (19,990 octets stored, 20,280 with CRLFs, limit 20,000) fails
// permanently with 5.3.4 (RFC 1870 §4 and §6.1, RFC 3463 §3.4) before any
// transaction: no MAIL, no DATA, and the reply states both sizes. The
// session stays usable: the next message goes, and Close says QUIT.
func TestSendSizeOverLimitAsSent(t *testing.T) {
	// 2 header LFs and 288 body lines: 290 LFs, 19,990 octets.
	msg := "Subject: big\n\n" + strings.Repeat(strings.Repeat("x", 68)+"\n", 287) + strings.Repeat("y", 172) + "\n"
	if len(msg) != 19990 || strings.Count(msg, "\n") != 290 {
		t.Fatalf("test message: %d octets, %d LFs", len(msg), strings.Count(msg, "\n"))
	}
	port := freePort(t, "127.0.0.2")
	f := &fake{ehlo: []string{"250-fake.b.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 20000\r\n"}}
	startFake(t, "127.0.0.2", port, f)
	s := dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
	src := text(msg)
	rs, err := s.Send(context.Background(), message("alice@a.test", []string{"bob@b.test"}, src, int64(len(msg))))
	if err != nil {
		t.Fatal(err)
	}
	wantOutcomes(t, rs, map[string]string{"bob@b.test": "perm 5.3.4"})
	if e := asError(t, rs[0]); e.Status != "5.3.4" || !e.Permanent || e.Command != mta.CmdLocal {
		t.Fatalf("error %v, want permanent local 5.3.4", rs[0].Err)
	}
	for _, n := range []int{20280, 20000} {
		if !strings.Contains(rs[0].Reply, strconv.Itoa(n)) {
			t.Errorf("reply %q does not state %d", rs[0].Reply, n)
		}
	}
	small := text("Subject: ok\n\nfits\n")
	rs, err = s.Send(context.Background(), message("alice@a.test", []string{"bob@b.test"}, small, 18))
	if err != nil || rs[0].Err != nil {
		t.Fatalf("next message: %v %v", err, rs)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	wantTranscript(t, f, []string{"EHLO relay.a.test", "MAIL FROM:<alice@a.test> BODY=8BITMIME SIZE=21", "RCPT TO:<bob@b.test>", "DATA", "QUIT"})
	src.check(t)
}
