package spool

import (
	"bufio"
	"errors"
	"io"
	"strings"
)

// Header is the header section at the start of a message, as ReadHeader
// reads it: the fields in order, and the octets they came from.
type Header struct {
	Raw    []byte        // the lines as read, line endings kept, the empty line that ends the section included
	Fields []HeaderField // in order
	Ended  bool          // an empty line ended the section (the last line of Raw)
	lines  int           // lines read, the empty line included
}

// HeaderField is one header field of a Header.
type HeaderField struct {
	Name       string // as written, without the white space the obsolete syntax allows before the colon (RFC 5322 §4.5.3)
	Value      string // unfolded (line breaks removed), untrimmed
	Line       int    // 1-based line of the field's first line
	start, end int    // the field's octets in Raw, continuation lines included
}

// ReadHeader reads the header section at the start of br the way Postfix's
// cleanup tells a header from a body: it takes lines while each is a header
// field ("name:" with printable US-ASCII in the name and, in the obsolete
// syntax, white space before the colon, RFC 5322 §2.2 and §4.5.3) or a
// continuation line of one (RFC 5322 §2.2.3), and stops before the first
// line that is neither, which it leaves in br, or after the empty line
// that ends the section (RFC 5322 §2.1), or at the end of the input. So
// input whose first line is no header field has an empty Header: all of it
// is body. A section longer than max octets is a *ParseError; I/O errors
// are returned as they are.
func ReadHeader(br *bufio.Reader, max int) (*Header, error) {
	return readHeader(br, max, true)
}

// readHeader is ReadHeader; Raw is kept only when keep is set.
func readHeader(br *bufio.Reader, max int, keep bool) (*Header, error) {
	h := &Header{}
	var cur *HeaderField
	buf := make([]byte, 0, 256)
	size := 0
	for {
		b, err := br.Peek(maxFieldName + 1)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
		if len(b) == 0 {
			return h, nil
		}
		field := -1
		switch {
		case b[0] == '\n' || (b[0] == '\r' && (len(b) == 1 || b[1] == '\n')):
			line, err := readLine(br, buf, 2)
			if err != nil {
				return nil, err
			}
			h.lines++
			if keep {
				h.Raw = append(h.Raw, line...)
			}
			h.Ended = true
			return h, nil
		case b[0] == ' ' || b[0] == '\t':
			if cur == nil {
				return h, nil // white space before any field: a body (as Postfix reads it)
			}
		default:
			if field = fieldNameEnd(b); field < 0 {
				return h, nil
			}
		}
		line, err := readLine(br, buf, max-size)
		if errors.Is(err, errLineTooLong) {
			return nil, perr(h.lines+1, nil, "header section longer than %d octets", max)
		}
		if err != nil {
			return nil, err
		}
		buf = line
		h.lines++
		text := trimEOL(line)
		if field < 0 {
			cur.Value += string(text)
		} else {
			h.Fields = append(h.Fields, HeaderField{
				Name:  strings.TrimRight(string(text[:field]), " \t"),
				Value: string(text[field+1:]),
				Line:  h.lines,
				start: size,
			})
			cur = &h.Fields[len(h.Fields)-1]
		}
		size += len(line)
		cur.end = size
		if keep {
			h.Raw = append(h.Raw, line...)
		}
	}
}

// Get returns the value of the first field named name (in any case),
// trimmed, or "".
func (h *Header) Get(name string) string {
	for _, f := range h.Fields {
		if strings.EqualFold(f.Name, name) {
			return strings.Trim(f.Value, " \t")
		}
	}
	return ""
}

// Has reports whether a field named name (in any case) is present.
func (h *Header) Has(name string) bool {
	for _, f := range h.Fields {
		if strings.EqualFold(f.Name, name) {
			return true
		}
	}
	return false
}

// Without returns Raw without every field named name (in any case) and
// its continuation lines: "sendmail -t" removing Bcc (RFC 5322 §3.6.3).
func (h *Header) Without(name string) []byte {
	return h.Rewrite(func(f HeaderField) ([]byte, bool) { return nil, strings.EqualFold(f.Name, name) })
}

// Rewrite returns Raw with the fields edit replaces: for each field, edit
// returns its new text (whole lines with their line endings; nil removes
// the field) and true, or false to keep the field as it is.
func (h *Header) Rewrite(edit func(f HeaderField) ([]byte, bool)) []byte {
	out := make([]byte, 0, len(h.Raw))
	prev := 0
	for _, f := range h.Fields {
		if repl, ok := edit(f); ok {
			out = append(out, h.Raw[prev:f.start]...)
			out = append(out, repl...)
			prev = f.end
		}
	}
	return append(out, h.Raw[prev:]...)
}
