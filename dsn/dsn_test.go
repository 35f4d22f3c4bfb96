package dsn

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

// report is a notification parsed back with net/textproto and mime/multipart.
type report struct {
	top     textproto.MIMEHeader
	params  map[string]string // of the top Content-Type
	types   []string          // Content-Type of each part, in order
	text    string            // the human-readable part
	perMsg  textproto.MIMEHeader
	perRcpt []textproto.MIMEHeader
	headers []byte // the text/rfc822-headers part, transfer encoding undone
}

func parseReport(t *testing.T, b []byte) report {
	t.Helper()
	for i, l := range bytes.Split(b, []byte("\r\n")) {
		if len(l) > 998 || bytes.ContainsAny(l, "\r\n") {
			t.Fatalf("line %d is longer than 998 octets or has a bare CR/LF: %q", i+1, l)
		}
	}
	var r report
	tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(b)))
	top, err := tr.ReadMIMEHeader()
	if err != nil {
		t.Fatalf("top header: %v", err)
	}
	r.top = top
	mt, params, err := mime.ParseMediaType(top.Get("Content-Type"))
	if err != nil || mt != "multipart/report" {
		t.Fatalf("Content-Type %q: %v", top.Get("Content-Type"), err)
	}
	r.params = params
	mr := multipart.NewReader(tr.R, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("part: %v", err)
		}
		body, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("part body: %v", err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		r.types = append(r.types, ct)
		switch ct {
		case "text/plain":
			r.text = string(body)
		case "text/rfc822-headers":
			r.headers = body
		case "message/delivery-status":
			// RFC 3464 §2.1: groups of fields separated by empty lines.
			sr := textproto.NewReader(bufio.NewReader(bytes.NewReader(body)))
			if r.perMsg, err = sr.ReadMIMEHeader(); err != nil {
				t.Fatalf("per-message fields: %v", err)
			}
			for {
				h, err := sr.ReadMIMEHeader()
				if len(h) > 0 {
					r.perRcpt = append(r.perRcpt, h)
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("per-recipient fields: %v", err)
				}
			}
		}
	}
	return r
}

var (
	arrival = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	made    = arrival.Add(6 * 24 * time.Hour)
	origHdr = []byte("From: Alice <alice@example.test>\nTo: bob@a.test, carol@b.test\nSubject: quarterly report\nMessage-ID: <1@example.test>\n")
)

func notice(rs ...Recipient) Notice {
	return Notice{ReportingMTA: "relay.test", QueueID: "1732880000.M1P42.relay", Sender: "alice@example.test",
		Arrival: arrival, Date: made, Headers: origHdr, Recipients: rs}
}

// Each field of a bounce, checked against RFC 3464 and RFC 3462.
func TestComposeFields(t *testing.T) {
	gone := Recipient{Addr: "bob@a.test", Action: Failed, Status: "5.1.1", Reply: "550 5.1.1 No such user",
		RemoteMTA: "mx.a.test", LastAttempt: made}
	expired := Recipient{Addr: "carol@b.test", Action: Failed, Status: "4.4.7",
		Reply: "451 4.7.1 Greylisted", RemoteMTA: "mx.b.test", Explanation: "delivery time expired after 6 days in the queue", LastAttempt: made}
	nullMX := Recipient{Addr: "dan@nullmx.test", Action: Failed, Status: "5.1.10", Reply: "5.1.10 domain has a null MX (RFC 7505)"}
	slow := Recipient{Addr: "erin@c.test", Action: Delayed, Status: "4.2.1", Reply: "450 4.2.1 Mailbox busy",
		RemoteMTA: "mx.c.test", LastAttempt: made, RetryUntil: arrival.Add(7 * 24 * time.Hour)}

	b, err := Compose(notice(gone, expired, nullMX, slow))
	if err != nil {
		t.Fatal(err)
	}
	r := parseReport(t, b)

	// RFC 5322 / RFC 3834 / RFC 3462 top-level header.
	for name, want := range map[string]string{
		"From":           "Mail Delivery System <MAILER-DAEMON@relay.test>",
		"To":             "<alice@example.test>",
		"Subject":        "Undelivered Mail Returned to Sender",
		"Auto-Submitted": "auto-replied",
		"Mime-Version":   "1.0",
	} {
		if got := r.top.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if d, err := mail.ParseDate(r.top.Get("Date")); err != nil || !d.Equal(made) {
		t.Errorf("Date %q: %v", r.top.Get("Date"), err)
	}
	if id := r.top.Get("Message-Id"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@relay.test>") || strings.Count(id, "@") != 1 {
		t.Errorf("Message-ID %q", id)
	}
	if r.params["report-type"] != "delivery-status" {
		t.Errorf("report-type %q", r.params["report-type"])
	}
	if strings.Join(r.types, " ") != "text/plain message/delivery-status text/rfc822-headers" {
		t.Errorf("parts %v, want text/plain, message/delivery-status, text/rfc822-headers (RFC 3462 §2)", r.types)
	}

	// RFC 3464 §2.2: per-message fields.
	if got := r.perMsg.Get("Reporting-Mta"); got != "dns; relay.test" {
		t.Errorf("Reporting-MTA %q", got)
	}
	if d, err := mail.ParseDate(r.perMsg.Get("Arrival-Date")); err != nil || !d.Equal(arrival) {
		t.Errorf("Arrival-Date %q: %v", r.perMsg.Get("Arrival-Date"), err)
	}

	// RFC 3464 §2.3: per-recipient fields.
	want := []map[string]string{
		{"Final-Recipient": "rfc822; bob@a.test", "Action": "failed", "Status": "5.1.1",
			"Remote-Mta": "dns; mx.a.test", "Diagnostic-Code": "smtp; 550 5.1.1 No such user"},
		{"Final-Recipient": "rfc822; carol@b.test", "Action": "failed", "Status": "4.4.7",
			"Remote-Mta": "dns; mx.b.test", "Diagnostic-Code": "smtp; 451 4.7.1 Greylisted"},
		{"Final-Recipient": "rfc822; dan@nullmx.test", "Action": "failed", "Status": "5.1.10",
			"Remote-Mta": "", "Diagnostic-Code": "X-mxflush; 5.1.10 domain has a null MX (RFC 7505)"},
		{"Final-Recipient": "rfc822; erin@c.test", "Action": "delayed", "Status": "4.2.1",
			"Remote-Mta": "dns; mx.c.test", "Diagnostic-Code": "smtp; 450 4.2.1 Mailbox busy"},
	}
	if len(r.perRcpt) != len(want) {
		t.Fatalf("%d recipient blocks, want %d", len(r.perRcpt), len(want))
	}
	for i, w := range want {
		for name, v := range w {
			if got := r.perRcpt[i].Get(name); got != v {
				t.Errorf("recipient %d %s: %q, want %q", i+1, name, got, v)
			}
		}
		if d, err := mail.ParseDate(r.perRcpt[i].Get("Last-Attempt-Date")); i != 2 && (err != nil || !d.Equal(made)) {
			t.Errorf("recipient %d Last-Attempt-Date %q: %v", i+1, r.perRcpt[i].Get("Last-Attempt-Date"), err)
		}
	}
	if d, err := mail.ParseDate(r.perRcpt[3].Get("Will-Retry-Until")); err != nil || !d.Equal(arrival.Add(7*24*time.Hour)) {
		t.Errorf("Will-Retry-Until %q: %v", r.perRcpt[3].Get("Will-Retry-Until"), err)
	}
	if r.perRcpt[0].Get("Will-Retry-Until") != "" {
		t.Error("Will-Retry-Until on a failed recipient")
	}

	// The original header section, CRLF, as text/rfc822-headers.
	if want := strings.ReplaceAll(string(origHdr), "\n", "\r\n"); string(r.headers) != want {
		t.Errorf("headers part:\n%q\nwant\n%q", r.headers, want)
	}
	// The human-readable part says who failed and why, in plain words.
	for _, s := range []string{"<bob@a.test>", "mx.a.test answered: 550 5.1.1 No such user", "<carol@b.test>",
		"delivery time expired", "451 4.7.1 Greylisted", "<dan@nullmx.test>", "null MX", "could not be delivered",
		"<erin@c.test>", "not been delivered yet", "Sun, 06 Dec 2026 12:00:00 +0000", "1732880000.M1P42.relay"} {
		if !strings.Contains(r.text, s) {
			t.Errorf("text part lacks %q:\n%s", s, r.text)
		}
	}
}

func TestComposeDelayedOnly(t *testing.T) {
	b, err := Compose(notice(Recipient{Addr: "erin@c.test", Action: Delayed, Reply: "timeout"}))
	if err != nil {
		t.Fatal(err)
	}
	r := parseReport(t, b)
	if r.top.Get("Subject") != "Delayed Mail (still being retried)" || strings.Contains(r.text, "could not be delivered") {
		t.Errorf("subject %q, text:\n%s", r.top.Get("Subject"), r.text)
	}
	if len(r.perRcpt) != 1 || r.perRcpt[0].Get("Status") != "4.0.0" || r.perRcpt[0].Get("Diagnostic-Code") != "X-mxflush; timeout" {
		t.Errorf("recipient block %v", r.perRcpt)
	}
}

// SMTPUTF8 addresses and 8-bit headers keep the report 7-bit: the address
// in RFC 6533 utf-8-addr-xtext, the headers quoted-printable.
func TestComposeEightBit(t *testing.T) {
	n := notice(Recipient{Addr: "jörg@bücher.test", Action: Failed, Status: "5.1.1", Reply: "550 5.1.1 Unbekannt"})
	n.Headers = []byte("Subject: Grüße\r\nX-Long: " + strings.Repeat("y", 1200) + "\r\n")
	b, err := Compose(n)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range b {
		if c >= 0x80 {
			t.Fatalf("octet %d is 8-bit: %q", i, b[max(0, i-20):i+5])
		}
	}
	r := parseReport(t, b)
	if got := r.perRcpt[0].Get("Final-Recipient"); got != `utf-8; j\x{F6}rg@b\x{FC}cher.test` {
		t.Errorf("Final-Recipient %q", got)
	}
	if !bytes.Equal(r.headers, n.Headers) {
		t.Errorf("8-bit headers did not survive quoted-printable:\n%q", r.headers)
	}
	if !strings.Contains(r.text, "jörg@bücher.test") {
		t.Errorf("text part lacks the address:\n%s", r.text)
	}
}

func TestComposeStableAndRefusals(t *testing.T) {
	a, _ := Compose(notice(Recipient{Addr: "bob@a.test", Action: Failed, Reply: "550 no"}))
	b, _ := Compose(notice(Recipient{Addr: "bob@a.test", Action: Failed, Reply: "550 no"}))
	if !bytes.Equal(a, b) {
		t.Error("the same notice gave different bytes")
	}
	other := notice(Recipient{Addr: "bob@a.test", Action: Failed, Reply: "550 no"})
	other.QueueID = "other"
	c, _ := Compose(other)
	ra, rc := parseReport(t, a), parseReport(t, c)
	if ra.top.Get("Message-Id") == rc.top.Get("Message-Id") || ra.params["boundary"] == rc.params["boundary"] {
		t.Error("two originals got the same Message-ID or boundary")
	}
	long := notice(Recipient{Addr: "bob@a.test", Action: Failed, Reply: "550 " + strings.Repeat("z", 3000)})
	l, err := Compose(long)
	if err != nil {
		t.Fatal(err)
	}
	if d := parseReport(t, l).perRcpt[0].Get("Diagnostic-Code"); len(d) > 1000 || !strings.HasSuffix(d, "...") {
		t.Errorf("long diagnostic not shortened: %d octets", len(d))
	}

	for name, n := range map[string]Notice{
		"null sender":   {ReportingMTA: "relay.test", Recipients: []Recipient{{Addr: "b@a.test", Action: Failed}}},
		"no recipients": {ReportingMTA: "relay.test", Sender: "a@x.test"},
		"bad action":    {ReportingMTA: "relay.test", Sender: "a@x.test", Recipients: []Recipient{{Addr: "b@a.test", Action: "relayed"}}},
		"no MTA name":   {Sender: "a@x.test", Recipients: []Recipient{{Addr: "b@a.test", Action: Failed}}},
	} {
		if _, err := Compose(n); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
