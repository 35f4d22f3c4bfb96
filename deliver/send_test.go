package deliver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/mta"
)

func refusal(code int, status, msg string) error {
	var ec smtp.EnhancedCode
	fmt.Sscanf(status, "%d.%d.%d", &ec[0], &ec[1], &ec[2])
	return &smtp.SMTPError{Code: code, EnhancedCode: ec, Message: msg}
}

// The receiver stores exactly the normalised input (dot-stuffing is undone
// by the server), whatever the line endings and dots.
func TestSendBytes(t *testing.T) {
	port := freePort(t, "127.0.0.2")
	r := startReceiver(t, "127.0.0.2", port, testnet.SMTPOptions{})
	s := dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
	inputs := []struct{ in, want string }{
		{"Subject: a\r\n\r\nhello\r\n", "Subject: a\r\n\r\nhello\r\n"},
		{"Subject: b\n\nunix\nlines", "Subject: b\r\n\r\nunix\r\nlines\r\n"},
		{"Subject: c\r\rold mac\r.\r", "Subject: c\r\n\r\nold mac\r\n.\r\n"},
		{"Subject: d\n\n.\n..\n.x\n", "Subject: d\r\n\r\n.\r\n..\r\n.x\r\n"},
		{"Subject: e\n\n" + strings.Repeat("w", 1500) + "\n", "Subject: e\r\n\r\n" + strings.Repeat("w", 998) + "\r\n" + strings.Repeat("w", 502) + "\r\n"},
		{"", ""}, // an empty body stays empty: DATA, then the final dot alone
	}
	for i, in := range inputs {
		src := text(in.in)
		rs, err := s.Send(context.Background(), message("alice@a.test", []string{fmt.Sprintf("r%d@b.test", i)}, src, int64(len(in.in))))
		if err != nil || rs[0].Err != nil {
			t.Fatalf("input %d: %v %v", i, err, rs)
		}
		src.check(t)
	}
	msgs := r.Messages()
	if len(msgs) != len(inputs) {
		t.Fatalf("%d messages received, want %d", len(msgs), len(inputs))
	}
	for i, m := range msgs {
		if string(m.Data) != inputs[i].want {
			t.Errorf("message %d: received %q, want %q", i, m.Data, inputs[i].want)
		}
	}
}

// One session carries many messages: one connection, one EHLO, no RSET
// between successful transactions, SIZE= and BODY= on MAIL.
func TestSendManyOneSession(t *testing.T) {
	port := freePort(t, "127.0.0.2")
	r := startReceiver(t, "127.0.0.2", port, testnet.SMTPOptions{})
	s := dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
	const n = 5
	for i := range n {
		body := fmt.Sprintf("Subject: m%d\n\nbody %d\n", i, i)
		src := text(body)
		rs, err := s.Send(context.Background(), message("alice@a.test", []string{fmt.Sprintf("u%d@b.test", i), "all@b.test"}, src, int64(len(body))))
		if err != nil {
			t.Fatal(err)
		}
		wantOutcomes(t, rs, map[string]string{fmt.Sprintf("u%d@b.test", i): "sent", "all@b.test": "sent"})
		if !strings.HasPrefix(rs[0].Reply, "250 2.0.0 ") {
			t.Errorf("Reply = %q", rs[0].Reply)
		}
		src.check(t)
		if src.opens != 1 {
			t.Errorf("message %d opened %d times, want 1", i, src.opens)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if r.Sessions() != 1 {
		t.Errorf("Sessions = %d, want 1", r.Sessions())
	}
	msgs := r.Messages()
	if len(msgs) != n {
		t.Fatalf("%d messages, want %d", len(msgs), n)
	}
	for i, m := range msgs {
		if m.Session != 1 || m.Opts.Size != int64(len(fmt.Sprintf("Subject: m%d\r\n\r\nbody %d\r\n", i, i))) || m.Opts.Body != smtp.Body8BitMIME {
			t.Errorf("message %d: session %d opts %+v", i, m.Session, m.Opts)
		}
	}
	cmds := r.Commands()
	count := func(prefix string) int {
		k := 0
		for _, c := range cmds {
			if strings.HasPrefix(c, prefix) {
				k++
			}
		}
		return k
	}
	if count("RSET") != 0 || count("EHLO") != 1 || count("MAIL") != n || cmds[len(cmds)-1] != "QUIT" {
		t.Errorf("commands %q: want 1 EHLO, %d MAIL, no RSET, QUIT last", cmds, n)
	}
}

// Mixed RCPT replies give per-recipient results.
func TestSendMixedRcpt(t *testing.T) {
	port := freePort(t, "127.0.0.2")
	r := startReceiver(t, "127.0.0.2", port, testnet.SMTPOptions{Rcpt: func(to string) error {
		switch to {
		case "gone@b.test":
			return refusal(550, "5.1.1", "No such user")
		case "busy@b.test":
			return refusal(450, "4.2.1", "Mailbox busy")
		}
		return nil
	}})
	s := dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
	rs, err := s.Send(context.Background(), message("alice@a.test", []string{"gone@b.test", "bob@b.test", "busy@b.test"}, text("S: x\n\nhi\n"), 10))
	if err != nil {
		t.Fatal(err)
	}
	wantOutcomes(t, rs, map[string]string{"gone@b.test": "perm 550", "bob@b.test": "sent", "busy@b.test": "temp 450"})
	if rs[0].Reply != "550 5.1.1 No such user" || rs[2].Reply != "450 4.2.1 Mailbox busy" {
		t.Errorf("replies %q / %q", rs[0].Reply, rs[2].Reply)
	}
	var e *mta.Error
	if errors.As(rs[0].Err, &e); e.Command != "RCPT TO" || e.Status != "5.1.1" {
		t.Errorf("error %+v", e)
	}
	if m := r.Messages(); len(m) != 1 || !slices.Equal(m[0].To, []string{"bob@b.test"}) {
		t.Errorf("received %+v", m)
	}
}

// Every RCPT refused: the body is never sent, the transaction is reset, and
// the 550s are the results. (The go-smtp receiver offers PIPELINING, so DATA
// goes out in the group and is refused, RFC 2920 §3.1.)
func TestSendAllRcptRefused(t *testing.T) {
	port := freePort(t, "127.0.0.2")
	r := startReceiver(t, "127.0.0.2", port, testnet.SMTPOptions{Rcpt: func(string) error {
		return refusal(550, "5.1.1", "No such user")
	}})
	s := dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
	src := text("S: x\n\nhi\n")
	rs, err := s.Send(context.Background(), message("alice@a.test", []string{"x@b.test", "y@b.test"}, src, 10))
	if err != nil {
		t.Fatal(err)
	}
	wantOutcomes(t, rs, map[string]string{"x@b.test": "perm 550", "y@b.test": "perm 550"})
	src.check(t)
	// The session goes on: the next message gets its own results.
	rs, err = s.Send(context.Background(), message("alice@a.test", []string{"x@b.test"}, text("y\n"), 2))
	if err != nil || rs[0].Err == nil {
		t.Fatalf("second send: %v %v", err, rs)
	}
	s.Close()
	if n := len(r.Messages()); n != 0 {
		t.Errorf("%d messages received, want none", n)
	}
	if cmds := r.Commands(); !slices.Contains(cmds, "RSET") {
		t.Errorf("commands %q: want RSET", cmds)
	}
}

// The 452 split (RFC 5321 §4.5.3.1.10), as an exact transcript: a server
// that takes 2 recipients per transaction gets every recipient in three
// transactions, with no RSET. Without PIPELINING the RCPTs stop at the
// first 452; with it (RFC 2920) every RCPT of the group is sent and each
// 452 recipient goes in the next transaction.
func TestSendRcptLimitTranscript(t *testing.T) {
	mail := "MAIL FROM:<alice@a.test> BODY=8BITMIME SIZE=22"
	r := func(a ...string) []string {
		var out []string
		for _, x := range a {
			out = append(out, "RCPT TO:<"+x+"@b.test>")
		}
		return out
	}
	tests := []struct {
		name string
		ehlo string
		want [][]string
	}{
		{"sequential", sequentialEHLO, [][]string{
			{"EHLO relay.a.test"},
			{mail}, r("r1", "r2", "r3"), {"DATA"},
			{mail}, r("r3", "r4", "r5"), {"DATA"},
			{mail}, r("r5"), {"DATA"},
			{"QUIT"},
		}},
		{"pipelining", defaultEHLO, [][]string{
			{"EHLO relay.a.test"},
			{mail}, r("r1", "r2", "r3", "r4", "r5"), {"DATA"},
			{mail}, r("r3", "r4", "r5"), {"DATA"},
			{mail}, r("r5"), {"DATA"},
			{"QUIT"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t, "127.0.0.2")
			rcpts := 0
			f := &fake{ehlo: []string{tc.ehlo}, reply: func(cmd string) string {
				switch {
				case strings.HasPrefix(cmd, "MAIL"):
					rcpts = 0
				case strings.HasPrefix(cmd, "RCPT"):
					if rcpts == 2 {
						return "452 4.5.3 Too many recipients"
					}
					rcpts++
				}
				return ""
			}}
			startFake(t, "127.0.0.2", port, f)
			s := dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
			to := []string{"r1@b.test", "r2@b.test", "r3@b.test", "r4@b.test", "r5@b.test"}
			src := text("Subject: split\n\nhi\n")
			rs, err := s.Send(context.Background(), message("alice@a.test", to, src, 19))
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rs {
				if r.Err != nil {
					t.Errorf("%s: %v", r.Rcpt, r.Err)
				}
			}
			s.Close()
			want := slices.Concat(tc.want...)
			if got := f.commands(); !slices.Equal(got, want) {
				t.Errorf("transcript\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if b := f.bodies(); len(b) != 3 || b[2] != "Subject: split\r\n\r\nhi\r\n" {
				t.Errorf("bodies %q", b)
			}
			if src.opens != 1 {
				// Read once to measure it for SIZE= (RFC 1870 §4), then
				// sent from memory in each of the three transactions.
				t.Errorf("opened %d times, want once (a small message is kept after measuring)", src.opens)
			}
			src.check(t)
		})
	}
}

// A 452 to every RCPT defers everyone, each on its own reply (see
// TestSendRcpt452OneRecipient for why one 452 does not stop the RCPTs).
// Without PIPELINING no DATA is sent; with it, the fake answers the DATA of
// the group with 354 although no recipient was accepted, and RFC 2920 §3.1
// wants a lone dot then: an empty message for nobody, never the body.
func TestSendRcpt452First(t *testing.T) {
	mail := "MAIL FROM:<alice@a.test> BODY=8BITMIME SIZE=3"
	tests := []struct {
		name   string
		ehlo   string
		want   []string
		bodies []string
	}{
		{"sequential", sequentialEHLO, []string{"EHLO relay.a.test", mail, "RCPT TO:<a@b.test>", "RCPT TO:<b@b.test>", "RSET", "QUIT"}, nil},
		{"pipelining", defaultEHLO, []string{"EHLO relay.a.test", mail, "RCPT TO:<a@b.test>", "RCPT TO:<b@b.test>", "DATA", "QUIT"}, []string{""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t, "127.0.0.2")
			f := &fake{ehlo: []string{tc.ehlo}, reply: func(cmd string) string {
				if strings.HasPrefix(cmd, "RCPT") {
					return "452 4.3.1 Insufficient system storage"
				}
				return ""
			}}
			startFake(t, "127.0.0.2", port, f)
			s := dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
			rs, err := s.Send(context.Background(), message("alice@a.test", []string{"a@b.test", "b@b.test"}, text("x\n"), 2))
			if err != nil {
				t.Fatal(err)
			}
			wantOutcomes(t, rs, map[string]string{"a@b.test": "temp 452", "b@b.test": "temp 452"})
			s.Close()
			if got := f.commands(); !slices.Equal(got, tc.want) {
				t.Errorf("transcript %q, want %q", got, tc.want)
			}
			if got := f.bodies(); !slices.Equal(got, tc.bodies) {
				t.Errorf("bodies %q, want %q", got, tc.bodies)
			}
		})
	}
}

// A 452 to the first RCPT of a transaction that is about that recipient
// (a full mailbox, RFC 3463 X.2.2) defers it alone: the recipients after it
// still get the message. Deferring them all would do the same on every
// later try, since the next transaction starts with it again, until the
// message expires and every one of them bounces.
func TestSendRcpt452OneRecipient(t *testing.T) {
	for _, ehlo := range []string{sequentialEHLO, defaultEHLO} {
		port := freePort(t, "127.0.0.2")
		f := &fake{ehlo: []string{ehlo}, reply: func(cmd string) string {
			if cmd == "RCPT TO:<full@b.test>" {
				return "452 4.2.2 Mailbox full"
			}
			return ""
		}}
		startFake(t, "127.0.0.2", port, f)
		s := dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
		rs, err := s.Send(context.Background(), message("alice@a.test", []string{"full@b.test", "bob@b.test", "carol@b.test"}, text("x\n"), 2))
		if err != nil {
			t.Fatal(err)
		}
		wantOutcomes(t, rs, map[string]string{"full@b.test": "temp 452", "bob@b.test": "sent", "carol@b.test": "sent"})
		s.Close()
		// With PIPELINING full@b.test is tried once more in a transaction
		// of its own (its 452 may have been "too many recipients"), which
		// ends in an empty message for nobody (RFC 2920 §3.1).
		if got := slices.DeleteFunc(f.bodies(), func(b string) bool { return b == "" }); len(got) != 1 {
			t.Errorf("%d messages sent, want 1 (to bob and carol)", len(got))
		}
	}
}

// Dot-stuffing (RFC 5321 §4.5.2) on the wire, and a "." line at a 64 KiB
// boundary.
func TestSendDotStuffing(t *testing.T) {
	port := freePort(t, "127.0.0.2", "127.0.0.3")
	f := &fake{}
	startFake(t, "127.0.0.2", port, f)
	r := startReceiver(t, "127.0.0.3", port, testnet.SMTPOptions{})
	body := "Subject: dots\r\n\r\n.first\r\nhello\r\n.\r\nworld\r\n.hidden\r\n..two\r\n. \r\n.\r\n"
	wire := "Subject: dots\r\n\r\n..first\r\nhello\r\n..\r\nworld\r\n..hidden\r\n...two\r\n.. \r\n..\r\n"
	// "." lines starting exactly at octets 65536 and 131072 (the last one
	// without a line end).
	var big strings.Builder
	big.WriteString("Subject: boundary\r\n\r\n")
	for big.Len() < 65536-100 {
		big.WriteString(strings.Repeat("x", 98) + "\r\n")
	}
	big.WriteString(strings.Repeat("y", 65536-big.Len()-2) + "\r\n")
	big.WriteString(".\r\nafter\r\n")
	for big.Len() < 2*65536-200 {
		big.WriteString("z\r\n")
	}
	big.WriteString(strings.Repeat("w", 2*65536-big.Len()-2) + "\r\n.")
	for _, ip := range []string{"127.0.0.2", "127.0.0.3"} {
		s := dial(t, opts(port), host("mx.b.test", ip))
		for _, b := range []string{body, big.String()} {
			rs, err := s.Send(context.Background(), message("alice@a.test", []string{"bob@b.test"}, text(b), int64(len(b))))
			if err != nil || rs[0].Err != nil {
				t.Fatalf("%s: %v %v", ip, err, rs)
			}
		}
		s.Close()
	}
	w := f.bodies()
	if len(w) != 2 || w[0] != wire {
		t.Fatalf("on the wire: %.300q", w)
	}
	if !strings.Contains(w[1], "y\r\n..\r\nafter\r\n") || !strings.HasSuffix(w[1], "w\r\n..\r\n") {
		t.Errorf("on the wire, big message: len %d, ends %q", len(w[1]), w[1][len(w[1])-20:])
	}
	msgs := r.Messages()
	if len(msgs) != 2 || string(msgs[0].Data) != body || string(msgs[1].Data) != big.String()+"\r\n" {
		t.Errorf("stored bodies differ from the spooled ones")
	}
	if i, j := strings.Index(big.String(), "\r\n.\r\nafter"), big.Len()-1; i+2 != 65536 || j != 2*65536 {
		t.Fatalf("test setup: dot lines at %d and %d", i+2, j)
	}
}

// Command injection (RFC 5321 §4.1.2): an envelope with CR, LF, NUL or a bad
// address is refused locally and nothing of it reaches the server.
func TestSendInjection(t *testing.T) {
	port := freePort(t, "127.0.0.2")
	r := startReceiver(t, "127.0.0.2", port, testnet.SMTPOptions{})
	s := dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
	tests := []struct {
		from string
		to   []string
	}{
		{"alice@a.test", []string{"ok@b.test", "bob@b.test>\r\nRCPT TO:<spy@example.org"}},
		{"alice@a.test\r\nRSET", []string{"ok@b.test"}},
		{"alice@a.test", []string{"bo\x00b@b.test"}},
		{"alice@a.test", []string{"bob@b.test\nDATA"}},
		{"alice@a.test", []string{"no-at-sign"}},
		{"<spy@example.org>", []string{"ok@b.test"}},
	}
	for _, tc := range tests {
		src := text("x\n")
		rs, err := s.Send(context.Background(), message(tc.from, tc.to, src, 2))
		if err != nil {
			t.Fatal(err)
		}
		for _, res := range rs {
			var e *mta.Error
			if !errors.As(res.Err, &e) || !e.Permanent || e.Command != "local" {
				t.Errorf("%q -> %q: %v, want a permanent local error", tc.from, res.Rcpt, res.Err)
			}
		}
		if src.opens != 0 {
			t.Errorf("%q: message opened", tc.to)
		}
	}
	s.Close()
	cmds := r.Commands()
	if want := []string{"EHLO relay.a.test", "QUIT"}; !slices.Equal(cmds, want) {
		t.Errorf("commands %q, want only %q", cmds, want)
	}
}

// DATA refused and end-of-data replies apply to every accepted recipient.
func TestSendDataReplies(t *testing.T) {
	tests := []struct{ data, eod, want string }{
		{"554 5.7.1 no DATA for you", "", "perm 554"},
		{"451 4.3.0 try DATA later", "", "temp 451"},
		{"", "550 5.7.1 spam", "perm 550"},
		{"", "451 4.7.1 greylisted", "temp 451"},
	}
	for _, tc := range tests {
		port := freePort(t, "127.0.0.2")
		f := &fake{reply: func(cmd string) string {
			switch cmd {
			case "DATA":
				return tc.data
			case ".":
				return tc.eod
			}
			return ""
		}}
		startFake(t, "127.0.0.2", port, f)
		s := dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
		rs, err := s.Send(context.Background(), message("alice@a.test", []string{"a@b.test", "b@b.test"}, text("x\n"), 2))
		if err != nil {
			t.Fatal(err)
		}
		wantOutcomes(t, rs, map[string]string{"a@b.test": tc.want, "b@b.test": tc.want})
		// The session stays usable.
		rs, err = s.Send(context.Background(), message("alice@a.test", []string{"c@b.test"}, text("x\n"), 2))
		if err != nil || outcome(rs[0]) != tc.want {
			t.Errorf("next send: %v %v", err, rs)
		}
		s.Close()
		cmds := f.commands()
		if rset := slices.Contains(cmds, "RSET"); rset != (tc.data != "") {
			t.Errorf("%+v: RSET sent %v; want RSET only after an aborted transaction: %q", tc, rset, cmds)
		}
	}
}

func TestSendOpenError(t *testing.T) {
	port := freePort(t, "127.0.0.2")
	r := startReceiver(t, "127.0.0.2", port, testnet.SMTPOptions{})
	s := dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
	src := text("x\n")
	src.failOpen = io.ErrUnexpectedEOF
	rs, err := s.Send(context.Background(), message("alice@a.test", []string{"a@b.test"}, src, 2))
	if err != nil {
		t.Fatal(err)
	}
	wantOutcomes(t, rs, map[string]string{"a@b.test": "temp 4.3.0"})
	rs, err = s.Send(context.Background(), message("alice@a.test", []string{"a@b.test"}, text("x\n"), 2))
	if err != nil || rs[0].Err != nil {
		t.Fatalf("next send: %v %v", err, rs)
	}
	s.Close()
	if n := len(r.Messages()); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
}

// A reader failing mid-body must not become a truncated delivery: the
// connection is dropped before the final dot. The message is too large to
// be kept after measuring it for SIZE=, so DATA opens it again, and only
// that second reader fails.
func TestSendReadErrorMidData(t *testing.T) {
	port := freePort(t, "127.0.0.2")
	r := startReceiver(t, "127.0.0.2", port, testnet.SMTPOptions{})
	s := dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
	opened := 0
	src := &source{body: func() io.Reader {
		whole := strings.NewReader("Subject: half\n\n" + strings.Repeat("data\n", 20000))
		if opened++; opened == 1 {
			return whole
		}
		return io.MultiReader(io.LimitReader(whole, 50000), errReader{})
	}}
	rs, err := s.Send(context.Background(), message("alice@a.test", []string{"a@b.test"}, src, 100000))
	le := lostError(t, err)
	if !le.Safe {
		t.Error("Safe = false, but the final dot was never sent")
	}
	wantOutcomes(t, rs, map[string]string{"a@b.test": "temp 4.3.0"})
	src.check(t)
	if n := len(r.Messages()); n != 0 {
		t.Errorf("a truncated message was delivered")
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }
