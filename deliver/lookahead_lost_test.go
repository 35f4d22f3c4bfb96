package deliver

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mxflush/mxflush/mta"
)

// cutDialer's connections fail the first write that holds a final dot
// followed by more (a look-ahead's commands): the octets up to and with
// the dot get out, the rest does not (EPIPE), as when the send buffer
// fills or the peer resets mid-write.
type cutDialer struct{}

func (cutDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &cutConn{Conn: c}, nil
}

type cutConn struct {
	net.Conn
	cut bool
}

func (c *cutConn) Write(p []byte) (int, error) {
	if i := bytes.Index(p, []byte("\r\n.\r\n")); !c.cut && i >= 0 && i+5 < len(p) {
		c.cut = true
		n, err := c.Conn.Write(p[:i+5])
		if err == nil {
			err = syscall.EPIPE
		}
		return n, err
	}
	return c.Conn.Write(p)
}

// recordData is a fake.afterData that reads each message up to its final
// dot, records it with the fake's bodies and answers with reply("."), as
// the fake does; when the connection ends inside DATA, it sends on cut
// what arrived after the 354 (without blocking).
func (f *fake) recordData(cut chan<- string) func(net.Conn, *bufio.Reader) bool {
	return func(c net.Conn, br *bufio.Reader) bool {
		var body strings.Builder
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				select {
				case cut <- body.String() + l:
				default:
				}
				return false
			}
			if l == ".\r\n" {
				break
			}
			body.WriteString(l)
		}
		f.mu.Lock()
		f.wire = append(f.wire, body.String())
		f.mu.Unlock()
		r := f.reply(".")
		if r == "<close>" {
			return false
		}
		if r == "" {
			r = "250 2.0.0 queued as F1"
		}
		io.WriteString(c, r+"\r\n")
		return true
	}
}

// A look-ahead m2 whose MAIL, RCPT and DATA went out behind m1's final dot
// but that is never sent on that session: Close, a connection dropped right
// after m1's dot, or a Send of another message. The server, left in DATA,
// sees the connection end with nothing more (no QUIT, no body: it must not
// accept an empty message), m2's reader is closed, and a new session sends
// m2 normally. When m1's dot got out, m1 is not safe to resend (RFC 5321
// §4.1.1.4), even if the write that carried it failed on m2's commands.
func TestSendThenLookaheadNotSent(t *testing.T) {
	tests := []struct {
		name  string
		dot1  string // the reply to m1's final dot; "" is 250
		then  string // after m1: "close", or "send" m3 instead of m2
		lost  bool   // m1's SendThen loses the session, after the dot (not safe)
		want1 string // outcome of m1
		cut   bool   // the write of m1's dot and m2's commands fails after the dot (cutDialer)
	}{
		{"Close with the look-ahead sent", "", "close", false, "sent", false},
		{"dropped after m1's final dot", "<close>", "close", true, "temp 4.4.2", false},
		{"Send of another message", "", "send", false, "sent", false},
		{"write fails after m1's final dot", "", "close", true, "temp 4.4.2", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t, "127.0.0.2")
			dots := 0
			f := &fake{reply: func(cmd string) string {
				if cmd == "." {
					if dots++; dots == 1 {
						return tc.dot1
					}
				}
				return ""
			}}
			cut := make(chan string, 2)
			f.afterData = f.recordData(cut)
			startFake(t, "127.0.0.2", port, f)
			var trace bytes.Buffer
			o := opts(port)
			o.Debug = &trace
			if tc.cut {
				o.Dialer = cutDialer{}
			}
			hosts := []mta.Host{host("mx.b.test", "127.0.0.2")}
			s := mode{"pipelining", nil, true}.dial(t, o, hosts...)
			src1, src2, src3 := text("1\n"), text("2\n"), text("3\n")
			m1 := message("one@a.test", []string{"a@b.test"}, src1, 3)
			m2 := message("two@a.test", []string{"b@b.test"}, src2, 3)
			m3 := message("three@a.test", []string{"c@b.test"}, src3, 3)
			ctx := context.Background()

			calls := 0
			rs, err := s.SendThen(ctx, m1, func() (Message, bool) { calls++; return m2, true })
			if tc.lost {
				if le := lostError(t, err); le.Safe || le.Err.Command != "end of data" {
					t.Errorf("m1: lost %+v %+v, want not safe, at end of data", le, le.Err)
				}
			} else if err != nil {
				t.Fatalf("m1: %v", err)
			}
			wantOutcomes(t, rs, map[string]string{"a@b.test": tc.want1})
			// (The trace misses a write that failed.)
			if next := afterDot(traceLines(&trace)); calls != 1 || (!tc.cut && next != mailLine("two@a.test", 3)) {
				t.Fatalf("next called %d times, %q after m1's dot: want m2's commands behind it", calls, next)
			}
			if tc.then == "send" {
				rs, err := s.Send(ctx, m3)
				if le := lostError(t, err); !le.Safe {
					t.Errorf("Send of m3 instead of m2: lost %+v, want safe", le)
				}
				wantOutcomes(t, rs, map[string]string{"c@b.test": "temp 4.3.0"})
			}
			n := trace.Len()
			s.Close()
			if written := trace.String()[n:]; written != "" {
				t.Errorf("Close wrote %q, want nothing (the server is in DATA)", written)
			}
			transcript := []string{"EHLO relay.a.test", mailLine("one@a.test", 3), "RCPT TO:<a@b.test>", "DATA"}
			if !tc.lost { // the server read on and answered m2's group
				transcript = append(transcript, mailLine("two@a.test", 3), "RCPT TO:<b@b.test>", "DATA")
				select {
				case got := <-cut:
					if got != "" {
						t.Errorf("after m2's DATA the server got %q, want the connection to end with nothing", got)
					}
				case <-time.After(safeTimeout):
					t.Fatal("the server is still in m2's DATA: the connection was not dropped")
				}
			}
			for start := time.Now(); tc.cut && len(f.bodies()) == 0 && time.Since(start) < safeTimeout; {
				time.Sleep(5 * time.Millisecond) // m1's dot is on its way
			}
			wantTranscript(t, f, transcript)
			if b := f.bodies(); !slices.Equal(b, []string{"1\r\n"}) {
				t.Errorf("bodies %q, want m1's only", b)
			}
			if src2.opens != 1 || src3.opens != 0 {
				t.Errorf("opens: m2 %d, m3 %d; want 1 and 0", src2.opens, src3.opens)
			}
			src2.check(t)

			s2 := dial(t, opts(port), hosts...)
			if rs, err := s2.Send(ctx, m2); err != nil || rs[0].Err != nil {
				t.Fatalf("m2 on a new session: %v %v", err, rs)
			}
			if err := s2.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			wantTranscript(t, f, append(transcript, "EHLO relay.a.test", mailLine("two@a.test", 3), "RCPT TO:<b@b.test>", "DATA", "QUIT"))
			if b := f.bodies(); !slices.Equal(b, []string{"1\r\n", "2\r\n"}) {
				t.Errorf("bodies %q, want m1's and m2's", b)
			}
			for _, src := range []*source{src1, src2, src3} {
				src.check(t)
			}
		})
	}
}

// A server that lets the replies behind a delayed one overtake it (as
// smtp-sink -W does at the final dot) answers m1's dot with what is really
// m2's MAIL reply. The look-ahead's replies are read before m1's result
// counts: a 354 to its RCPT shows them out of step, so m1 is deferred
// (its dot went out: not safe to resend), never recorded as delivered on
// a reply that was not its own, and m2 was never sent.
func TestSendThenOutOfOrderAtDot(t *testing.T) {
	port := freePort(t, "127.0.0.2")
	f := &fake{reply: func(cmd string) string {
		switch {
		case cmd == ".":
			return "250 2.1.0 Ok" // MAIL's reply, overtaking the dot's
		case strings.HasPrefix(cmd, "MAIL") && strings.Contains(cmd, "SIZE=5"):
			return "250 2.1.5 Ok"
		case cmd == "RCPT TO:<m2@b.test>":
			return "354 End data with <CR><LF>.<CR><LF>"
		}
		return ""
	}}
	startFake(t, "127.0.0.2", port, f)
	s := dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
	m2 := text("m2.\n") // 5 octets as sent: SIZE=5 tells its MAIL from m1's
	next := func() (Message, bool) { return message("alice@a.test", []string{"m2@b.test"}, m2, 4), true }
	rs, err := s.SendThen(context.Background(), message("alice@a.test", []string{"m1@b.test"}, text("m1\n"), 2), next)
	le := lostError(t, err)
	if le.Safe {
		t.Errorf("Safe = true, but m1's final dot was sent")
	}
	if !le.Err.OutOfOrder || !strings.Contains(le.Err.Msg, ": 354 ") {
		t.Errorf("lost session error %+v, want OutOfOrder naming the 354 read for RCPT", le.Err)
	}
	if rs[0].Err == nil {
		t.Errorf("m1 recorded as delivered on %q, a reply that was not its own", rs[0].Reply)
	}
	s.Close()
	m2.check(t)
	if b := f.bodies(); len(b) != 1 {
		t.Errorf("bodies %q, want m1's only", b)
	}
}

// m1's end of data is accepted, then the server says 421 to the
// look-ahead's MAIL and closes: m1 is delivered (its reply came in step),
// and the session is lost safely for m2, whose final dot was never sent.
func TestSendThen421AfterDot(t *testing.T) {
	port := freePort(t, "127.0.0.2")
	f := &fake{reply: func(cmd string) string {
		if strings.HasPrefix(cmd, "MAIL") && strings.Contains(cmd, "SIZE=5") {
			return "421 4.3.2 shutting down\r\n<close>"
		}
		return ""
	}}
	startFake(t, "127.0.0.2", port, f)
	s := dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
	m2 := text("m2.\n") // 5 octets as sent: SIZE=5 tells its MAIL from m1's
	next := func() (Message, bool) { return message("alice@a.test", []string{"m2@b.test"}, m2, 4), true }
	rs, err := s.SendThen(context.Background(), message("alice@a.test", []string{"m1@b.test"}, text("m1\n"), 2), next)
	le := lostError(t, err)
	if !le.Safe {
		t.Errorf("Safe = false, but the look-ahead's final dot was never sent")
	}
	wantOutcomes(t, rs, map[string]string{"m1@b.test": "sent"})
	s.Close()
	m2.check(t)
	if b := f.bodies(); len(b) != 1 {
		t.Errorf("bodies %q, want m1's only", b)
	}
}
