package addr

import (
	"errors"
	"fmt"
	"strings"
)

// List returns the addresses of a header field's address-list (RFC 5322
// §3.4: mailboxes with or without a display name, groups, comments, and
// the obsolete empty members of §4.4), in order, as written: the addr-spec
// of each mailbox, without angle brackets and comments. Unlike net/mail it
// keeps a mailbox without a domain ("root", "<root>", what cron writes in
// To and From) so that the caller can qualify it; it checks no address
// (addr.Check does). Errors name the rule broken.
func List(value string) ([]string, error) {
	ms, err := Mailboxes(value)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Addr
	}
	return out, nil
}

// Mailbox is one address of an address-list and where it is written:
// value[Start:End] is Addr.
type Mailbox struct {
	Addr       string
	Start, End int
}

// Mailboxes is List with the place of each address in value, so that a
// caller can rewrite one (qualify "root" where it stands).
func Mailboxes(value string) ([]Mailbox, error) {
	var (
		out        []Mailbox
		cur        strings.Builder // the current member's text outside comments and angle brackets
		first, end = -1, -1        // where the current member's text outside comments starts and ends
		angle      Mailbox         // the current member's <...> content
		inAng      bool            // the current member had a <...>
		after      bool            // text after the <...>: only white space and comments may follow
	)
	mark := func(from, to int) {
		if first < 0 {
			first = from
		}
		end = to
	}
	finish := func() error {
		text := strings.Trim(cur.String(), " \t\r\n")
		m := Mailbox{Addr: text, Start: first, End: end}
		switch {
		case inAng:
			m = angle
		case strings.ContainsAny(text, " \t") && !strings.Contains(text, "\""):
			return fmt.Errorf("%q is not an address (RFC 5322 §3.4: a display name needs the address in angle brackets)", text)
		case text != "" && value[first:end] != text:
			return fmt.Errorf("%q is not an address (a comment or white space inside it)", value[first:end])
		}
		if m.Addr != "" {
			out = append(out, m)
		}
		cur.Reset()
		first, end = -1, -1
		angle, inAng, after = Mailbox{}, false, false
		return nil
	}
	for i := 0; i < len(value); i++ {
		c := value[i]
		switch {
		case c == '"':
			j, err := skipQuoted(value, i)
			if err != nil {
				return nil, err
			}
			if after {
				return nil, fmt.Errorf("text after the address in angle brackets in %q (RFC 5322 §3.4)", value)
			}
			cur.WriteString(value[i : j+1])
			mark(i, j+1)
			i = j
		case c == '(':
			j, err := skipComment(value, i)
			if err != nil {
				return nil, err
			}
			cur.WriteByte(' ')
			i = j
		case c == '[':
			j := strings.IndexByte(value[i:], ']')
			if j < 0 {
				return nil, errors.New("unterminated domain literal: no ] (RFC 5322 §3.4.1)")
			}
			cur.WriteString(value[i : i+j+1])
			mark(i, i+j+1)
			i += j
		case c == '<':
			j := strings.IndexByte(value[i:], '>')
			if j < 0 || inAng {
				return nil, fmt.Errorf("unbalanced angle brackets in %q (RFC 5322 §3.4)", value)
			}
			in := value[i+1 : i+j]
			lead := len(in) - len(strings.TrimLeft(in, " \t\r\n"))
			angle = Mailbox{Addr: strings.Trim(in, " \t\r\n"), Start: i + 1 + lead}
			angle.End = angle.Start + len(angle.Addr)
			inAng, after = true, true
			i += j
		case c == ':' && !after:
			cur.Reset() // a group's display name (RFC 5322 §3.4)
			first, end = -1, -1
		case c == ',' || c == ';':
			if err := finish(); err != nil {
				return nil, err
			}
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			cur.WriteByte(c)
		default:
			if after {
				return nil, fmt.Errorf("text after the address in angle brackets in %q (RFC 5322 §3.4)", value)
			}
			cur.WriteByte(c)
			mark(i, i+1)
		}
	}
	if err := finish(); err != nil {
		return nil, err
	}
	return out, nil
}

// skipQuoted returns the index of the quote ending the quoted-string that
// starts at s[i] (RFC 5322 §3.2.4, with quoted-pairs).
func skipQuoted(s string, i int) (int, error) {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '"':
			return j, nil
		}
	}
	return 0, errors.New("unterminated quoted string (RFC 5322 §3.2.4)")
}

// skipComment returns the index of the parenthesis ending the comment that
// starts at s[i]; comments nest (RFC 5322 §3.2.2).
func skipComment(s string, i int) (int, error) {
	depth := 0
	for j := i; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '(':
			depth++
		case ')':
			if depth--; depth == 0 {
				return j, nil
			}
		}
	}
	return 0, errors.New("unterminated comment: no ) (RFC 5322 §3.2.2)")
}
