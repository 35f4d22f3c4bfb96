package deliver

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Against Postfix's smtp-sink -W .:1, which delays its reply to a final dot
// by a second and answers the look-ahead group behind the dot first: the
// reply read for m1's dot is not its own, so the session is lost out of
// order (RFC 2920 §3.1), m1 is not recorded as delivered and is not safe
// to resend (its dot went out), and m2, the look-ahead, was never sent. A
// session without PIPELINING (Options.NoPipelining) then sends m2, and the
// sink holds each message once. TestSendThenOutOfOrderAtDot checks the
// same with a scripted server and an exact transcript.
func TestSendThenSmtpSinkDelayedDot(t *testing.T) {
	port := freePort(t, "127.0.0.2")
	dir := startSink(t, port, "-W", ".:1")
	h := host("sink.b.test", "127.0.0.2")
	s := dial(t, opts(port), h)
	m1, m2 := text("Subject: m1\n\none\n"), text("Subject: m2\n\ntwo\n")
	next := func() (Message, bool) { return message("alice@a.test", []string{"m2@b.test"}, m2, 17), true }
	rs, err := s.SendThen(context.Background(), message("alice@a.test", []string{"m1@b.test"}, m1, 17), next)
	le := lostError(t, err)
	if le.Safe || !le.Err.OutOfOrder || le.Err.Permanent {
		t.Errorf("lost %+v (%+v), want a temporary loss out of order, not safe to resend m1", le, le.Err)
	}
	if len(rs) != 1 || rs[0].Err == nil {
		t.Errorf("m1's results %+v: recorded as delivered on a reply that was not its own", rs)
	}
	s.Close()
	m1.check(t)
	m2.check(t)

	o := opts(port)
	o.NoPipelining = true
	s2 := dial(t, o, h)
	rs, err = s2.Send(context.Background(), message("alice@a.test", []string{"m2@b.test"}, m2, 17))
	if err != nil {
		t.Fatalf("m2 without PIPELINING: %v", err)
	}
	wantOutcomes(t, rs, map[string]string{"m2@b.test": "sent"})
	if err := s2.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	// The dump is written as smtp-sink goes; wait for m2's envelope.
	var got string
	for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(20 * time.Millisecond) {
		files, _ := filepath.Glob(filepath.Join(dir, "dump*"))
		got = ""
		for _, name := range files {
			b, _ := os.ReadFile(name)
			got += string(b)
		}
		if strings.Contains(got, "X-Rcpt-Args: <m2@b.test>") {
			break
		}
	}
	for _, rcpt := range []string{"m1@b.test", "m2@b.test"} {
		if n := strings.Count(got, "X-Rcpt-Args: <"+rcpt+">"); n != 1 {
			t.Errorf("the sink holds %d copies for %s, want 1:\n%s", n, rcpt, got)
		}
	}
}
