package deliver

import (
	"strconv"
	"strings"

	"github.com/emersion/go-smtp"
)

// greetingReply builds the reply of a refusing greeting: the code of the
// last line, its enhanced status code if it has one (RFC 2034), and the
// text of every line.
func greetingReply(code int, lines []string) *smtp.SMTPError {
	se := &smtp.SMTPError{Code: code, EnhancedCode: smtp.NoEnhancedCode}
	texts := make([]string, len(lines))
	for i, l := range lines {
		texts[i] = replyText(l)
	}
	last := texts[len(texts)-1]
	if word, rest, ok := strings.Cut(last, " "); ok {
		if ec, ok := parseStatus(word); ok && ec[0] == code/100 {
			se.EnhancedCode, texts[len(texts)-1] = ec, rest
		}
	}
	se.Message = strings.Join(texts, "\n")
	return se
}

func parseStatus(s string) (smtp.EnhancedCode, bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return smtp.EnhancedCode{}, false
	}
	var ec smtp.EnhancedCode
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 999 {
			return smtp.EnhancedCode{}, false
		}
		ec[i] = n
	}
	return ec, true
}

// sizeLimit finds the SIZE keyword in a captured EHLO reply (RFC 1870 §4)
// and returns the smallest positive limit in octets; 0 means no limit
// ("SIZE" alone, "SIZE 0", or no usable number). go-smtp keeps only the last
// SIZE line, hence this second look at the raw reply.
func sizeLimit(reply []byte) int64 {
	var limit int64
	for _, line := range strings.Split(string(reply), "\n") {
		line = strings.TrimRight(line, "\r")
		if len(line) < 4 || !strings.HasPrefix(line, "250") || (line[3] != '-' && line[3] != ' ') {
			continue
		}
		f := strings.Fields(line[4:])
		if len(f) < 2 || !strings.EqualFold(f[0], "SIZE") {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || n <= 0 {
			continue
		}
		if limit == 0 || n < limit {
			limit = n
		}
	}
	return limit
}

// hasKeyword reports whether an EHLO reply (its lines as read, the first
// being the greeting line) lists the extension keyword (RFC 5321 §4.1.1.1:
// one keyword per line after the first, case-insensitive).
func hasKeyword(lines []string, keyword string) bool {
	for _, l := range lines[min(1, len(lines)):] {
		if f := strings.Fields(replyText(l)); len(f) > 0 && strings.EqualFold(f[0], keyword) {
			return true
		}
	}
	return false
}

// wireReply puts reply lines back in wire form, CRLF after each.
func wireReply(lines []string) []byte {
	return []byte(strings.Join(lines, "\r\n") + "\r\n")
}
