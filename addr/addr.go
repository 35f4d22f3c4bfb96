// Package addr checks envelope addresses and derives their routing domain:
// the rules of RFC 5321 §4.1.2 (syntax), §4.1.3 (address literals), §4.5.3.1
// (length limits), Appendix C (source routes) and RFC 6531 (SMTPUTF8).
//
// An address here is the mailbox of an envelope path without angle brackets,
// as in "bob@example.com". The empty string is the null reverse-path "<>",
// valid only as a sender.
package addr

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Length limits of RFC 5321 §4.5.3.1, in octets.
const (
	MaxLocalPart = 64
	MaxDomain    = 255
	MaxPath      = 256 // the whole path including the angle brackets
)

// Error says which address broke which rule. It is always permanent: the
// address will not become valid by waiting.
type Error struct {
	Addr string // the address as given, with control characters quoted
	Rule string // the rule it broke, in plain words with its RFC section
}

func (e *Error) Error() string {
	return fmt.Sprintf("invalid address %q: %s", e.Addr, e.Rule)
}

func bad(a, rule string) *Error { return &Error{Addr: a, Rule: rule} }

// Check validates a recipient or non-null sender address and returns it with
// any source route removed (RFC 5321 Appendix C: "@hop1,@hop2:user@domain"
// routes on "user@domain") and any trailing dot of the domain removed.
// Errors are *Error.
func Check(a string) (string, error) {
	if a == "" {
		return "", bad(a, "empty address (the null sender <> is valid only in MAIL FROM)")
	}
	for i := 0; i < len(a); i++ {
		c := a[i]
		switch {
		case c == '\r' || c == '\n':
			return "", bad(a, "CR or LF in an address (RFC 5321 §4.1.2)")
		case c == 0:
			return "", bad(a, "NUL in an address (RFC 5321 §4.1.2)")
		case c < 0x20 || c == 0x7f:
			return "", bad(a, "control character in an address (RFC 5321 §4.1.2)")
		case c == ' ' || c == '<' || c == '>':
			return "", bad(a, "space or angle bracket in an address (RFC 5321 §4.1.2)")
		}
	}
	if !utf8.ValidString(a) {
		return "", bad(a, "address is not valid UTF-8 (RFC 6531 §3.3)")
	}
	if len(a)+2 > MaxPath {
		return "", bad(a, fmt.Sprintf("path longer than %d octets (RFC 5321 §4.5.3.1.3)", MaxPath))
	}
	mbox := a
	if strings.HasPrefix(a, "@") {
		colon := strings.IndexByte(a, ':')
		if colon < 0 {
			return "", bad(a, "source route without a colon (RFC 5321 §4.1.2, Appendix C)")
		}
		for _, hop := range strings.Split(a[:colon], ",") {
			if len(hop) < 2 || hop[0] != '@' || strings.ContainsAny(hop[1:], "@:") {
				return "", bad(a, "malformed source route (RFC 5321 §4.1.2, Appendix C)")
			}
		}
		mbox = a[colon+1:]
	}
	at := strings.LastIndexByte(mbox, '@')
	if at < 0 {
		return "", bad(a, "no @ in address")
	}
	local, domain := mbox[:at], mbox[at+1:]
	if strings.HasSuffix(domain, ".") && !strings.HasPrefix(domain, "[") {
		// "a.test." is the root-anchored "a.test": RFC 5321 §2.3.5 wants
		// no trailing dot in a command, so it goes out without one.
		domain = strings.TrimSuffix(domain, ".")
		mbox = local + "@" + domain
	}
	if local == "" {
		return "", bad(a, "empty local part (RFC 5321 §4.1.2)")
	}
	if len(local) > MaxLocalPart {
		return "", bad(a, fmt.Sprintf("local part longer than %d octets (RFC 5321 §4.5.3.1.1)", MaxLocalPart))
	}
	if strings.HasPrefix(local, "\"") != strings.HasSuffix(local, "\"") || (local == "\"") {
		return "", bad(a, "unbalanced quotes in local part (RFC 5321 §4.1.2)")
	}
	if !strings.HasPrefix(local, "\"") {
		if i := strings.IndexFunc(local, func(r rune) bool { return r < 0x80 && !isAtext(byte(r)) && r != '.' }); i >= 0 {
			return "", bad(a, fmt.Sprintf("character %q not allowed in an unquoted local part (RFC 5321 §4.1.2 Dot-string)", local[i]))
		}
	}
	if domain == "" {
		return "", bad(a, "empty domain (RFC 5321 §4.1.2)")
	}
	if len(domain) > MaxDomain {
		return "", bad(a, fmt.Sprintf("domain longer than %d octets (RFC 5321 §4.5.3.1.2)", MaxDomain))
	}
	if _, err := Domain(mbox); err != nil {
		return "", err
	}
	return mbox, nil
}

// Domain returns the routing domain of a checked mailbox: lower-case and in
// IDNA A-label form ("bücher.test" -> "xn--bcher-kva.test", RFC 5890), or an
// address literal such as "[127.0.0.1]" or "[IPv6:::1]" unchanged apart from
// case (RFC 5321 §4.1.3). Errors are *Error.
func Domain(mbox string) (string, error) {
	at := strings.LastIndexByte(mbox, '@')
	if at < 0 {
		return "", bad(mbox, "no @ in address")
	}
	d := mbox[at+1:]
	if strings.HasPrefix(d, "[") {
		if _, err := Literal(d); err != nil {
			return "", bad(mbox, err.Error())
		}
		if strings.HasPrefix(strings.ToLower(d), "[ipv6:") {
			return "[IPv6:" + strings.ToLower(d[6:]), nil
		}
		return d, nil
	}
	ascii, err := idna.Lookup.ToASCII(strings.TrimSuffix(d, "."))
	if err != nil {
		return "", bad(mbox, fmt.Sprintf("domain is not a valid host name (RFC 5321 §4.1.2, RFC 5891): %v", err))
	}
	if ascii == "" || len(ascii) > MaxDomain {
		return "", bad(mbox, "domain is not a valid host name (RFC 5321 §4.1.2)")
	}
	for label := range strings.SplitSeq(ascii, ".") { // no slice: this runs for every recipient of a scan
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") ||
			strings.ContainsFunc(label, func(r rune) bool { return !isLDH(r) }) {
			return "", bad(mbox, fmt.Sprintf("domain is not a valid host name: label %q (RFC 5321 §4.1.2, RFC 1035 §2.3.1)", label))
		}
	}
	return strings.ToLower(ascii), nil
}

// Literal parses an address literal "[192.0.2.1]" or "[IPv6:2001:db8::1]"
// (RFC 5321 §4.1.3). General literals ("[tag:value]") are not supported.
func Literal(d string) (netip.Addr, error) {
	if len(d) < 3 || d[0] != '[' || d[len(d)-1] != ']' {
		return netip.Addr{}, fmt.Errorf("address literal %q is not in brackets (RFC 5321 §4.1.3)", d)
	}
	in := d[1 : len(d)-1]
	v6 := false
	if len(in) > 5 && strings.EqualFold(in[:5], "IPv6:") {
		in, v6 = in[5:], true
	}
	ip, err := netip.ParseAddr(in)
	if err != nil || ip.Is6() != v6 || ip.Zone() != "" || ip.Is4In6() {
		return netip.Addr{}, fmt.Errorf("address literal %q is not an IPv4 or IPv6: address (RFC 5321 §4.1.3)", d)
	}
	return ip, nil
}

// Wire returns the form of a checked mailbox to send in MAIL FROM or RCPT TO,
// and whether that form needs the SMTPUTF8 extension. A mailbox with an ASCII
// local part goes out with its domain in A-label form and needs no SMTPUTF8
// (RFC 6531 §3.2); a non-ASCII local part goes out as it is and needs
// SMTPUTF8 (RFC 6531 §3.4).
func Wire(mbox string) (string, bool) {
	at := strings.LastIndexByte(mbox, '@')
	if at < 0 {
		return mbox, !isASCII(mbox)
	}
	local := mbox[:at]
	if !isASCII(local) {
		return mbox, true
	}
	if isASCII(mbox) {
		return mbox, false
	}
	d, err := Domain(mbox)
	if err != nil {
		return mbox, true
	}
	return local + "@" + d, false
}

// isLDH reports whether r may appear in a host name label: letters, digits,
// hyphen, and underscore (seen in the wild on MX targets, harmless here).
func isLDH(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_'
}

// isAtext reports whether c is an ASCII atext character (RFC 5322 §3.2.3).
func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
