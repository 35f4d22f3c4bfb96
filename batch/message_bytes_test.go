package batch

import (
	"slices"
	"testing"

	"github.com/mxflush/mxflush/internal/testnet"
)

// A message with recipients in three domains goes once to each domain, with
// only that domain's recipients in RCPT TO, and the bytes each receiver got
// are the spooled message without envelope lines, CRLF-normalised and
// dot-stuffed on the wire (go-smtp removes the stuffing).
func TestThreeDomainMessageBytes(t *testing.T) {
	ips := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}
	w := newWorld(t, ips,
		"a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2",
		"b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.3",
		"c.test. A 127.0.0.4") // no MX: implicit MX (RFC 5321 §5.1)
	for _, ip := range ips {
		w.receive(ip, testnet.SMTPOptions{})
	}
	body := "From: alice@example.test\nTo: x@a.test\nSubject: three\n\nline one\r\nbare cr\rline\n.\n..dots\nlast line without newline"
	w.put("new", "1.three", "X-Envelope-From: <alice@example.test>\nX-Envelope-To: <x@a.test>\nX-Envelope-To: <y@b.test>\n"+
		"X-Envelope-To: <z@c.test>\nX-Envelope-To: <w@a.test>\n"+body)
	if sum := w.run(); sum.Totals.Delivered != 4 || sum.Totals.Deferred+sum.Totals.Failed != 0 {
		t.Fatalf("totals %+v, want the 4 recipients delivered", sum.Totals)
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
