package spool

import (
	"bufio"
	"errors"
	"io"
	"net/mail"
	"strings"
)

// span is a byte range [start, end) of a spool file.
type span struct{ start, end int64 }

// headerField is one unfolded header field of a plain maildir message.
type headerField struct {
	name  string // as written, without trailing white space
	value string // unfolded (line breaks removed), untrimmed
	line  int    // 1-based line of the field's first line
}

// derive reads the header block of a plain maildir message (a file with no
// envelope lines) and derives the envelope as "sendmail -t" does: recipients
// from every To, Cc and Bcc field in header order (RFC 5322 §3.6.3 address
// lists, groups allowed, duplicates dropped), the sender from the first
// Return-Path, else Sender, else From (the first address of From when it
// lists several). Bcc fields, with their continuation lines, become skips.
// Syntax errors are *ParseError; I/O errors are returned as they are.
func derive(br *bufio.Reader, h *lineSum) (parsed, error) {
	var (
		p       = parsed{derived: true}
		fields  []headerField
		cur     *headerField
		curBcc  bool
		curOff  int64
		off     int64
		buf     = make([]byte, 0, 256)
		keptOne bool // a line that survives Bcc removal was seen
	)
	end := func() {
		if cur != nil && curBcc {
			p.skips = append(p.skips, span{curOff, off})
		}
		cur = nil
	}
	for lineNo := 1; ; lineNo++ {
		line, err := readLine(br, buf, maxHeader)
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, errLineTooLong) || off+int64(len(line)) > maxHeader {
			return parsed{}, perr(lineNo, nil, "header block longer than %d octets", maxHeader)
		}
		if err != nil {
			return parsed{}, err
		}
		buf = line
		h.write(line)
		text := trimEOL(line)
		if len(text) == 0 { // the empty line that ends the header (RFC 5322 §2.1)
			end()
			break
		}
		if text[0] == ' ' || text[0] == '\t' {
			if cur == nil {
				return parsed{}, perr(lineNo, nil, "continuation line before any header field (RFC 5322 §2.2.3)")
			}
			cur.value += string(text)
			off += int64(len(line))
			continue
		}
		end()
		colon := fieldNameEnd(text[:min(len(text), maxFieldName+1)]) // the window checkFirstLine sees
		if colon < 0 {
			return parsed{}, perr(lineNo, nil, "not a header field %q (RFC 5322 §2.2): a plain maildir message must start with its header", truncate(string(text), 40))
		}
		name := strings.TrimRight(string(text[:colon]), " \t")
		fields = append(fields, headerField{name: name, value: string(text[colon+1:]), line: lineNo})
		cur, curBcc, curOff = &fields[len(fields)-1], strings.EqualFold(name, "Bcc"), off
		if !curBcc && !keptOne {
			keptOne = true
			if hasEnvPrefix(text) {
				return parsed{}, perr(lineNo, nil, "field %q would be the first line once Bcc is removed and would read as an envelope line", name)
			}
		}
		off += int64(len(line))
	}
	end()
	if err := deriveAddrs(&p.env, fields); err != nil {
		return parsed{}, err
	}
	p.sum = *h
	return p, nil
}

// deriveAddrs fills env.From and env.To from the header fields.
func deriveAddrs(env *Envelope, fields []headerField) error {
	seen := make(map[string]bool)
	for _, f := range fields {
		switch {
		case strings.EqualFold(f.name, "To"), strings.EqualFold(f.name, "Cc"), strings.EqualFold(f.name, "Bcc"):
		default:
			continue
		}
		if strings.Trim(f.value, " \t") == "" {
			continue // an empty Bcc: is common and lists nobody
		}
		list, err := mail.ParseAddressList(f.value)
		if err != nil {
			return perr(f.line, err, "%s: cannot parse the address list (RFC 5322 §3.4): %v", f.name, err)
		}
		for _, a := range list {
			mbox, err := checkMailbox(a.Address)
			if err != nil {
				return perr(f.line, err, "%s: %v", f.name, err)
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
			if !strings.EqualFold(f.name, want) {
				continue
			}
			v := strings.Trim(f.value, " \t")
			if want == "Return-Path" && v == "<>" {
				env.From = "" // the null reverse-path (RFC 5321 §4.4)
				return nil
			}
			list, err := mail.ParseAddressList(v)
			if err == nil && len(list) == 0 {
				err = errors.New("no address")
			}
			if err != nil {
				return perr(f.line, err, "%s: cannot take the sender from it (RFC 5322 §3.4): %v", f.name, err)
			}
			mbox, err := checkMailbox(list[0].Address)
			if err != nil {
				return perr(f.line, err, "%s: %v", f.name, err)
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
