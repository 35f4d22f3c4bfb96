package batch

import (
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/spool"
)

// Each case queues one message to rcpts and runs once: the outcome of
// every recipient (with its enhanced status, RFC 3463), the queue the file
// lands in and what the receiver got are checked. DNS answers decide some:
// a null MX (RFC 7505) and NXDOMAIN fail, SERVFAIL defers; an address
// literal is delivered to its address, a source route to its last hop
// (RFC 5321 §4.1.1.3, Appendix C); a malformed address fails with 5.1.3
// without failing its message's other recipients; a message whose
// envelope is damaged goes to bad/ untried.
func TestRunOutcomes(t *testing.T) {
	zone := []string{
		"a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2",
		"nullmx.test. MX 0 .", "nullmx.test. A 127.0.0.2", // null MX: the A record must not be used
		"servfail.test. MX 10 mx.a.test.",
		"idn.xn--bcher-kva.test. MX 10 mx.a.test.",
	}
	tests := []struct {
		name      string
		rcpts     []string
		status    map[string]string // recipient -> "sent", "bounced 5.1.1", "deferred 4.4.3" ...
		queue     string            // where the file is afterwards: "" (removed), "cur", "failed", "bad"
		delivered []string          // RCPT TO seen by the receiver in accepted messages
	}{
		{"5yz fails", []string{"gone@a.test"}, map[string]string{"gone@a.test": "bounced 5.1.1"}, "failed", nil},
		{"mixed RCPT replies", []string{"gone@a.test", "bob@a.test", "busy@a.test"},
			map[string]string{"gone@a.test": "bounced 5.1.1", "bob@a.test": "sent", "busy@a.test": "deferred 4.2.1"}, "cur", []string{"bob@a.test"}},
		{"null MX", []string{"x@nullmx.test"}, map[string]string{"x@nullmx.test": "bounced 5.1.10"}, "failed", nil},
		{"NXDOMAIN, no implicit MX", []string{"x@missing.test"}, map[string]string{"x@missing.test": "bounced 5.1.2"}, "failed", nil},
		{"SERVFAIL defers", []string{"x@servfail.test"}, map[string]string{"x@servfail.test": "deferred 4.4.3"}, "cur", nil},
		{"address literal", []string{"bob@[127.0.0.2]"}, map[string]string{"bob@[127.0.0.2]": "sent"}, "", []string{"bob@[127.0.0.2]"}},
		{"malformed address literal", []string{"dan@[999.1.1.1]", "bob@a.test"},
			map[string]string{"dan@[999.1.1.1]": "bounced 5.1.3", "bob@a.test": "sent"}, "failed", []string{"bob@a.test"}},
		{"source route", []string{"@hop1.example.test,@hop2.example.test:bob@a.test"},
			map[string]string{"bob@a.test": "sent"}, "", []string{"bob@a.test"}}, // reported without the route
		{"malformed source route", []string{"@hop1.example.test;bob@a.test"}, map[string]string{"@hop1.example.test;bob@a.test": "bounced 5.1.3"}, "failed", nil},
		{"space in a source route is damage", []string{"@hop1.example.test bob@a.test"}, map[string]string{}, "bad", nil},
		{"IDN domain in A-label form", []string{"user@idn.bücher.test"}, map[string]string{"user@idn.bücher.test": "sent"}, "", []string{"user@idn.xn--bcher-kva.test"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, []string{"127.0.0.2"}, zone...)
			r := w.receive("127.0.0.2", testnet.SMTPOptions{Rcpt: func(to string) error {
				if strings.HasPrefix(to, "gone@") {
					return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
				}
				if strings.HasPrefix(to, "busy@") {
					return &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "Mailbox busy"}
				}
				return nil
			}})
			w.dns.SetRcode("servfail.test", dns.RcodeServerFailure)
			w.cfg.NoBounce = true // bounces are tested in bounce_test.go
			w.put("new", "1.outcome", envelope("<alice@example.test>", tc.rcpts...)+"Subject: t\n\nhello\n")
			sum := w.run()
			for rcpt, want := range tc.status {
				ev := w.outcomes(rcpt)
				got := ""
				if len(ev) == 1 {
					got = string(ev[0].Status)
					if ev[0].Status != Sent {
						got += " " + ev[0].DSN
					}
				}
				if got != want {
					t.Errorf("%s: %+v, want %s", rcpt, ev, want)
				}
				if reply := map[string]string{"gone@a.test": "550 5.1.1 No such user", "busy@a.test": "450 4.2.1 Mailbox busy"}[rcpt]; reply != "" && (len(ev) != 1 || ev[0].Reply != reply) {
					t.Errorf("%s: %+v, want the reply %q", rcpt, ev, reply)
				}
			}
			if tc.queue == "bad" && (len(sum.Problems) != 1 || sum.Problems[0].IOError || sum.Problems[0].MovedTo == "") {
				t.Errorf("problems %+v, want the file moved aside", sum.Problems)
			}
			for _, q := range []string{spool.QueueNew, spool.QueueCur, "failed", "bad"} {
				n := 0
				for _, f := range w.files(q) {
					if !strings.HasSuffix(f, ".reason") {
						n++
					}
				}
				if (q == tc.queue) != (n == 1) || n > 1 {
					t.Errorf("%s/ holds %d files, want the message in %q", q, n, tc.queue)
				}
			}
			var got []string
			for _, m := range r.Messages() {
				got = append(got, m.To...)
			}
			if !slices.Equal(got, tc.delivered) {
				t.Errorf("receiver accepted %v, want %v", got, tc.delivered)
			}
			if strings.Contains(tc.name, "null MX") && r.Sessions() != 0 {
				t.Error("a connection was made for a null MX domain")
			}
		})
	}
}
