package report

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escape makes s safe to print on one line of a text log or a terminal:
// every control character (C0, DEL, C1: a newline that would start a
// forged "status=sent" or "exit 0" line, a CR that would overwrite one, an
// ESC that would drive the terminal), every other character Go does not
// count as printable (bidirectional overrides among them) and every octet
// that is not UTF-8 is written as a Go escape (\n, \x1b, \u202e, \xff).
// The space and printable Unicode are kept, so an address in UTF-8 reads
// as itself. (A backslash is kept as it is: the point is that nothing
// printed from the spool can start a line or drive the terminal, not that
// the text can be decoded again.)
//
// Everything the text outputs print from the spool or from a remote server
// (message IDs, addresses, reply texts, reasons) goes through it.
func Escape(s string) string {
	return escape(s, false)
}

// EscapeText is Escape for text of several lines, such as a message's
// header section shown by mxflush show: LF, CR LF and TAB are kept; every
// other control character, a CR not before an LF included, is escaped.
func EscapeText(s string) string {
	return escape(s, true)
}

func escape(s string, text bool) string {
	if printable(s, text) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case kept(s, i, r, text):
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
		i += size
	}
	return b.String()
}

// kept reports whether the rune r at s[i] is printed as it is.
func kept(s string, i int, r rune, text bool) bool {
	switch {
	case r == ' ':
		return true
	case text && (r == '\n' || r == '\t'):
		return true
	case text && r == '\r':
		return i+1 < len(s) && s[i+1] == '\n'
	}
	return unicode.IsPrint(r)
}

// printable reports whether escape leaves s unchanged; printable ASCII,
// the common case, takes one pass over the octets.
func printable(s string, text bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			for j := i; j < len(s); {
				r, size := utf8.DecodeRuneInString(s[j:])
				if (r == utf8.RuneError && size == 1) || !kept(s, j, r, text) {
					return false
				}
				j += size
			}
			return true
		}
		if (c < 0x20 || c == 0x7f) && !kept(s, i, rune(c), text) {
			return false
		}
	}
	return true
}
