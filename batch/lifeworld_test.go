package batch

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/mxflush/mxflush/internal/testnet"
)

// The mail world of the bounce and schedule tests: recipients at a.test
// (127.0.0.2) and b.test (127.0.0.4), the sender alice@example.test, whose
// own MX (127.0.0.3) receives the DSNs. Every receiver answers RCPT by
// the recipient's local part: gone* 550 5.1.1, busy* 451 4.7.1, relay* 550
// 5.7.1; the sender's MX refuses nobody@example.test with 550 5.1.1;
// anything else is accepted.
func lifeWorld(t *testing.T) *world {
	t.Helper()
	ips := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}
	w := newWorld(t, ips,
		"a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2",
		"b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.4",
		"example.test. MX 10 mx.example.test.", "mx.example.test. A 127.0.0.3")
	for _, ip := range ips {
		w.receive(ip, testnet.SMTPOptions{Rcpt: func(to string) error {
			switch {
			case strings.HasPrefix(to, "gone"), strings.HasPrefix(to, "nobody@"):
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
			case strings.HasPrefix(to, "busy"):
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "Greylisted, try again later"}
			case strings.HasPrefix(to, "relay"):
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relaying denied"}
			}
			return nil
		}})
	}
	return w
}

// original is the message of the bounce and schedule tests, after its
// envelope lines.
const original = "From: Alice <alice@example.test>\r\nTo: team@example.test\r\nSubject: quarterly report\r\nMessage-ID: <q4@example.test>\r\n\r\nthe body is not returned\r\n"

// envelope returns envelope lines from alice@example.test (or from, when
// given with its brackets) to rcpts.
func envelope(from string, rcpts ...string) string {
	var b strings.Builder
	b.WriteString("X-Envelope-From: " + from + "\n")
	for _, r := range rcpts {
		b.WriteString("X-Envelope-To: <" + r + ">\n")
	}
	return b.String()
}

// dsns returns the messages the sender's MX received from <>.
func (w *world) dsns() []testnet.Received {
	var out []testnet.Received
	for _, m := range w.recv["127.0.0.3"].Messages() {
		if m.From == "" {
			out = append(out, m)
		}
	}
	return out
}

// dsnReport is a DSN parsed back with net/textproto and mime/multipart.
type dsnReport struct {
	top     textproto.MIMEHeader
	report  map[string]string // parameters of the top Content-Type
	types   []string
	text    string
	perMsg  textproto.MIMEHeader
	perRcpt []textproto.MIMEHeader
	headers string
}

func parseDSN(t *testing.T, data []byte) dsnReport {
	t.Helper()
	var r dsnReport
	tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(data)))
	var err error
	if r.top, err = tr.ReadMIMEHeader(); err != nil {
		t.Fatalf("DSN header: %v", err)
	}
	mt, params, err := mime.ParseMediaType(r.top.Get("Content-Type"))
	if err != nil || mt != "multipart/report" {
		t.Fatalf("DSN Content-Type %q (%v), want multipart/report (RFC 3462)", r.top.Get("Content-Type"), err)
	}
	r.report = params
	mr := multipart.NewReader(tr.R, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("DSN part: %v", err)
		}
		body, _ := io.ReadAll(p)
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		r.types = append(r.types, ct)
		switch ct {
		case "text/plain":
			r.text = string(body)
		case "text/rfc822-headers":
			r.headers = string(body)
		case "message/delivery-status":
			sr := textproto.NewReader(bufio.NewReader(bytes.NewReader(body)))
			if r.perMsg, err = sr.ReadMIMEHeader(); err != nil {
				t.Fatalf("per-message fields: %v", err)
			}
			for {
				h, err := sr.ReadMIMEHeader()
				if len(h) > 0 {
					r.perRcpt = append(r.perRcpt, h)
				}
				if err != nil {
					break
				}
			}
		}
	}
	return r
}

// rcptBlock returns the per-recipient fields of rcpt, or fails.
func (r dsnReport) rcptBlock(t *testing.T, rcpt string) textproto.MIMEHeader {
	t.Helper()
	for _, h := range r.perRcpt {
		if h.Get("Final-Recipient") == "rfc822; "+rcpt {
			return h
		}
	}
	t.Fatalf("no recipient block for %s in %v", rcpt, r.perRcpt)
	return nil
}
