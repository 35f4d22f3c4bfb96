package dsn

import (
	"bytes"
	"mime/quotedprintable"
	"strings"
	"time"
)

// humanText is the first part of the report (RFC 3462 §2): what happened to
// each recipient, in plain words, for a person to read.
func humanText(n Notice, failed int) []byte {
	var b strings.Builder
	line := func(s string) { b.WriteString(s + "\r\n") }
	line("This is the mail system at host " + n.ReportingMTA + ".")
	line("")
	section := func(a Action, intro ...string) {
		for _, s := range intro {
			line(s)
		}
		line("")
		for _, r := range n.Recipients {
			if r.Action != a {
				continue
			}
			line("<" + r.Addr + ">")
			if r.Explanation != "" {
				line("    " + r.Explanation)
			}
			switch {
			case r.RemoteMTA != "" && r.Reply != "":
				line("    The server " + r.RemoteMTA + " answered: " + r.Reply)
			case r.Reply != "":
				line("    Reason: " + r.Reply)
			}
			line("")
		}
	}
	if failed > 0 {
		section(Failed,
			"Your message could not be delivered to the recipients below.",
			"This is final: they will not be tried again.")
	}
	if failed < len(n.Recipients) {
		until := "its lifetime in the queue ends"
		for _, r := range n.Recipients {
			if r.Action == Delayed && !r.RetryUntil.IsZero() {
				until = r.RetryUntil.Format(time.RFC1123Z)
				break
			}
		}
		section(Delayed,
			"Your message has not been delivered yet to the recipients below.",
			"It stays queued and will be tried again until "+until+";",
			"you do not need to send it again. This warning is sent only once.")
	}
	line("The headers of your message are attached; its queue ID was " + n.QueueID + ".")
	return []byte(b.String())
}

// crlf returns h with every line ending (CRLF, bare LF, bare CR) made CRLF,
// ending with one.
func crlf(h []byte) []byte {
	var b bytes.Buffer
	for i := 0; i < len(h); i++ {
		switch c := h[i]; c {
		case '\r':
			b.WriteString("\r\n")
			if i+1 < len(h) && h[i+1] == '\n' {
				i++
			}
		case '\n':
			b.WriteString("\r\n")
		default:
			b.WriteByte(c)
		}
	}
	if b.Len() > 0 && !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// encode returns a text part's body and its Content-Transfer-Encoding: the
// body as it is ("7bit") when it is US-ASCII in lines of at most 998
// octets (RFC 5322 §2.1.1), else quoted-printable (RFC 2045 §6.7), which
// keeps 8-bit header bytes and long lines intact through any relay.
// message/delivery-status is built in 7-bit form and never encoded.
func encode(body []byte, isStatus bool) ([]byte, string) {
	if isStatus || sevenBit(body) {
		return body, "7bit"
	}
	var b bytes.Buffer
	w := quotedprintable.NewWriter(&b)
	w.Write(body) // a bytes.Buffer does not fail
	w.Close()
	return b.Bytes(), "quoted-printable"
}

func sevenBit(body []byte) bool {
	for _, l := range bytes.Split(body, []byte("\r\n")) {
		if len(l) > 998 || !isASCII(string(l)) || bytes.IndexByte(l, 0) >= 0 {
			return false
		}
	}
	return true
}
