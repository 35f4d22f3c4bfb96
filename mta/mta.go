// Package mta is the vocabulary that mx, deliver and batch share: a
// destination Host, a server Reply, and the Error every failed step of a
// delivery becomes (a DNS lookup, a connection, a command's reply, a local
// decision). It has no policy: which replies are permanent is decided by
// deliver, which lookups fail for good by mx; this package only carries the
// result and formats it one way for logs, DSNs and the spool.
package mta

import (
	"net/netip"
	"strconv"
	"strings"
)

// Host is one destination host: an MX target, a relay or smart host, or an
// address literal.
type Host struct {
	Name  string       // A-label host name, no trailing dot; or an address literal "[127.0.0.1]" or bare IP
	Pref  uint16       // MX preference (RFC 5321 §5.1); 0 for implicit MX, relays and literals
	Addrs []netip.Addr // tried in order: A records first, then AAAA
	Port  int          // TCP port; 0 means the caller's default (always 0 for MX hosts)
	// Insecure says that the DNS answer naming the host was not
	// authenticated (no AD bit, RFC 4035 §3.2.3): the MX answer or a CNAME
	// leading to it; for an implicit MX, the denial of MX records or the
	// domain's own address answers. Whoever can forge such an answer can
	// name any host, so DANE does not apply to it (RFC 7672 §2.2.1,
	// §2.2.2). false where nothing says so: relays and address literals.
	Insecure bool
}

// Reply is one SMTP reply (RFC 5321 §4.2): the code of its last line,
// its enhanced status code when a line carries one of the code's class
// (RFC 2034 §4, RFC 3463; the first such), and the text of every line
// without the code, the separator and that enhanced status code.
type Reply struct {
	Code   int
	Status string // "5.1.1"; "" when the reply has none
	Lines  []string
}

// Class is the reply code's first digit (2, 3, 4 or 5).
func (r Reply) Class() int { return r.Code / 100 }

// Text is the reply's text on one line: its lines joined with "; ", control
// characters replaced (OneLine).
func (r Reply) Text() string { return OneLine(strings.Join(r.Lines, "\n")) }

// String is the reply as logs and DSN diagnostics show it:
// "550 5.1.1 No such user; second line".
func (r Reply) String() string { return Format(r.Code, r.Status, r.Text()) }

// ParseLine splits one reply line (without its CRLF) by RFC 5321 §4.2's
// grammar: three digits, then "-" for a line that more lines follow or " "
// (or nothing) for the last line, then text. A line shorter than three
// octets, or whose first three octets are not digits of a valid code
// (first digit 2-5, second 0-5), is not a reply line: ok is false.
func ParseLine(line string) (code int, last bool, text string, ok bool) {
	if len(line) < 3 {
		return 0, false, "", false
	}
	if line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' || line[2] < '0' || line[2] > '9' {
		return 0, false, "", false
	}
	code = int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	switch {
	case len(line) == 3:
		return code, true, "", true
	case line[3] == '-':
		return code, false, line[4:], true
	case line[3] == ' ':
		return code, true, line[4:], true
	}
	return 0, false, "", false
}

// SplitStatus takes the enhanced status code off the front of a reply
// line's text when it has one whose class matches the reply code's
// (RFC 2034 §4: "5.1.1 No such user" after 550), and returns the rest.
func SplitStatus(code int, text string) (status, rest string) {
	word, rest, _ := strings.Cut(text, " ")
	if s, ok := ParseStatus(word); ok && int(s[0]-'0') == code/100 {
		return s, rest
	}
	return "", text
}

// ParseStatus checks an enhanced status code by RFC 3463 §2's grammar:
// class "2", "4" or "5", then subject and detail of one to three digits
// without leading zeros. It returns the code as given. It allocates
// nothing: every reply's text goes through it (SplitStatus).
func ParseStatus(s string) (string, bool) {
	if len(s) < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.' {
		return "", false
	}
	subject, detail, ok := strings.Cut(s[2:], ".")
	if !ok || !statusNumber(subject) || !statusNumber(detail) {
		return "", false
	}
	return s, true
}

// statusNumber is RFC 3463 §2's subject or detail: one to three digits,
// no leading zero.
func statusNumber(p string) bool {
	if len(p) < 1 || len(p) > 3 || (len(p) > 1 && p[0] == '0') {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

// Format writes a code, an enhanced status code and a text as one line,
// leaving out what is missing: "550 5.1.1 text", "550 text", "4.4.2 text".
func Format(code int, status, text string) string {
	var b strings.Builder
	b.Grow(5 + len(status) + len(text))
	if code != 0 {
		b.WriteString(strconv.Itoa(code))
	}
	for _, s := range []string{status, text} {
		if s == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s)
	}
	return b.String()
}

// OneLine puts a text on one line, for a log line, a spool field or a DSN:
// line breaks become "; " and every other control character a space.
func OneLine(s string) string {
	s = strings.ReplaceAll(strings.TrimRight(s, "\r\n"), "\r\n", "\n")
	s = strings.ReplaceAll(s, "\n", "; ")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
