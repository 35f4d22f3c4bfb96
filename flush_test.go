package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/mxflush/mxflush/internal/testnet"
)

// More domains than --max-conns: never more concurrent sessions than the
// limit, and exactly one session per domain when nothing fails.
func TestFlushConnectionLimitAndOneSessionPerDomain(t *testing.T) {
	ips := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7"}
	var records []string
	for i, ip := range ips {
		records = append(records, fmt.Sprintf("d%d.test. MX 10 mx.d%d.test.", i, i), fmt.Sprintf("mx.d%d.test. A %s", i, ip))
	}
	w := newWorld(t, ips, nil, records...)
	for i := range ips {
		for j := 0; j < 5; j++ {
			w.enqueue("alice@example.test", msg(fmt.Sprintf("m%d-%d", i, j)), fmt.Sprintf("u%d@d%d.test", j, i))
		}
	}
	code, out, errs := w.flush("--max-conns", "2")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	if got := w.gauge.Max(); got > 2 || got < 1 {
		t.Errorf("peak concurrent sessions = %d, want 1..2 (--max-conns 2)", got)
	}
	for ip, r := range w.recv {
		if r.Sessions() != 1 || len(r.Messages()) != 5 {
			t.Errorf("%s: %d sessions and %d messages, want 1 session carrying 5", ip, r.Sessions(), len(r.Messages()))
		}
	}
	if left := append(w.files("new"), w.files("cur")...); len(left) != 0 {
		t.Errorf("spool still holds %v after delivering everything", left)
	}
	if !strings.Contains(out, "total") || !strings.Contains(errs, "status=sent") {
		t.Errorf("summary or log lines missing:\n%s\n%s", out, errs)
	}
}

// A message with recipients in three domains goes once to each domain, with
// only that domain's recipients in RCPT TO, and the bytes each receiver got
// are the spooled message without envelope lines, CRLF-normalised.
func TestFlushThreeDomainMessageBytes(t *testing.T) {
	ips := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}
	w := newWorld(t, ips, nil,
		"a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2",
		"b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.3",
		"c.test. A 127.0.0.4") // no MX: implicit MX (RFC 5321 §5.1)
	body := "From: alice@example.test\nTo: x@a.test\nSubject: three\n\nline one\r\nbare cr\rline\n.\n..dots\nlast line without newline"
	w.enqueue("alice@example.test", body, "x@a.test", "y@b.test", "z@c.test", "w@a.test")
	if code, out, errs := w.flush(); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	want := "From: alice@example.test\r\nTo: x@a.test\r\nSubject: three\r\n\r\nline one\r\nbare cr\r\nline\r\n.\r\n..dots\r\nlast line without newline\r\n"
	rcpts := map[string][]string{"127.0.0.2": {"x@a.test", "w@a.test"}, "127.0.0.3": {"y@b.test"}, "127.0.0.4": {"z@c.test"}}
	for ip, r := range w.recv {
		got := r.Messages()
		if len(got) != 1 {
			t.Fatalf("%s got %d messages, want 1", ip, len(got))
		}
		if !slices.Equal(got[0].To, rcpts[ip]) {
			t.Errorf("%s: RCPT TO %v, want %v", ip, got[0].To, rcpts[ip])
		}
		if got[0].From != "alice@example.test" || got[0].Helo != "relay.test" {
			t.Errorf("%s: MAIL FROM %q, EHLO %q", ip, got[0].From, got[0].Helo)
		}
		if string(got[0].Data) != want {
			t.Errorf("%s: data\n%q\nwant\n%q", ip, got[0].Data, want)
		}
	}
}

// 4yz defers with the reply recorded; a later run sends only to the pending
// recipient with the same sender and removes the entry (greylisting: retry
// only the pending recipients).
func TestFlushDeferThenRetry(t *testing.T) {
	var mu sync.Mutex
	greylist := true
	w := newWorld(t, nil, func(string) testnet.SMTPOptions {
		return testnet.SMTPOptions{Rcpt: func(to string) error {
			mu.Lock()
			defer mu.Unlock()
			if greylist && to == "b@a.test" {
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "Greylisted, retry later"}
			}
			return nil
		}}
	}, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	body := "Subject: c13\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", 12000)
	w.enqueue("alice@example.test", body, "a@a.test", "b@a.test")
	code, out, errs := w.flush()
	if code != 75 {
		t.Fatalf("run 1: exit %d, want 75\n%s\n%s", code, out, errs)
	}
	cur := w.files("cur")
	if len(cur) != 1 || len(w.files("new")) != 0 {
		t.Fatalf("after run 1: cur=%v new=%v, want the message in cur/", cur, w.files("new"))
	}
	state, _ := os.ReadFile(filepath.Join(w.spool, "cur", cur[0]))
	head := string(state[:strings.Index(string(state), "Subject:")])
	if strings.Contains(head, "<a@a.test>") || !strings.Contains(head, "X-Envelope-To: <b@a.test>") ||
		!strings.Contains(head, "451 4.7.1 Greylisted") || !strings.Contains(head, "X-Envelope-Attempts: 1") {
		t.Errorf("state after run 1 should keep only b@ with its reply:\n%s", head)
	}
	code, out, _ = w.flush()
	if code != 0 || w.received() != 1 || !strings.Contains(out, "1 message(s) not due") {
		t.Errorf("a run before the retry time: exit %d, %d messages received, want 0 (nothing due) and still 1\n%s", code, w.received(), out)
	}
	mu.Lock()
	greylist = false
	mu.Unlock()
	if code, out, errs := w.flush("--all"); code != 0 {
		t.Fatalf("run 2: exit %d\n%s\n%s", code, out, errs)
	}
	msgs := w.recv["127.0.0.2"].Messages()
	if len(msgs) != 2 || !slices.Equal(msgs[1].To, []string{"b@a.test"}) || msgs[1].From != "alice@example.test" {
		t.Fatalf("run 2 delivered %+v, want b@a.test alone from alice", msgs)
	}
	if string(msgs[0].Data) != string(msgs[1].Data) {
		t.Error("the retried body differs from the first attempt's")
	}
	if left := append(w.files("new"), w.files("cur")...); len(left) != 0 {
		t.Errorf("entry not removed after run 2: %v", left)
	}
}
