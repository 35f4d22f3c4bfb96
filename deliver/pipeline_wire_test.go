package deliver

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mxflush/mxflush/internal/testnet"
)

// The protocol trace (Options.Debug) shows each command and each reply
// once, in the order they crossed the wire (a pipelined group first, then
// its replies), and the body as sent (dot-stuffed).
func TestSendTrace(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		port := freePort(t, "127.0.0.2")
		f := &fake{ehlo: m.ehlo, reply: func(cmd string) string {
			return map[string]string{
				"MAIL FROM:<alice@a.test> BODY=8BITMIME SIZE=14": "250 2.1.0 sender ok",
				"RCPT TO:<a@b.test>":                             "250 2.1.5 a ok",
				"RCPT TO:<b@b.test>":                             "250 2.1.5 b ok",
				"DATA":                                           "354 send it",
				".":                                              "250 2.0.0 queued as T1",
			}[cmd]
		}}
		startFake(t, "127.0.0.2", port, f)
		var trace bytes.Buffer
		o := opts(port)
		o.Debug = &trace
		s := m.dial(t, o, host("mx.b.test", "127.0.0.2"))
		rs, err := s.Send(context.Background(), message("alice@a.test", []string{"a@b.test", "b@b.test"}, text("S: t\n\n.dot\n"), 12))
		if err != nil || rs[0].Err != nil || rs[1].Err != nil {
			t.Fatalf("Send: %v %v", err, rs)
		}
		s.Close()
		cmds := []string{"MAIL FROM:<alice@a.test> BODY=8BITMIME SIZE=14", "RCPT TO:<a@b.test>", "RCPT TO:<b@b.test>", "DATA"}
		replies := []string{"250 2.1.0 sender ok", "250 2.1.5 a ok", "250 2.1.5 b ok", "354 send it"}
		envelope := m.pick(
			[]string{cmds[0], replies[0], cmds[1], replies[1], cmds[2], replies[2], cmds[3], replies[3]},
			slices.Concat(cmds, replies))
		want := slices.Concat([]string{"220 fake.b.test ESMTP", "EHLO relay.a.test"},
			strings.Split(strings.TrimSuffix(m.ehlo[0], "\r\n"), "\r\n"), envelope,
			[]string{"S: t", "", "..dot", ".", "250 2.0.0 queued as T1", "QUIT", "221 2.0.0 bye"})
		if got := trace.String(); got != strings.Join(want, "\r\n")+"\r\n" {
			t.Errorf("trace\n%s\nwant\n%s", got, strings.Join(want, "\r\n"))
		}
	})
}

// CommandTimeout bounds each command's reply (RFC 5321 §4.5.3.2.2-4), not
// the whole envelope: a server that takes a while over every RCPT, each
// well within the limit, gets the message however many RCPTs add up past
// it.
func TestSendCommandTimeoutPerReply(t *testing.T) {
	const n, delay = 15, fastTimeout / 10 // n*delay is 1.5 CommandTimeouts
	eachMode(t, func(t *testing.T, m mode) {
		port := freePort(t, "127.0.0.2")
		f := &fake{ehlo: m.ehlo, reply: func(cmd string) string {
			if strings.HasPrefix(cmd, "RCPT") {
				time.Sleep(delay)
			}
			return ""
		}}
		startFake(t, "127.0.0.2", port, f)
		o := opts(port)
		o.CommandTimeout = fastTimeout
		s := m.dial(t, o, host("mx.b.test", "127.0.0.2"))
		to := make([]string, n)
		for i := range to {
			to[i] = fmt.Sprintf("r%d@b.test", i)
		}
		rs, err := s.Send(context.Background(), message("alice@a.test", to, text("x\n"), 2))
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		for _, r := range rs {
			if r.Err != nil {
				t.Errorf("%s: %v", r.Rcpt, r.Err)
			}
		}
	})
}

// startSink runs Postfix's smtp-sink on 127.0.0.2:port (see
// testnet.StartSink), dumping every transaction into the returned
// directory; it skips the test when smtp-sink is not installed (.ci/run
// installs it). extra are more options (-p hides PIPELINING).
func startSink(t *testing.T, port int, extra ...string) (dumpDir string) {
	t.Helper()
	path := testnet.SinkPath()
	if path == "" {
		t.Skip("smtp-sink (Debian package postfix) is not installed")
	}
	dir := t.TempDir()
	sink, err := testnet.StartSink(path, addrOf("127.0.0.2", port), dir, extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if out := sink.Close(); t.Failed() {
			t.Log(out)
		}
	})
	return dir
}

// Against Postfix's smtp-sink, an independent server, with and without
// PIPELINING (-p): three messages of two recipients each over one session
// are all accepted, and its dump (-D) holds each envelope and body as sent.
func TestSendSmtpSink(t *testing.T) {
	for _, m := range []struct {
		name  string
		extra []string
	}{{"pipelining", nil}, {"sequential", []string{"-p"}}} {
		t.Run(m.name, func(t *testing.T) {
			port := freePort(t, "127.0.0.2")
			dir := startSink(t, port, m.extra...)
			s := mode{m.name, nil, m.extra == nil}.dial(t, opts(port), host("sink.b.test", "127.0.0.2"))
			var want []string
			for i := range 3 {
				body := fmt.Sprintf("Subject: m%d\n\nbody %d\n.dot\n", i, i)
				to := []string{fmt.Sprintf("u%d@b.test", i), "all@b.test"}
				rs, err := s.Send(context.Background(), message("alice@a.test", to, text(body), int64(len(body))))
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				for _, r := range rs {
					if r.Err != nil || !strings.HasPrefix(r.Reply, "250 ") {
						t.Errorf("message %d, %s: %v %q, want 250", i, r.Rcpt, r.Err, r.Reply)
					}
				}
				want = append(want, fmt.Sprintf("X-Mail-Args: <alice@a.test> BODY=8BITMIME\nX-Rcpt-Args: <u%d@b.test>\nX-Rcpt-Args: <all@b.test>\n", i),
					fmt.Sprintf("Subject: m%d\n\nbody %d\n.dot\n\n", i, i))
			}
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			// The dump is written as smtp-sink goes; wait for the last body.
			var got string
			for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(20 * time.Millisecond) {
				files, _ := filepath.Glob(filepath.Join(dir, "dump*"))
				got = ""
				for _, name := range files {
					b, _ := os.ReadFile(name)
					got += string(b)
				}
				if strings.Contains(got, want[len(want)-1]) {
					break
				}
			}
			rest := got
			for _, w := range want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("dump lacks %q (in order):\n%s", w, got)
				}
				rest = rest[i+len(w):]
			}
			if n := strings.Count(got, "X-Mail-Args:"); n != 3 {
				t.Errorf("dump holds %d transactions, want 3:\n%s", n, got)
			}
		})
	}
}

// A pipelined group answered out of order, as smtp-sink does when it
// delays one reply (-W) and answers the commands behind it first: the 503
// meant for DATA is read as a RCPT's (or MAIL's) reply, and DATA gets a
// 250. The 250 (or a 354 to RCPT) shows the replies are out of step, so no refusal read from
// the group may fail a recipient: the session is lost, safe to send again,
// and every recipient is unresolved (temporary), none bounced.
func TestSendOutOfOrderReplies(t *testing.T) {
	tests := []struct {
		name    string
		replies map[string]string // by command line
	}{
		{"RCPT reply overtaken", map[string]string{
			"RCPT TO:<b@b.test>": "503 5.5.1 Error: need RCPT command",
			"DATA":               "250 2.1.5 Ok",
		}},
		{"MAIL reply overtaken", map[string]string{
			"MAIL FROM:<alice@a.test> BODY=8BITMIME SIZE=3": "503 5.5.1 Error: need MAIL command",
			"RCPT TO:<a@b.test>":                            "503 5.5.1 Error: need RCPT command",
			"RCPT TO:<b@b.test>":                            "503 5.5.1 Error: need RCPT command",
			"DATA":                                          "250 2.1.0 Ok",
		}},
		// A reply of the wrong class in the middle of the group ends it
		// there: the 550 read before it may be another command's too, so
		// it is not kept as it would be before a 421.
		{"354 to RCPT after a 550", map[string]string{
			"RCPT TO:<a@b.test>": "550 5.1.1 No such user",
			"RCPT TO:<b@b.test>": "354 go ahead",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t, "127.0.0.2")
			f := &fake{reply: func(cmd string) string { return tc.replies[cmd] }}
			startFake(t, "127.0.0.2", port, f)
			s := dial(t, opts(port), host("mx.b.test", "127.0.0.2"))
			rs, err := s.Send(context.Background(), message("alice@a.test", []string{"a@b.test", "b@b.test"}, text("x\n"), 2))
			le := lostError(t, err)
			if !le.Safe {
				t.Errorf("lost session not safe to resend: %v", le)
			}
			if !le.Err.OutOfOrder || le.Err.Permanent {
				t.Errorf("lost session error %+v, want a temporary one marked OutOfOrder", le.Err)
			}
			for _, r := range rs {
				if !le.Unresolved(r) {
					t.Errorf("%s: %v (%s), want unresolved, the session's error", r.Rcpt, r.Err, outcome(r))
				}
			}
			if b := f.bodies(); len(b) != 0 {
				t.Errorf("bodies %q, want none", b)
			}
		})
	}
}
