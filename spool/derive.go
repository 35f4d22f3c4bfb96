package spool

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/mail"
	"strings"
)

// span is a byte range [start, end) of a spool file.
type span struct{ start, end int64 }

// derive reads the header block of a plain maildir message (a file with no
// envelope lines) and derives the envelope as "sendmail -t" does: recipients
// from every To, Cc and Bcc field in header order (RFC 5322 §3.6.3 address
// lists, groups allowed, duplicates dropped), the sender from the first
// Return-Path, else Sender, else From (the first address of From when it
// lists several). Bcc fields, with their continuation lines, become skips.
// The header is read by readHeader, the reader of submission; here a line
// that is no header field before the empty line is an error, since the
// file is read as it is, never repaired.
// The header's octets go into sum, the fingerprint of a file without an
// X-Envelope-Id (see Message.UID).
// Syntax errors are *ParseError; I/O errors are returned as they are.
func derive(br *bufio.Reader, sum *lineSum) (parsed, error) {
	h, err := readHeader(br, maxHeader, true)
	if err != nil {
		return parsed{}, err
	}
	sum.write(h.Raw)
	if !h.Ended {
		b, err := br.Peek(maxFieldName + 1)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
			return parsed{}, err
		}
		if len(b) > 0 { // readHeader stopped at a line that is no header field
			if b[0] == ' ' || b[0] == '\t' {
				return parsed{}, perr(h.lines+1, nil, "continuation line before any header field (RFC 5322 §2.2.3)")
			}
			text := b
			if i := bytes.IndexAny(text, "\r\n"); i >= 0 {
				text = text[:i]
			}
			return parsed{}, perr(h.lines+1, nil, "not a header field %q (RFC 5322 §2.2): a plain maildir message must start with its header", truncate(string(text), 40))
		}
	}
	p := parsed{derived: true}
	keptOne := false // a field that survives Bcc removal was seen
	for _, f := range h.Fields {
		if strings.EqualFold(f.Name, "Bcc") {
			p.skips = append(p.skips, span{int64(f.start), int64(f.end)})
			continue
		}
		if !keptOne {
			keptOne = true
			if hasEnvPrefix([]byte(f.Name)) {
				return parsed{}, perr(f.Line, nil, "field %q would be the first line once Bcc is removed and would read as an envelope line", f.Name)
			}
		}
	}
	if err := deriveAddrs(&p.env, h.Fields); err != nil {
		return parsed{}, err
	}
	p.sum = *sum
	return p, nil
}

// deriveAddrs fills env.From and env.To from the header fields.
func deriveAddrs(env *Envelope, fields []HeaderField) error {
	seen := make(map[string]bool)
	for _, f := range fields {
		switch {
		case strings.EqualFold(f.Name, "To"), strings.EqualFold(f.Name, "Cc"), strings.EqualFold(f.Name, "Bcc"):
		default:
			continue
		}
		if strings.Trim(f.Value, " \t") == "" {
			continue // an empty Bcc: is common and lists nobody
		}
		list, err := mail.ParseAddressList(f.Value)
		if err != nil {
			return perr(f.Line, err, "%s: cannot parse the address list (RFC 5322 §3.4): %v", f.Name, err)
		}
		for _, a := range list {
			mbox, err := checkMailbox(a.Address)
			if err != nil {
				return perr(f.Line, err, "%s: %v", f.Name, err)
			}
			if !seen[rcptKey(mbox)] {
				seen[rcptKey(mbox)] = true
				env.To = append(env.To, mbox)
			}
		}
	}
	if len(env.To) == 0 {
		return perr(0, nil, "plain maildir message without envelope lines has no recipient in To, Cc or Bcc")
	}
	for _, want := range [...]string{"Return-Path", "Sender", "From"} {
		for _, f := range fields {
			if !strings.EqualFold(f.Name, want) {
				continue
			}
			v := strings.Trim(f.Value, " \t")
			if want == "Return-Path" && v == "<>" {
				env.From = "" // the null reverse-path (RFC 5321 §4.4)
				return nil
			}
			list, err := mail.ParseAddressList(v)
			if err == nil && len(list) == 0 {
				err = errors.New("no address")
			}
			if err != nil {
				return perr(f.Line, err, "%s: cannot take the sender from it (RFC 5322 §3.4): %v", f.Name, err)
			}
			mbox, err := checkMailbox(list[0].Address)
			if err != nil {
				return perr(f.Line, err, "%s: %v", f.Name, err)
			}
			env.From = mbox
			return nil
		}
	}
	return perr(0, nil, "plain maildir message without envelope lines has no Return-Path, Sender or From to take the sender from")
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
