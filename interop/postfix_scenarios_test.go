//go:build linux

package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mxflush/mxflush/internal/testnet"
)

// mxDNS starts an in-process DNS server with domain's MX pointing at host,
// and host's address ip: the Postfix tests look up their MX there (the
// nsd and unbound chain is the DNS tests' subject).
func mxDNS(t *testing.T, domain, host, ip string) string {
	t.Helper()
	d, err := testnet.StartDNS(domain+". MX 10 "+host+".", host+". A "+ip)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d.Addr()
}

// ehloKeywords returns the keywords of Postfix's EHLO reply on addr.
func ehloKeywords(t *testing.T, addr string) []string {
	t.Helper()
	c, r := greet(t, addr)
	fmt.Fprintf(c, "EHLO client.test\r\n")
	var kw []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if len(line) > 4 {
			f := strings.Fields(line[4:])
			if len(f) > 0 {
				kw = append(kw, strings.ToUpper(f[0]))
			}
		}
		if len(line) < 4 || line[3] != '-' {
			break
		}
	}
	fmt.Fprintf(c, "QUIT\r\n")
	return kw[1:] // the first line is the greeting name
}

// Postfix with its defaults (PIPELINING, 8BITMIME, SIZE, STARTTLS) gets
// every message once, verified TLS to the MX host's name, and the body
// exactly as queued: a line that is a lone dot and lines that start with
// dots survive the dot-stuffing both ways, an 8-bit UTF-8 body goes as
// BODY=8BITMIME, and a message to two recipients is one transaction.
func TestPostfixDefaults(t *testing.T) {
	pf := needPostfix(t)
	t.Parallel()
	dns := mxDNS(t, "normal.test", "normal.pf.test", ipNormal)
	spool := newSpool(t)
	dots := message("dots", "ok1@normal.test, ok2@normal.test",
		"First line.\r\n.\r\n..two dots\r\n.leading dot\r\n \r\n.\r\nlast line\r\n")
	utf8 := message("utf8", "ok1@normal.test", "Grüße aus Köln: 8-bit, sent as BODY=8BITMIME.\r\n")
	// A body line of 2500 octets is broken every 998 (RFC 5322 §2.1.1).
	line := strings.Repeat("0123456789", 250)
	long := message("long", "ok3@normal.test", line+"\r\n")
	longSent := message("long", "ok3@normal.test", line[:998]+"\r\n"+line[998:1996]+"\r\n"+line[1996:]+"\r\n")
	// A sender with a UTF-8 local part goes with SMTPUTF8 (RFC 6531).
	intl := strings.ReplaceAll(message("intl", "ok4@normal.test", "From J\xc3\xb6rg.\r\n"), sender, "j\xc3\xb6rg@origin.test")
	enqueue(t, spool, dots, "ok1@normal.test", "ok2@normal.test")
	enqueue(t, spool, utf8, "ok1@normal.test")
	enqueue(t, spool, long, "ok3@normal.test")
	if r := mxflush(t, intl, "enqueue", "--spool", spool, "-f", "j\xc3\xb6rg@origin.test", "ok4@normal.test"); r.code != 0 {
		t.Fatalf("enqueue: %v", r)
	}

	r := flush(t, spool, dns, pf.port, "--tls", "verify", "--tls-ca", pf.caFile)
	wantExit(t, r, 0)
	relay := fmt.Sprintf("normal.pf.test[%s]:%d", ipNormal, pf.port)
	ids := map[string]bool{} // Postfix's queue IDs for ok1's two messages
	for _, rc := range []string{"ok1@normal.test", "ok2@normal.test", "ok3@normal.test", "ok4@normal.test"} {
		lines := outcomes(r)[rc]
		if want := map[bool]int{true: 2, false: 1}[rc == "ok1@normal.test"]; len(lines) != want {
			t.Errorf("%s: %d log lines, want %d", rc, len(lines), want)
		}
		for _, o := range lines {
			if o.status != "sent" || o.relay != relay || o.tls != "TLSv1.3:verified" || !strings.HasPrefix(o.reply, "250 2.0.0 Ok: queued as ") {
				t.Errorf("%s: %+v, want sent by %s over TLSv1.3:verified", rc, o, relay)
			}
			if f := queuedAs.FindStringSubmatch(o.reply); f != nil && rc == "ok1@normal.test" {
				ids[f[1]] = true
			} else if f != nil && rc == "ok2@normal.test" && !ids[f[1]] {
				t.Errorf("ok2 got the message in transaction %s, ok1 in %v: want one transaction for both", f[1], ids)
			}
		}
	}
	pf.idle(t)
	pf.wantMailbox(t, "ok1@normal.test", dots, utf8)
	pf.wantMailbox(t, "ok2@normal.test", dots)
	pf.wantMailbox(t, "ok3@normal.test", longSent)
	pf.wantMailbox(t, "ok4@normal.test", intl)
	// Postfix's Received field says the session used SMTPUTF8.
	if raw := pf.raw(t, "ok4@normal.test"); len(raw) != 1 || !strings.HasPrefix(raw[0], "Return-Path: <j\xc3\xb6rg@origin.test>\n") || !strings.Contains(raw[0], " with UTF8SMTPS id ") {
		t.Errorf("ok4: want one message from j\xc3\xb6rg@origin.test received with UTF8SMTPS:\n%q", raw)
	}
}

// Postfix told to refuse a bare LF in DATA (smtpd_forbid_bare_newline =
// reject, the defence against SMTP smuggling) accepts a message queued
// with bare LF and bare CR line endings: mxflush sends every line ending
// as CRLF.
func TestPostfixBareNewline(t *testing.T) {
	pf := needPostfix(t)
	t.Parallel()
	addr := fmt.Sprintf("%s:%d", ipNormal, pf.port)

	// The receiver does refuse a bare LF: what mxflush avoids is real.
	c, r := greet(t, addr)
	for _, cmd := range []string{"EHLO client.test", "MAIL FROM:<" + sender + ">", "RCPT TO:<ok2@bare.test>", "DATA"} {
		fmt.Fprintf(c, "%s\r\n", cmd)
		if line := reply(t, r); !strings.HasPrefix(line, "2") && !strings.HasPrefix(line, "3") {
			t.Fatalf("%s: %q", cmd, line)
		}
	}
	fmt.Fprintf(c, "Subject: bare\r\n\r\none\ntwo\r\n.\r\n")
	if line := reply(t, r); !strings.HasPrefix(line, "5") {
		t.Fatalf("Postfix took a bare LF: %q (smtpd_forbid_bare_newline = reject not in force)", line)
	}

	dns := mxDNS(t, "bare.test", "bare.pf.test", ipNormal)
	spool := newSpool(t)
	lf := message("bare", "ok1@bare.test", "") + "bare LF\nthen CRLF\r\nthen a bare CR\rend\n"
	lf = strings.Replace(lf, "Subject: bare\r\n", "Subject: bare\n", 1)
	enqueue(t, spool, lf, "ok1@bare.test")
	res := flush(t, spool, dns, pf.port)
	wantExit(t, res, 0)
	wantOutcome(t, res, "ok1@bare.test", "sent", "2.0.0", "250 2.0.0 Ok: queued as ")
	pf.idle(t)
	pf.wantMailbox(t, "ok1@bare.test", lf)
}

// queuedAs matches the queue ID in Postfix's reply to DATA.
var queuedAs = regexp.MustCompile(`queued as (\w+)`)

// Postfix with smtpd_recipient_limit = 3 answers the fourth RCPT of a
// transaction 452 4.5.3: the seven recipients of one message go in three
// transactions (3, 3, 1) on the same session, each gets one copy, and the
// run exits 0.
func TestPostfixRecipientLimit(t *testing.T) {
	pf := needPostfix(t)
	t.Parallel()
	dns := mxDNS(t, "limit.test", "limit.pf.test", ipLimit)
	spool := newSpool(t)
	var rcpts []string
	for i := 1; i <= 7; i++ {
		rcpts = append(rcpts, fmt.Sprintf("ok%d@limit.test", i))
	}
	m := message("seven", "list@limit.test", "One message, seven recipients.\r\n")
	enqueue(t, spool, m, rcpts...)
	r := flush(t, spool, dns, pf.port)
	wantExit(t, r, 0)
	ids := map[string]bool{}
	for _, rc := range rcpts {
		o := wantOutcome(t, r, rc, "sent", "2.0.0", "250 2.0.0 Ok: queued as ")
		if f := queuedAs.FindStringSubmatch(o.reply); f != nil {
			ids[f[1]] = true
		}
	}
	if len(ids) != 3 {
		t.Errorf("%d transactions (%v), want 3: 3, 3 and 1 recipients", len(ids), ids)
	}
	if n := strings.Count(r.stdout, "\n"); n == 0 || !strings.Contains(r.stdout, "limit.test") {
		t.Errorf("summary without limit.test:\n%s", r.stdout)
	}
	pf.idle(t)
	for _, rc := range rcpts {
		pf.wantMailbox(t, rc, m)
	}
}

// Postfix announces SIZE 4096: a larger message fails at once with 5.3.4,
// before MAIL (RFC 1870), the smaller one beside it is delivered, and the
// run exits 69.
func TestPostfixMessageSize(t *testing.T) {
	pf := needPostfix(t)
	t.Parallel()
	dns := mxDNS(t, "size.test", "size.pf.test", ipSize)
	spool := newSpool(t)
	small := message("small", "ok1@size.test", "Small enough.\r\n")
	big := message("big", "ok2@size.test", strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n", sizeLimit/66+1))
	enqueue(t, spool, small, "ok1@size.test")
	enqueue(t, spool, big, "ok2@size.test")
	r := flush(t, spool, dns, pf.port)
	wantExit(t, r, 69)
	wantOutcome(t, r, "ok1@size.test", "sent", "2.0.0", "250 ")
	wantOutcome(t, r, "ok2@size.test", "bounced", "5.3.4", "")
	pf.idle(t)
	pf.wantMailbox(t, "ok1@size.test", small)
	pf.wantMailbox(t, "ok2@size.test")
}

// Postfix refuses a recipient it has no mailbox for with 550 5.1.1: that
// one is bounced, the other recipient of the same message gets it, and the
// run exits 69.
func TestPostfixUnknownUser(t *testing.T) {
	pf := needPostfix(t)
	t.Parallel()
	dns := mxDNS(t, "unknown.test", "unknown.pf.test", ipNormal)
	spool := newSpool(t)
	m := message("unknown", "ok1@unknown.test, nobody@unknown.test", "One known, one unknown.\r\n")
	enqueue(t, spool, m, "nobody@unknown.test", "ok1@unknown.test")
	r := flush(t, spool, dns, pf.port)
	wantExit(t, r, 69)
	wantOutcome(t, r, "ok1@unknown.test", "sent", "2.0.0", "250 ")
	wantOutcome(t, r, "nobody@unknown.test", "bounced", "5.1.1", "550 5.1.1 <nobody@unknown.test>: Recipient address rejected: User unknown")
	pf.idle(t)
	pf.wantMailbox(t, "ok1@unknown.test", m)
}

// Postfix at its default smtpd_hard_error_limit (20) answers a pipelined
// group of 1 known and 23 unknown recipients with 20 refusals and then
// 421 4.7.0 "too many errors", and closes. The known recipient, first in
// one message and last in the other, is delivered once in the same run,
// every unknown one is bounced with Postfix's 550 5.1.1 (none deferred),
// and the run exits 69.
func TestPostfixErrorLimit(t *testing.T) {
	pf := needPostfix(t)
	t.Parallel()
	dns := mxDNS(t, "errors.test", "errors.pf.test", ipErrors)
	spool := newSpool(t)
	var unknown []string
	group := func(known string, first bool, tag string) []string {
		var rcpts []string
		for i := 1; i <= 23; i++ {
			rcpts = append(rcpts, fmt.Sprintf("no-%s-%02d@errors.test", tag, i))
		}
		unknown = append(unknown, rcpts...)
		if first {
			return append([]string{known}, rcpts...)
		}
		return append(rcpts, known)
	}
	first := message("known first", "list@errors.test", "The known recipient is the first.\r\n")
	last := message("known last", "list@errors.test", "The known recipient is the last.\r\n")
	enqueue(t, spool, first, group("ok1@errors.test", true, "a")...)
	enqueue(t, spool, last, group("ok2@errors.test", false, "b")...)
	r := flush(t, spool, dns, pf.port)
	wantExit(t, r, 69)
	wantOutcome(t, r, "ok1@errors.test", "sent", "2.0.0", "250 ")
	wantOutcome(t, r, "ok2@errors.test", "sent", "2.0.0", "250 ")
	for _, rc := range unknown {
		wantOutcome(t, r, rc, "bounced", "5.1.1", "550 5.1.1 <"+rc+">")
	}
	pf.idle(t)
	if !strings.Contains(pf.maillog(), "too many errors after RCPT") {
		t.Errorf("Postfix never reached its error limit:\n%s", pf.maillog())
	}
	pf.wantMailbox(t, "ok1@errors.test", first)
	pf.wantMailbox(t, "ok2@errors.test", last)
}

// Postfix with smtpd_client_message_rate_limit = 2 answers the third MAIL
// of a client within its time unit 450 4.7.1: that message is deferred
// (exit 75) and stays queued, and a later run, once the time unit has
// passed, delivers it. Every message arrives once.
func TestPostfixRateLimit(t *testing.T) {
	pf := needPostfix(t)
	t.Parallel()
	dns := mxDNS(t, "rate.test", "rate.pf.test", ipRate)
	spool := newSpool(t)
	var msgs []string
	for i := 1; i <= 3; i++ {
		m := message(fmt.Sprintf("rate %d", i), "ok1@rate.test", fmt.Sprintf("Message %d of 3.\r\n", i))
		msgs = append(msgs, m)
		enqueue(t, spool, m, "ok1@rate.test")
	}
	r := flush(t, spool, dns, pf.port)
	wantExit(t, r, 75)
	var statuses []string
	for _, o := range outcomes(r)["ok1@rate.test"] {
		statuses = append(statuses, o.status+" "+o.dsn)
		if o.status == "deferred" && !strings.HasPrefix(o.reply, "450 4.7.1 ") {
			t.Errorf("deferred with %q, want Postfix's 450 4.7.1", o.reply)
		}
	}
	slices.Sort(statuses)
	if want := []string{"deferred 4.7.1", "sent 2.0.0", "sent 2.0.0"}; !slices.Equal(statuses, want) {
		t.Fatalf("first run: %q, want %q", statuses, want)
	}
	// A later run: --all, as the deferred message's next attempt is
	// minutes away. Postfix counts in windows of rateUnit; the run is
	// repeated (a few times at most) until a window has passed.
	for try := 1; ; try++ {
		time.Sleep(rateUnit)
		r = flush(t, spool, dns, pf.port, "--all")
		if r.code == 0 || try == 5 {
			break
		}
	}
	wantExit(t, r, 0)
	wantOutcome(t, r, "ok1@rate.test", "sent", "2.0.0", "250 ")
	pf.idle(t)
	pf.wantMailbox(t, "ok1@rate.test", msgs...)
}

// Postfix with PIPELINING and 8BITMIME taken out of its EHLO reply
// (smtpd_discard_ehlo_keywords) gets the 7-bit message one command at a
// time, to three recipients; the 8-bit message is not changed to fit but
// fails with 5.6.3 (RFC 6152 §3), and the run exits 69.
func TestPostfixNoPipelining(t *testing.T) {
	pf := needPostfix(t)
	t.Parallel()
	kw := ehloKeywords(t, fmt.Sprintf("%s:%d", ipPlain, pf.port))
	if slices.Contains(kw, "PIPELINING") || slices.Contains(kw, "8BITMIME") || !slices.Contains(kw, "STARTTLS") {
		t.Fatalf("EHLO keywords %q: want STARTTLS without PIPELINING and 8BITMIME", kw)
	}
	dns := mxDNS(t, "plain.test", "plain.pf.test", ipPlain)
	spool := newSpool(t)
	ascii := message("ascii", "list@plain.test", "Plain 7-bit text.\r\n")
	eight := message("eight", "ok1@plain.test", "Caf\xc3\xa9 au lait: 8-bit.\r\n")
	rcpts := []string{"ok1@plain.test", "ok2@plain.test", "ok3@plain.test"}
	enqueue(t, spool, ascii, rcpts...)
	enqueue(t, spool, eight, "ok4@plain.test")
	r := flush(t, spool, dns, pf.port)
	wantExit(t, r, 69)
	for _, rc := range rcpts {
		wantOutcome(t, r, rc, "sent", "2.0.0", "250 ")
	}
	wantOutcome(t, r, "ok4@plain.test", "bounced", "5.6.3", "")
	pf.idle(t)
	for _, rc := range rcpts {
		pf.wantMailbox(t, rc, ascii)
	}
	pf.wantMailbox(t, "ok4@plain.test")
}

// Without PIPELINING, Postfix at its default smtpd_hard_error_limit
// answers the 21st unknown recipient 421 4.7.0 and closes: the known
// recipient, first in one message and last in the other, is delivered
// once in the same run, and every unknown one gets its own 550 5.1.1.
func TestPostfixErrorLimitNoPipelining(t *testing.T) {
	pf := needPostfix(t)
	t.Parallel()
	dns := mxDNS(t, "plain.test", "plain.pf.test", ipPlain)
	spool := newSpool(t)
	var unknown []string
	group := func(known string, first bool, tag string) []string {
		var rcpts []string
		for i := 1; i <= 23; i++ {
			rcpts = append(rcpts, fmt.Sprintf("no-%s-%02d@plain.test", tag, i))
		}
		unknown = append(unknown, rcpts...)
		if first {
			return append([]string{known}, rcpts...)
		}
		return append(rcpts, known)
	}
	first := message("plain known first", "list@plain.test", "The known recipient is the first.\r\n")
	last := message("plain known last", "list@plain.test", "The known recipient is the last.\r\n")
	enqueue(t, spool, first, group("ok5@plain.test", true, "a")...)
	enqueue(t, spool, last, group("ok6@plain.test", false, "b")...)
	r := flush(t, spool, dns, pf.port)
	wantExit(t, r, 69)
	wantOutcome(t, r, "ok5@plain.test", "sent", "2.0.0", "250 ")
	wantOutcome(t, r, "ok6@plain.test", "sent", "2.0.0", "250 ")
	for _, rc := range unknown {
		wantOutcome(t, r, rc, "bounced", "5.1.1", "550 5.1.1 <"+rc+">")
	}
	pf.idle(t)
	pf.wantMailbox(t, "ok5@plain.test", first)
	pf.wantMailbox(t, "ok6@plain.test", last)
}

// Postfix with smtpd_client_connection_count_limit = 1 answers a second
// concurrent session from the same client 421 4.7.0: 250 messages to one
// domain, which mxflush would share among several sessions, all arrive
// in the one run, each once.
func TestPostfixConnectionLimit(t *testing.T) {
	pf := needPostfix(t)
	t.Parallel()
	dns := mxDNS(t, "conns.test", "conns.pf.test", ipConns)
	spool := newSpool(t)
	const n = 250
	var msgs []string
	for i := range n {
		m := message(fmt.Sprintf("conns %03d", i), "ok1@conns.test", fmt.Sprintf("Message %d of %d.\r\n", i+1, n))
		msgs = append(msgs, m)
		spoolFile(t, spool, fmt.Sprintf("1796400000.M%d.P1.interop", i), sender, m, "ok1@conns.test")
	}
	r := flush(t, spool, dns, pf.port, "--conns-per-domain", "4")
	wantExit(t, r, 0)
	sent := 0
	for _, o := range outcomes(r)["ok1@conns.test"] {
		if o.status == "sent" {
			sent++
		}
	}
	if sent != n {
		t.Errorf("%d sent, want %d", sent, n)
	}
	if !strings.Contains(pf.maillog(), "Connection concurrency limit exceeded") {
		t.Errorf("Postfix never refused a session: the limit was not reached:\n%s", pf.maillog())
	}
	pf.idle(t)
	pf.wantMailbox(t, "ok1@conns.test", msgs...)
}

// A recipient Postfix refuses makes a bounce (RFC 3464), which the same
// run delivers to the sender's mailbox, also at Postfix, from the null
// sender.
func TestPostfixBounceDelivered(t *testing.T) {
	pf := needPostfix(t)
	t.Parallel()
	d, err := testnet.StartDNS(
		"unknown.test. MX 10 unknown.pf.test.", "unknown.pf.test. A "+ipNormal,
		"senders.test. MX 10 senders.pf.test.", "senders.pf.test. A "+ipNormal)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	spool := newSpool(t)
	m := message("to be bounced", "nobody2@unknown.test", "Nobody reads this.\r\n")
	m = strings.Replace(m, sender, "ok1@senders.test", 1)
	if r := mxflush(t, m, "enqueue", "--spool", spool, "-f", "ok1@senders.test", "nobody2@unknown.test"); r.code != 0 {
		t.Fatalf("enqueue: %v", r)
	}
	args := []string{"flush", "--spool", spool, "--dns", d.Addr(), "--port", fmt.Sprint(pf.port), "--helo", "client.test"}
	r := mxflush(t, "", args...)
	t.Logf("mxflush %s\n%v", strings.Join(args, " "), r)
	wantExit(t, r, 69)
	wantOutcome(t, r, "nobody2@unknown.test", "bounced", "5.1.1", "550 5.1.1 ")
	wantOutcome(t, r, "ok1@senders.test", "sent", "2.0.0", "250 ")
	pf.idle(t)
	got := pf.mailbox(t, "ok1@senders.test")
	if len(got) != 1 {
		t.Fatalf("the sender's mailbox holds %d messages, want the bounce", len(got))
	}
	full := got[0]
	for _, want := range []string{"Content-Type: multipart/report; report-type=delivery-status", "Final-Recipient: rfc822; nobody2@unknown.test", "Status: 5.1.1", "Action: failed", "Message-ID: <to-be-bounced@origin.test>"} {
		if !strings.Contains(full, want) {
			t.Errorf("the bounce lacks %q:\n%s", want, full)
		}
	}
	if raw := pf.raw(t, "ok1@senders.test"); len(raw) != 1 || !strings.HasPrefix(raw[0], "Return-Path: <>\n") {
		t.Errorf("the bounce did not come from the null sender (RFC 3464 §2, RFC 5321 §4.5.5):\n%q", raw)
	}
}

// spoolFile writes a message from from straight into the spool's new/, as
// a producer would (the spool format: envelope lines, then the message).
func spoolFile(t *testing.T, spool, name, from, msg string, rcpts ...string) {
	t.Helper()
	for _, d := range []string{"tmp", "new", "cur", "failed", "hold", "bad"} {
		if err := os.MkdirAll(filepath.Join(spool, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	env := "X-Envelope-From: <" + from + ">\n"
	for _, rc := range rcpts {
		env += "X-Envelope-To: <" + rc + ">\n"
	}
	if err := os.WriteFile(filepath.Join(spool, "new", name), []byte(env+msg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Postfix with smtpd_recipient_limit = 3 counts accepted recipients only:
// with unknown ones among them, the 452s and 550s interleave, and over
// the transactions every known recipient gets one copy and every unknown
// one its 550 5.1.1.
func TestPostfixRecipientLimitUnknown(t *testing.T) {
	pf := needPostfix(t)
	t.Parallel()
	dns := mxDNS(t, "mixed.test", "mixed.pf.test", ipLimit)
	spool := newSpool(t)
	known := []string{"ok1@mixed.test", "ok2@mixed.test", "ok3@mixed.test", "ok4@mixed.test", "ok5@mixed.test", "ok6@mixed.test", "ok7@mixed.test"}
	unknown := []string{"no1@mixed.test", "no2@mixed.test", "no3@mixed.test", "no4@mixed.test"}
	rcpts := []string{known[0], unknown[0], known[1], known[2], unknown[1], known[3], known[4], unknown[2], unknown[3], known[5], known[6]}
	m := message("mixed", "list@mixed.test", "Seven known, four unknown, three at a time.\r\n")
	enqueue(t, spool, m, rcpts...)
	r := flush(t, spool, dns, pf.port)
	wantExit(t, r, 69)
	for _, rc := range known {
		wantOutcome(t, r, rc, "sent", "2.0.0", "250 ")
	}
	for _, rc := range unknown {
		wantOutcome(t, r, rc, "bounced", "5.1.1", "550 5.1.1 <"+rc+">")
	}
	pf.idle(t)
	for _, rc := range known {
		pf.wantMailbox(t, rc, m)
	}
}

// In one pipelined session: a message whose sender Postfix refuses (553
// at MAIL FROM), one whose every recipient is unknown (550s, then DATA
// refused), and messages around them that are delivered; the session
// goes on after each refusal.
func TestPostfixRefusedTransactions(t *testing.T) {
	pf := needPostfix(t)
	t.Parallel()
	dns := mxDNS(t, "edges.test", "edges.pf.test", ipNormal)
	spool := newSpool(t)
	before := message("before", "ok1@edges.test", "Delivered before the refusals.\r\n")
	badSender := strings.ReplaceAll(message("bad sender", "ok2@edges.test", "Its sender is refused.\r\n"), sender, refusedSender)
	nobody := message("nobody", "no1@edges.test", "No known recipient.\r\n")
	after := message("after", "ok3@edges.test", "Delivered after the refusals.\r\n")
	spoolFile(t, spool, "1796400000.M1.P1.interop", sender, before, "ok1@edges.test")
	spoolFile(t, spool, "1796400000.M2.P1.interop", refusedSender, badSender, "ok2@edges.test")
	spoolFile(t, spool, "1796400000.M3.P1.interop", sender, nobody, "no1@edges.test", "no2@edges.test")
	spoolFile(t, spool, "1796400000.M4.P1.interop", sender, after, "ok3@edges.test")
	r := flush(t, spool, dns, pf.port)
	wantExit(t, r, 69)
	wantOutcome(t, r, "ok1@edges.test", "sent", "2.0.0", "250 ")
	wantOutcome(t, r, "ok2@edges.test", "bounced", "5.7.1", "553 5.7.1 <"+refusedSender+">: Sender address rejected")
	wantOutcome(t, r, "no1@edges.test", "bounced", "5.1.1", "550 5.1.1 ")
	wantOutcome(t, r, "no2@edges.test", "bounced", "5.1.1", "550 5.1.1 ")
	wantOutcome(t, r, "ok3@edges.test", "sent", "2.0.0", "250 ")
	// messages, delivered, deferred, failed, connections: one session.
	if !regexp.MustCompile(`(?m)^ *edges\.test +4 +2 +0 +3 +1 `).MatchString(r.stdout) {
		t.Errorf("summary, want edges.test with 4 messages, 2 delivered, 3 failed, 1 connection:\n%s", r.stdout)
	}
	pf.idle(t)
	pf.wantMailbox(t, "ok1@edges.test", before)
	pf.wantMailbox(t, "ok2@edges.test")
	pf.wantMailbox(t, "ok3@edges.test", after)
}

// Messages at the edges of the format arrive as sent: a last line
// without a line ending (mxflush ends it before the final dot), a last
// line that starts with a dot and has no line ending, and a message of
// header fields only, without an empty line or a body.
func TestPostfixMessageEdges(t *testing.T) {
	pf := needPostfix(t)
	t.Parallel()
	dns := mxDNS(t, "edges.test", "edges.pf.test", ipNormal)
	spool := newSpool(t)
	noEOL := message("no eol", "ok4@edges.test", "first line\r\nlast line without an ending")
	dotNoEOL := message("dot no eol", "ok5@edges.test", "first line\r\n.last line starts with a dot")
	headersOnly := strings.TrimSuffix(message("headers only", "ok6@edges.test", ""), "\r\n")
	enqueue(t, spool, noEOL, "ok4@edges.test")
	enqueue(t, spool, dotNoEOL, "ok5@edges.test")
	enqueue(t, spool, headersOnly, "ok6@edges.test")
	r := flush(t, spool, dns, pf.port)
	wantExit(t, r, 0)
	pf.idle(t)
	pf.wantMailbox(t, "ok4@edges.test", noEOL+"\n")
	pf.wantMailbox(t, "ok5@edges.test", dotNoEOL+"\n")
	pf.wantMailbox(t, "ok6@edges.test", headersOnly)
}

// A message over 64 KiB (mxflush reads it again for DATA instead of
// keeping it in memory), with lines that start with dots, arrives octet
// for octet; and a message to recipients in three domains, each at
// another listener, goes to each once.
func TestPostfixLargeAndThreeDomains(t *testing.T) {
	pf := needPostfix(t)
	t.Parallel()
	d, err := testnet.StartDNS(
		"big.edges.test. MX 10 big.pf.test.", "big.pf.test. A "+ipNormal,
		"three1.test. MX 10 three1.pf.test.", "three1.pf.test. A "+ipNormal,
		"three2.test. MX 10 three2.pf.test.", "three2.pf.test. A "+ipLimit,
		"three3.test. MX 10 three3.pf.test.", "three3.pf.test. A "+ipPlain)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	spool := newSpool(t)
	var body strings.Builder
	for i := 0; body.Len() < 300<<10; i++ {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&body, ".line %d starts with a dot\r\n", i)
		case 1:
			fmt.Fprintf(&body, "..line %d starts with two\r\n", i)
		case 2:
			fmt.Fprintf(&body, "%s\r\n", strings.Repeat(fmt.Sprintf("%d ", i), 60))
		default:
			body.WriteString(".\r\n")
		}
	}
	big := message("big", "ok7@big.edges.test", body.String())
	three := message("three", "ok1@three1.test, ok1@three2.test, ok1@three3.test", "One message, three domains.\r\n")
	enqueue(t, spool, big, "ok7@big.edges.test")
	enqueue(t, spool, three, "ok1@three1.test", "ok1@three2.test", "ok1@three3.test")
	r := flush(t, spool, d.Addr(), pf.port)
	wantExit(t, r, 0)
	for _, rc := range []string{"ok7@big.edges.test", "ok1@three1.test", "ok1@three2.test", "ok1@three3.test"} {
		wantOutcome(t, r, rc, "sent", "2.0.0", "250 ")
	}
	pf.idle(t)
	pf.wantMailbox(t, "ok7@big.edges.test", big)
	for _, rc := range []string{"ok1@three1.test", "ok1@three2.test", "ok1@three3.test"} {
		pf.wantMailbox(t, rc, three)
	}
	for _, q := range []string{"new", "cur", "failed"} {
		if ents, err := os.ReadDir(filepath.Join(spool, q)); err != nil || len(ents) > 0 {
			t.Errorf("the spool's %s/ still holds %d file(s) (%v): a message sent to all its recipients is removed", q, len(ents), err)
		}
	}
}
