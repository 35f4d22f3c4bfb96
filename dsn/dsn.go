// Package dsn composes delivery status notifications (RFC 3464, RFC 3462
// multipart/report).
//
// Compose is a pure function: from the original message's envelope, its
// header section, the per-recipient results and the reporting MTA's name,
// it returns the bytes of one RFC 5322 message with CRLF line endings:
//
//	From: Mail Delivery System <MAILER-DAEMON@relay.test>
//	To: <alice@example.test>
//	Subject: Undelivered Mail Returned to Sender
//	Date: Sun, 29 Nov 2026 12:05:00 +0000
//	Message-ID: <20261129120500.5f1c0a9e3b7d2468@relay.test>
//	Auto-Submitted: auto-replied
//	MIME-Version: 1.0
//	Content-Type: multipart/report; report-type=delivery-status; boundary="..."
//
//	--...
//	Content-Type: text/plain; charset=utf-8         what failed and why, in plain words
//	--...
//	Content-Type: message/delivery-status           RFC 3464 §2: per-message fields, then one block per recipient
//	--...
//	Content-Type: text/rfc822-headers               the original's header section (RFC 3462 §3)
//	--...--
//
// The envelope of a notification (MAIL FROM:<>, RCPT TO: the original
// sender, RFC 3464 §2 and RFC 5321 §4.5.5) is the caller's business; so is
// never sending one for a message whose sender is <> (no bounce loops).
package dsn

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/mxflush/mxflush/mta"
	"mime/multipart"
	"net/textproto"
	"strings"
	"time"
)

// Action is a recipient's Action field (RFC 3464 §2.3.3).
type Action string

// The actions mxflush reports.
const (
	Failed  Action = "failed"  // permanent failure, or a message whose lifetime ended (4.4.7)
	Delayed Action = "delayed" // still queued and retried: the delay warning
)

// Recipient is one recipient's result.
type Recipient struct {
	Addr   string // the envelope recipient, as spooled, without angle brackets
	Action Action
	// Status is the RFC 3463 enhanced code, "5.1.1"; empty means 5.0.0
	// (Failed) or 4.0.0 (Delayed).
	Status string
	// Reply is the server's reply, "550 5.1.1 No such user", or a local
	// reason such as "5.1.10 domain has a null MX". A reply that starts with
	// a three-digit code becomes "Diagnostic-Code: smtp; <reply>"; other
	// text becomes "Diagnostic-Code: X-mxflush; <text>".
	Reply string
	// RemoteMTA is the host name of the server that gave Reply, "" when the
	// reason is local (DNS, a rule of ours): "Remote-MTA: dns; <host>".
	RemoteMTA   string
	Explanation string    // optional plain words for the text part, e.g. why it expired; Reply is shown as well
	LastAttempt time.Time // zero: no Last-Attempt-Date field
	RetryUntil  time.Time // Delayed only: Will-Retry-Until; zero: no field
}

// Notice is everything one notification says about one original message.
type Notice struct {
	ReportingMTA string    // this host's name (the EHLO name): "Reporting-MTA: dns; <name>", From: MAILER-DAEMON@<name>
	QueueID      string    // the original's spool ID: "X-Mxflush-Queue-ID" per-message field, and Message-ID input
	Sender       string    // the original's envelope sender: the To: of the notification; must not be empty
	Arrival      time.Time // the original's arrival: Arrival-Date
	Date         time.Time // when the notification is made: Date header, Message-ID
	Headers      []byte    // the original's header section (up to, not including, the empty line); LF or CRLF
	Recipients   []Recipient
}

// maxDiag bounds the reply text in a Diagnostic-Code field, well inside
// RFC 5322's 998-octet line limit.
const maxDiag = 900

// Compose returns the notification as an RFC 5322 message with CRLF line
// endings. Its Message-ID and MIME boundary are derived from n by hashing,
// so the same n gives the same bytes. Errors: an empty Sender or ReportingMTA,
// no recipients, an unknown Action.
func Compose(n Notice) ([]byte, error) {
	switch {
	case n.Sender == "":
		return nil, errors.New("dsn: no sender to notify (a message from <> is never bounced)")
	case n.ReportingMTA == "":
		return nil, errors.New("dsn: no reporting MTA name")
	case len(n.Recipients) == 0:
		return nil, errors.New("dsn: no recipients to report")
	}
	failed := 0
	for _, r := range n.Recipients {
		switch r.Action {
		case Failed:
			failed++
		case Delayed:
		default:
			return nil, fmt.Errorf("dsn: recipient %s: action %q is not %q or %q", r.Addr, r.Action, Failed, Delayed)
		}
	}
	headers := crlf(n.Headers)
	sum := sha256.New()
	fmt.Fprintf(sum, "%s\x00%s\x00%d\x00%s\x00", n.QueueID, n.Sender, n.Date.UnixNano(), n.ReportingMTA)
	for _, r := range n.Recipients {
		fmt.Fprintf(sum, "%s\x00%s\x00%s\x00", r.Addr, r.Action, r.Reply)
	}
	sum.Write(headers)
	h := hex.EncodeToString(sum.Sum(nil))
	boundary := "=_mxflush_" + h[:32]
	for bytes.Contains(headers, []byte(boundary)) { // cannot happen by chance; cheap to rule out
		boundary += "_"
	}
	msgID := fmt.Sprintf("<%s.%s@%s>", n.Date.UTC().Format("20060102150405"), h[32:48], n.ReportingMTA)

	subject := "Undelivered Mail Returned to Sender"
	if failed == 0 {
		subject = "Delayed Mail (still being retried)"
	}
	var b bytes.Buffer
	hdr := func(name, value string) { fmt.Fprintf(&b, "%s: %s\r\n", name, value) }
	hdr("From", "Mail Delivery System <MAILER-DAEMON@"+n.ReportingMTA+">")
	hdr("To", "<"+n.Sender+">")
	hdr("Subject", subject)
	hdr("Date", n.Date.Format(time.RFC1123Z))
	hdr("Message-ID", msgID)
	hdr("Auto-Submitted", "auto-replied") // RFC 3834 §5
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", `multipart/report; report-type=delivery-status; boundary="`+boundary+`"`)
	b.WriteString("\r\nThis is a MIME-encapsulated message: a delivery status notification (RFC 3464).\r\n\r\n")

	w := multipart.NewWriter(&b)
	if err := w.SetBoundary(boundary); err != nil {
		return nil, fmt.Errorf("dsn: boundary: %w", err)
	}
	parts := []struct {
		ctype, desc string
		body        []byte
	}{
		{"text/plain; charset=utf-8", "Notification", humanText(n, failed)},
		{"message/delivery-status", "Delivery report", statusFields(n)},
		{"text/rfc822-headers", "Headers of the original message", headers},
	}
	for _, p := range parts {
		body, cte := encode(p.body, p.ctype == "message/delivery-status")
		ph := textproto.MIMEHeader{}
		ph.Set("Content-Type", p.ctype)
		ph.Set("Content-Description", p.desc)
		if cte != "" {
			ph.Set("Content-Transfer-Encoding", cte)
		}
		pw, err := w.CreatePart(ph)
		if err != nil {
			return nil, fmt.Errorf("dsn: %w", err)
		}
		if _, err := pw.Write(body); err != nil {
			return nil, fmt.Errorf("dsn: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("dsn: %w", err)
	}
	b.WriteString("\r\n")
	return b.Bytes(), nil
}

// statusFields is the message/delivery-status body (RFC 3464 §2.1): the
// per-message fields, an empty line, and one block of per-recipient fields
// for each recipient, each block ending with an empty line.
func statusFields(n Notice) []byte {
	var b strings.Builder
	f := func(name, value string) {
		b.WriteString(name + ": " + value + "\r\n")
	}
	f("Reporting-MTA", "dns; "+ascii(n.ReportingMTA))
	if n.QueueID != "" {
		f("X-Mxflush-Queue-ID", ascii(n.QueueID))
	}
	if !n.Arrival.IsZero() {
		f("Arrival-Date", n.Arrival.Format(time.RFC1123Z))
	}
	for _, r := range n.Recipients {
		b.WriteString("\r\n")
		f("Final-Recipient", addressField(r.Addr))
		f("Action", string(r.Action))
		f("Status", status(r))
		if r.RemoteMTA != "" {
			f("Remote-MTA", "dns; "+ascii(r.RemoteMTA))
		}
		if r.Reply != "" {
			f("Diagnostic-Code", diagnostic(r.Reply))
		}
		if !r.LastAttempt.IsZero() {
			f("Last-Attempt-Date", r.LastAttempt.Format(time.RFC1123Z))
		}
		if r.Action == Delayed && !r.RetryUntil.IsZero() {
			f("Will-Retry-Until", r.RetryUntil.Format(time.RFC1123Z))
		}
	}
	return []byte(b.String())
}

// status returns r's Status field: its enhanced code when it is one
// (class.subject.detail, RFC 3463 §2), else the action's default.
func status(r Recipient) string {
	if _, ok := mta.ParseStatus(r.Status); ok {
		return r.Status
	}
	if r.Action == Delayed {
		return "4.0.0"
	}
	return "5.0.0"
}

// diagnostic returns the Diagnostic-Code value (RFC 3464 §2.3.6): type
// "smtp" for an SMTP reply, "X-mxflush" for a local reason.
func diagnostic(reply string) string {
	reply = ascii(reply)
	if len(reply) > maxDiag {
		reply = reply[:maxDiag] + "..."
	}
	if len(reply) >= 3 && strings.Trim(reply[:3], "0123456789") == "" && (len(reply) == 3 || reply[3] == ' ' || reply[3] == '-') {
		return "smtp; " + reply
	}
	return "X-mxflush; " + reply
}

// addressField returns a Final-Recipient value: "rfc822; addr" for an ASCII
// address, and for one with UTF-8 (RFC 6531) the "utf-8" type with
// utf-8-addr-xtext encoding (RFC 6533 §3), so the field stays ASCII.
func addressField(a string) string {
	if isASCII(a) {
		return "rfc822; " + a
	}
	var b strings.Builder
	for _, r := range a {
		if r < 0x21 || r > 0x7e || r == '\\' || r == '+' || r == '=' {
			fmt.Fprintf(&b, `\x{%X}`, r)
			continue
		}
		b.WriteRune(r)
	}
	return "utf-8; " + b.String()
}

// ascii replaces every octet outside printable US-ASCII (and space) by "?".
func ascii(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
