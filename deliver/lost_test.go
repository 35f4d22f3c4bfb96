package deliver

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/mta"
)

// pattern yields n octets of CRLF text without holding them in memory.
func pattern(n int64) func() io.Reader {
	line := strings.Repeat("0123456789", 7) + "\r\n"
	return func() io.Reader {
		return io.MultiReader(strings.NewReader("Subject: big\r\n\r\n"),
			io.LimitReader(repeatReader(line), n))
	}
}

type repeatReader string

func (r repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		n += copy(p[n:], r)
	}
	return n, nil
}

// A 421 on a reused connection: the server says 421 right after accepting a
// message and closes; the next Send finds it at MAIL: lost, safe to resend on
// a fresh connection. Each lost-session test here runs with and without
// PIPELINING (eachMode): pipelined, the whole first group is written before
// the 421 is read.
func TestSendReused421(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		port := freePort(t, "127.0.0.2")
		f := &fake{ehlo: m.ehlo, reply: func(cmd string) string {
			if cmd == "." {
				return "250 2.0.0 queued\r\n421 4.4.2 mx.b.test closing: idle timeout\r\n<close>"
			}
			return ""
		}}
		sc := startFake(t, "127.0.0.2", port, f)
		hosts := []mta.Host{host("mx.b.test", "127.0.0.2")}
		s := m.dial(t, opts(port), hosts...)
		rs, err := s.Send(context.Background(), message("alice@a.test", []string{"bob@b.test"}, text("m1\n"), 3))
		if err != nil || rs[0].Err != nil {
			t.Fatalf("m1: %v %v", err, rs)
		}
		time.Sleep(20 * time.Millisecond) // let the 421 and the close arrive
		rs, err = s.Send(context.Background(), message("alice@a.test", []string{"carol@b.test"}, text("m2\n"), 3))
		le := lostError(t, err)
		if !le.Safe || le.Err.Permanent || le.Err.Command != "MAIL FROM" {
			t.Errorf("lost error %+v %+v, want safe, temporary, at MAIL FROM", le, le.Err)
		}
		if o := outcome(rs[0]); o != "temp 421" && o != "temp 4.4.2" {
			t.Errorf("carol: %s", o)
		}
		// A lost session refuses further work at once.
		rs2, err2 := s.Send(context.Background(), message("alice@a.test", []string{"dave@b.test"}, text("m3\n"), 3))
		if !errors.Is(err2, le) || rs2[0].Err == nil {
			t.Errorf("Send after loss: %v %v", err2, rs2)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close of a lost session: %v", err)
		}
		// The caller redials and delivers m2 in the same run.
		s2 := m.dial(t, opts(port), hosts...)
		rs, err = s2.Send(context.Background(), message("alice@a.test", []string{"carol@b.test"}, text("m2\n"), 3))
		if err != nil || rs[0].Err != nil {
			t.Fatalf("m2 on a new session: %v %v", err, rs)
		}
		if sc.Sessions() != 2 {
			t.Errorf("Sessions = %d, want 2", sc.Sessions())
		}
	})
}

// A drop in the middle of DATA: the server reads part of a big body, says 421
// and closes.
func TestSendDropMidData(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		port := freePort(t, "127.0.0.2")
		f := &fake{ehlo: m.ehlo, afterData: func(c net.Conn, br *bufio.Reader) bool {
			io.CopyN(io.Discard, br, 800<<10)
			io.WriteString(c, "421 4.3.0 Too busy, closing\r\n")
			return false
		}}
		startFake(t, "127.0.0.2", port, f)
		s := m.dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
		// 64 MiB: more than loopback's socket buffers can hold (a few MiB
		// each way), so the close is seen while the body is still being
		// written, before the final dot could be.
		src := &source{body: pattern(64 << 20)}
		rs, err := s.Send(context.Background(), message("alice@a.test", []string{"bob@b.test", "carol@b.test"}, src, 64<<20))
		le := lostError(t, err)
		if !le.Safe {
			t.Error("Safe = false, but the final dot was never sent")
		}
		wantOutcomes(t, rs, map[string]string{"bob@b.test": "temp 4.4.2", "carol@b.test": "temp 4.4.2"})
		src.check(t)
		if !errors.Is(le, syscall.ECONNRESET) && !errors.Is(le, syscall.EPIPE) {
			t.Logf("cause: %v", le)
		}
	})
}

// After the final dot: a close without reply, or a 421, is not safe to
// resend (the message may have been taken); a close before is.
func TestSendLostAfterDot(t *testing.T) {
	for _, tc := range []struct {
		name string
		eod  string
		want string
	}{
		{"close", "<close>", "temp 4.4.2"},
		{"421", "421 4.3.2 shutting down\r\n<close>", "temp 421"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				port := freePort(t, "127.0.0.2")
				f := &fake{ehlo: m.ehlo, reply: func(cmd string) string {
					if cmd == "." {
						return tc.eod
					}
					return ""
				}}
				startFake(t, "127.0.0.2", port, f)
				s := m.dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
				rs, err := s.Send(context.Background(), message("alice@a.test", []string{"bob@b.test"}, text("x\n"), 2))
				le := lostError(t, err)
				if le.Safe || le.Err.Command != "end of data" {
					t.Errorf("%q: %+v %+v, want unsafe at end of data", tc.eod, le, le.Err)
				}
				wantOutcomes(t, rs, map[string]string{"bob@b.test": tc.want})
			})
		})
	}
}

// Stalled servers: stalls end in temporary timeouts, quickly.
func TestSendStalls(t *testing.T) {
	tests := []struct {
		name    string
		reply   func(string) string
		set     func(*Options)
		big     bool
		safe    bool
		wantCmd string
	}{
		{
			name:    "no answer after RCPT",
			reply:   func(c string) string { return map[bool]string{true: "<stall>"}[strings.HasPrefix(c, "RCPT")] },
			set:     func(o *Options) { o.CommandTimeout = fastTimeout },
			safe:    true,
			wantCmd: "RCPT TO",
		},
		{
			name:    "stops reading mid-DATA",
			set:     func(o *Options) { o.DataTimeout = fastTimeout; o.Dialer = smallBufDialer{} },
			big:     true,
			safe:    true,
			wantCmd: "DATA",
		},
		{
			name:    "no answer to the final dot",
			reply:   func(c string) string { return map[bool]string{true: "<stall>"}[c == "."] },
			set:     func(o *Options) { o.FinalTimeout = fastTimeout },
			safe:    false,
			wantCmd: "end of data",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				port := freePort(t, "127.0.0.2")
				f := &fake{ehlo: m.ehlo, reply: tc.reply}
				if tc.big {
					f.afterData = func(c net.Conn, _ *bufio.Reader) bool {
						if tcp, ok := c.(*net.TCPConn); ok {
							tcp.SetReadBuffer(4096)
						}
						<-f.done // stop reading until the test ends
						return false
					}
				}
				startFake(t, "127.0.0.2", port, f)
				o := opts(port)
				tc.set(&o)
				s := m.dial(t, o, host("mx.b.test", "127.0.0.2"))
				src := text("x\n")
				if tc.big {
					src = &source{body: pattern(64 << 20)}
				}
				start := time.Now()
				rs, err := s.Send(context.Background(), message("alice@a.test", []string{"bob@b.test"}, src, 2))
				d := time.Since(start)
				le := lostError(t, err)
				if le.Safe != tc.safe || le.Err.Command != tc.wantCmd || !strings.Contains(le.Err.Msg, "timeout") {
					t.Errorf("lost %+v %+v, want Safe %v at %s, timeout", le, le.Err, tc.safe, tc.wantCmd)
				}
				wantOutcomes(t, rs, map[string]string{"bob@b.test": "temp 4.4.2"})
				src.check(t)
				if d > 2*time.Second {
					t.Errorf("took %v", d)
				}
			})
		})
	}
}

// smallBufDialer shrinks the send buffer so a receiver that stops reading
// blocks our writes after a few KiB, not megabytes.
type smallBufDialer struct{}

func (smallBufDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if tcp, ok := c.(*net.TCPConn); ok {
		tcp.SetWriteBuffer(4096)
	}
	return c, err
}

// A cancelled context ends a blocked Send at once, whatever it waits for.
func TestSendCancel(t *testing.T) {
	for _, stall := range []string{"RCPT", "DATA"} {
		t.Run(stall, func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				port := freePort(t, "127.0.0.2")
				f := &fake{ehlo: m.ehlo, reply: func(c string) string {
					if stall == "RCPT" && strings.HasPrefix(c, "RCPT") {
						return "<stall>"
					}
					return ""
				}}
				if stall == "DATA" {
					f.afterData = func(net.Conn, *bufio.Reader) bool { <-f.done; return false }
				}
				startFake(t, "127.0.0.2", port, f)
				o := opts(port)
				o.Dialer = smallBufDialer{}
				s := m.dial(t, o, host("mx.b.test", "127.0.0.2"))
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				start := time.Now()
				src := &source{body: pattern(64 << 20)}
				rs, err := s.Send(ctx, message("alice@a.test", []string{"bob@b.test", "carol@b.test"}, src, 2))
				cancel()
				le := lostError(t, err)
				if !le.Safe || !strings.Contains(le.Err.Msg, "canceled") || !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("%s: lost error %v, want the context's", stall, le)
				}
				wantOutcomes(t, rs, map[string]string{"bob@b.test": "temp 4.4.2", "carol@b.test": "temp 4.4.2"})
				for _, r := range rs {
					if !strings.Contains(r.Reply, "canceled") {
						t.Errorf("%s: reply %q does not name the cancellation", stall, r.Reply)
					}
				}
				src.check(t)
				if d := time.Since(start); d > time.Second {
					t.Errorf("%s: took %v after the context ended", stall, d)
				}
			})
		})
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		reply            mta.Reply // a reply to RCPT, or
		err              error     // a failure without one
		perm, lost       bool
		code             int
		status, msg, rep string
	}{
		{reply: mta.Reply{Code: 550, Status: "5.1.1", Lines: []string{"No such user"}}, perm: true, code: 550, status: "5.1.1", msg: "No such user", rep: "550 5.1.1 No such user"},
		{reply: mta.Reply{Code: 451, Lines: []string{"a", "b"}}, code: 451, status: "4.0.0", msg: "a; b", rep: "451 4.0.0 a; b"},
		{reply: mta.Reply{Code: 552, Lines: []string{"too big"}}, perm: true, code: 552, status: "5.0.0", msg: "too big", rep: "552 5.0.0 too big"},
		{reply: mta.Reply{Code: 421, Status: "4.4.2", Lines: []string{"bye"}}, lost: true, code: 421, status: "4.4.2", msg: "bye", rep: "421 4.4.2 bye"},
		{reply: mta.Reply{Code: 354, Lines: []string{"go on"}}, lost: true, code: 354, status: "4.5.0", msg: "go on", rep: "354 4.5.0 go on"},
		{err: io.EOF, lost: true, status: "4.4.2", msg: "connection closed by the server", rep: "4.4.2 connection closed by the server"},
		{err: &net.OpError{Op: "read", Err: syscall.ECONNRESET}, lost: true, status: "4.4.2", msg: "connection reset by the server"},
		{err: errors.New("mystery"), lost: true, status: "4.4.2", msg: "connection error: mystery"},
	}
	for _, tc := range tests {
		var e *mta.Error
		lost := true
		if tc.err != nil {
			e = ioError("RCPT TO", tc.err)
		} else {
			e, lost = judge("RCPT TO", 2, tc.reply)
		}
		if e.Permanent != tc.perm || lost != tc.lost || e.Code != tc.code || e.Status != tc.status || e.Msg != tc.msg || e.Command != "RCPT TO" {
			t.Errorf("classify(%v%v) = %+v lost %v", tc.reply, tc.err, e, lost)
		}
		if tc.rep != "" && e.Reply() != tc.rep {
			t.Errorf("Reply() = %q, want %q", e.Reply(), tc.rep)
		}
		if tc.err != nil && !errors.Is(e, tc.err) {
			t.Errorf("%v does not wrap %v", e, tc.err)
		}
	}
	e := &mta.Error{Permanent: true, Code: 550, Status: "5.1.1", Command: "RCPT TO", Msg: "No such user"}
	if got := e.Error(); got != "permanent: RCPT TO: 550 5.1.1 No such user" {
		t.Errorf("Error() = %q", got)
	}
}

func BenchmarkSend(b *testing.B) {
	port := freePort(b, "127.0.0.2")
	r := startReceiver(b, "127.0.0.2", port, testnet.SMTPOptions{Data: func(string, []string, []byte) error { return nil }})
	_ = r
	s := dial(b, opts(port), host("mx.b.test", "127.0.0.2"))
	body := "From: alice@a.test\nTo: bob@b.test\nSubject: bench\n\n" + strings.Repeat("Hello from the benchmark.\n", 40)
	src := text(body)
	m := message("alice@a.test", []string{"bob@b.test"}, src, int64(len(body)))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		rs, err := s.Send(context.Background(), m)
		if err != nil || rs[0].Err != nil {
			b.Fatal(err, rs)
		}
	}
}
