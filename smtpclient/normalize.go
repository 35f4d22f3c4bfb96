package smtpclient

import (
	"bytes"
	"io"
)

// maxLineLength is the longest line, in octets without the CRLF, that the
// normaliser lets through (RFC 5322 §2.1.1; RFC 5321 §4.5.3.1.6 allows 1000
// with the CRLF).
const maxLineLength = 998

const normBufSize = 8 << 10

// NewNormalizer returns a reader that yields r's octets as text with CRLF
// line endings only, fit for DataWriter:
//
//   - every CRLF, bare CR and bare LF becomes CRLF (so "\r.\r" cannot end
//     DATA early, RFC 5321 §2.3.8 and §4.1.1.4);
//   - a final line without a line ending gets a CRLF (empty input stays empty);
//   - in the header section (every line before the first empty line) a line
//     longer than 998 octets is folded (RFC 5322 §2.2.3): a CRLF is inserted
//     before the last space or tab that leaves at most 998 octets and a
//     non-blank first line, else "CRLF SP" is inserted after octet 998;
//     repeated until every line fits;
//   - in the body a line longer than 998 octets is broken with a CRLF after
//     every 998 octets, as Postfix's smtp_line_length_limit does.
//
// Folding keeps a header's meaning (unfolding restores it, except for the SP
// added where no whitespace was found); breaking a body line changes the
// content. Either change breaks a DKIM signature over that part (RFC 6376
// §3.4.4), which is the price of not being refused for lines over 998 octets
// (RFC 5321 §4.5.3.1.6).
//
// The conversion streams in constant memory (about 26 KiB) and is correct
// whatever sizes the underlying Reads return. Errors from r are passed on
// after the octets before them.
func NewNormalizer(r io.Reader) *Normalizer {
	z := &Normalizer{
		in:   make([]byte, normBufSize),
		out:  make([]byte, 0, 2*normBufSize+2*maxLineLength),
		line: make([]byte, 0, maxLineLength+1),
	}
	z.Reset(r)
	return z
}

// Normalizer is the state machine behind NewNormalizer. One can be reset
// for each message, keeping its buffers.
type Normalizer struct {
	r      io.Reader
	in     []byte
	out    []byte // produced octets; out[off:] not yet returned
	off    int
	line   []byte // header section: the current output line, at most 999 octets
	header bool   // still in the header section
	cr     bool   // the last input octet was a CR (a following LF belongs to it)
	n      int    // body: octets on the current output line
	err    error  // sticky: io.EOF or r's error, returned once out is drained
}

// Reset starts over on r (nil drops the last reader).
func (z *Normalizer) Reset(r io.Reader) {
	z.r, z.out, z.off, z.line = r, z.out[:0], 0, z.line[:0]
	z.header, z.cr, z.n, z.err = true, false, 0, nil
}

func (z *Normalizer) Read(p []byte) (int, error) {
	for {
		if z.off < len(z.out) {
			n := copy(p, z.out[z.off:])
			z.off += n
			return n, nil
		}
		z.out, z.off = z.out[:0], 0
		if z.err != nil {
			return 0, z.err
		}
		k, err := z.r.Read(z.in)
		z.process(z.in[:k])
		if err == io.EOF {
			z.finish()
		}
		z.err = err
	}
}

// process converts one chunk of input.
func (z *Normalizer) process(b []byte) {
	for len(b) > 0 {
		if z.cr {
			z.cr = false
			if b[0] == '\n' {
				b = b[1:]
				continue
			}
		}
		end := bytes.IndexByte(b, '\n')
		seg := b
		if end >= 0 {
			seg = b[:end]
		}
		if i := bytes.IndexByte(seg, '\r'); i >= 0 {
			end, seg = i, seg[:i]
		}
		if z.header {
			z.headerText(seg)
		} else {
			z.bodyText(seg)
		}
		if end < 0 {
			return
		}
		z.endLine()
		z.cr = b[end] == '\r'
		b = b[end+1:]
	}
}

// bodyText appends line content, breaking after every 998 octets. The break
// is written only when another octet follows, so a line of exactly 998
// octets stays whole.
func (z *Normalizer) bodyText(seg []byte) {
	for len(seg) > 0 {
		if z.n == maxLineLength {
			z.out = append(z.out, '\r', '\n')
			z.n = 0
		}
		k := min(len(seg), maxLineLength-z.n)
		z.out = append(z.out, seg[:k]...)
		z.n += k
		seg = seg[k:]
	}
}

// headerText buffers line content and folds as soon as the line is known to
// be too long (999 octets buffered).
func (z *Normalizer) headerText(seg []byte) {
	for len(seg) > 0 {
		k := min(len(seg), maxLineLength+1-len(z.line))
		z.line = append(z.line, seg[:k]...)
		seg = seg[k:]
		if len(z.line) > maxLineLength {
			z.fold()
		}
	}
}

// fold emits the first part of a 999-octet header line and keeps the rest
// (which starts with whitespace, making it a continuation line).
func (z *Normalizer) fold() {
	first := bytes.IndexFunc(z.line, func(r rune) bool { return r != ' ' && r != '\t' })
	cut := -1
	for i := maxLineLength; i > first && first >= 0; i-- {
		if z.line[i] == ' ' || z.line[i] == '\t' {
			cut = i
			break
		}
	}
	if cut > 0 {
		z.out = append(z.out, z.line[:cut]...)
		z.out = append(z.out, '\r', '\n')
		z.line = z.line[:copy(z.line, z.line[cut:])]
		return
	}
	z.out = append(z.out, z.line[:maxLineLength]...)
	z.out = append(z.out, '\r', '\n')
	z.line = append(z.line[:0], ' ', z.line[maxLineLength])
}

// endLine handles a line ending in the input.
func (z *Normalizer) endLine() {
	if !z.header {
		z.out = append(z.out, '\r', '\n')
		z.n = 0
		return
	}
	if len(z.line) == 0 { // the empty line that ends the header section
		z.header = false
	}
	z.out = append(z.out, z.line...)
	z.out = append(z.out, '\r', '\n')
	z.line = z.line[:0]
}

// finish ends an unterminated last line at EOF.
func (z *Normalizer) finish() {
	switch {
	case z.header && len(z.line) > 0:
		z.out = append(z.out, z.line...)
		z.out = append(z.out, '\r', '\n')
		z.line = z.line[:0]
	case !z.header && z.n > 0:
		z.out = append(z.out, '\r', '\n')
		z.n = 0
	}
}
