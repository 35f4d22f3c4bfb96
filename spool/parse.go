package spool

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

const (
	maxEnvLine   = 4096    // octets of one envelope line, line ending included
	maxHeader    = 1 << 20 // octets of a plain message's header block (derived envelopes)
	maxFieldName = 998     // RFC 5322 §2.1.1 line limit, applied to a field name
)

var errLineTooLong = errors.New("line too long")

// readLine returns the next line of br with its LF (the file's last line may
// lack one), appending to buf[:0]. A line longer than max octets gives
// errLineTooLong; io.EOF only when nothing was read.
func readLine(br *bufio.Reader, buf []byte, max int) ([]byte, error) {
	buf = buf[:0]
	for {
		frag, err := br.ReadSlice('\n')
		if len(buf)+len(frag) > max {
			return nil, errLineTooLong
		}
		buf = append(buf, frag...)
		switch {
		case err == nil:
			return buf, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(buf) > 0:
			return buf, nil
		default:
			return nil, err
		}
	}
}

// trimEOL removes a trailing LF and then one CR.
func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}

// parsed is what reading the start of a file yields.
type parsed struct {
	env     Envelope
	bodyOff int64   // offset of the RFC 5322 message in the file
	derived bool    // no envelope lines: env comes from the header fields
	skips   []span  // Bcc fields to leave out when reading a derived message
	sum     lineSum // of the lines read (envelope lines, or a derived message's header block), for fingerprint
}

// parse reads the envelope at the start of br. needTo (new/ and cur/)
// requires a pending recipient; otherwise (failed/) a pending or failed one.
// Syntax errors are *ParseError with File unset; I/O errors are returned as
// they are. Arrival is left zero when the file has no Arrival line.
func parse(br *bufio.Reader, needTo bool) (parsed, error) {
	var p parsed
	var st envState
	h := newLineSum()
	buf := make([]byte, 0, 256)
	for lineNo := 1; ; lineNo++ {
		head, err := br.Peek(len(envPrefix))
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
			return parsed{}, err
		}
		if !hasEnvPrefix(head) {
			if lineNo == 1 {
				return derive(br, &h)
			}
			if err := checkFirstLine(br, lineNo); err != nil {
				return parsed{}, err
			}
			break
		}
		line, err := readLine(br, buf, maxEnvLine)
		if errors.Is(err, errLineTooLong) {
			return parsed{}, perr(lineNo, nil, "envelope line longer than %d octets", maxEnvLine)
		} else if err != nil {
			return parsed{}, err
		}
		p.bodyOff += int64(len(line))
		h.write(line)
		if err := st.line(&p.env, string(trimEOL(line)), lineNo); err != nil {
			return parsed{}, err
		}
		buf = line
	}
	if err := st.finish(&p.env, needTo); err != nil {
		return parsed{}, err
	}
	p.sum = h
	return p, nil
}

// checkFirstLine checks the line where the message starts after the
// envelope: an empty line or a header field; the end of the file (no
// message at all) is an error ("Name:", RFC 5322
// §2.2). Anything else means the envelope was damaged, for example an
// address split by an injected CR LF (command injection, RFC 5321 §4.1.2).
func checkFirstLine(br *bufio.Reader, lineNo int) error {
	b, err := br.Peek(maxFieldName + 1)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return err
	}
	if len(b) == 0 {
		return perr(lineNo, nil, "no message after the envelope lines: there is nothing to send")
	}
	if b[0] == '\n' || (b[0] == '\r' && (len(b) == 1 || b[1] == '\n')) {
		return nil
	}
	if b[0] == ' ' || b[0] == '\t' {
		return perr(lineNo, nil, "line starts with white space after the envelope lines: envelope lines are never folded")
	}
	if fieldNameEnd(b) < 0 {
		return perr(lineNo, nil, "the message does not start with a header field (RFC 5322 §2.2) after the envelope lines; was an envelope line split by a CR or LF?")
	}
	return nil
}

// fieldNameEnd returns the index of the colon ending a header field name at
// the start of b (printable US-ASCII except colon, at least one, RFC 5322
// §2.2; obsolete white space before the colon allowed, §4.5), or -1.
func fieldNameEnd(b []byte) int {
	for i, c := range b {
		switch {
		case c == ':':
			if i == 0 {
				return -1
			}
			return i
		case c == ' ' || c == '\t':
			// obs-optional WSP before the colon, only after a name
			j := i
			for j < len(b) && (b[j] == ' ' || b[j] == '\t') {
				j++
			}
			if i == 0 || j >= len(b) || b[j] != ':' {
				return -1
			}
			return j
		case c < 33 || c > 126:
			return -1
		}
	}
	return -1
}

// envState tracks which single-valued fields were seen.
type envState struct {
	id, from, arrival, attempts, next, warned bool
	seenTo                                    map[string]bool
}

func (st *envState) line(env *Envelope, s string, n int) error {
	colon := strings.IndexByte(s, ':')
	if colon < 0 {
		return perr(n, nil, "envelope line has no colon after the field name")
	}
	name := canonicalField(s[:colon])
	if name == "" {
		return perr(n, nil, "unknown envelope field %q (known: %s)", s[:colon], knownFields)
	}
	v := strings.Trim(s[colon+1:], " \t")
	bad := func(err error, format string, args ...any) error {
		return perr(n, err, name+": "+format, args...)
	}
	once := func(seen *bool) error {
		if *seen {
			return bad(nil, "more than one %s line", name)
		}
		*seen = true
		return nil
	}
	switch name {
	case fieldID:
		if err := once(&st.id); err != nil {
			return err
		}
		if err := checkUID(v); err != nil {
			return bad(err, "%v", err)
		}
		env.UID = v
	case fieldFrom:
		if err := once(&st.from); err != nil {
			return err
		}
		if v == "<>" {
			return nil
		}
		mbox, err := bracketed(v, checkMailbox)
		if err != nil {
			return bad(err, "%v", err)
		}
		env.From = mbox
	case fieldTo:
		mbox, err := bracketed(v, rcptMailbox)
		if err != nil {
			return bad(err, "%v", err)
		}
		if st.seenTo == nil {
			st.seenTo = make(map[string]bool)
		}
		if !st.seenTo[rcptKey(mbox)] {
			st.seenTo[rcptKey(mbox)] = true
			env.To = append(env.To, mbox)
		}
	case fieldArrival, fieldNext, fieldWarned:
		seen, dst := &st.arrival, &env.Arrival
		switch name {
		case fieldNext:
			seen, dst = &st.next, &env.NextAttempt
		case fieldWarned:
			seen, dst = &st.warned, &env.Warned
		}
		if err := once(seen); err != nil {
			return err
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return bad(err, "%q is not an RFC 3339 time like 2026-11-29T12:00:00Z", v)
		}
		if *dst, err = utcSecond(t); err != nil {
			return bad(err, "%v", err)
		}
	case fieldAttempts:
		if err := once(&st.attempts); err != nil {
			return err
		}
		if v == "" || len(v) > maxAttemptsText || strings.Trim(v, "0123456789") != "" {
			return bad(nil, "%q is not a decimal count of at most %d digits", v, maxAttemptsText)
		}
		env.Attempts, _ = strconv.Atoi(v)
	case fieldReply, fieldFailed:
		var notice Notice
		if name == fieldFailed {
			var err error
			if notice, v, err = cutNotice(v); err != nil {
				return bad(err, "%v", err)
			}
		}
		mbox, text, err := withReply(v)
		if err != nil {
			return bad(err, "%v", err)
		}
		if name == fieldFailed {
			env.Failed = append(env.Failed, Failure{Rcpt: mbox, Reply: text, Notice: notice})
			break
		}
		if env.Replies == nil {
			env.Replies = make(map[string]string)
		}
		env.Replies[mbox] = text // the last one wins
	}
	return nil
}

// finish applies the whole-envelope rules once every line is read.
func (st *envState) finish(env *Envelope, needTo bool) error {
	if !st.from {
		return perr(0, nil, "envelope has no %s line (exactly one is required; <> for the null sender)", fieldFrom)
	}
	for rcpt := range env.Replies {
		if !st.seenTo[rcptKey(rcpt)] {
			delete(env.Replies, rcpt) // a reply for a recipient no longer pending says nothing
		}
	}
	if len(env.Replies) == 0 {
		env.Replies = nil
	}
	switch {
	case needTo && len(env.To) == 0:
		return perr(0, nil, "envelope has no %s line (a pending recipient is required in new/ and cur/)", fieldTo)
	case len(env.To) == 0 && len(env.Failed) == 0:
		return perr(0, nil, "envelope has neither %s nor %s lines", fieldTo, fieldFailed)
	}
	return nil
}

// bracketed parses "<mailbox>" and checks the mailbox with check (RFC 5321
// §4.1.2): checkMailbox for the sender, rcptMailbox for recipients.
func bracketed(v string, check func(string) (string, error)) (string, error) {
	if len(v) < 2 || v[0] != '<' || v[len(v)-1] != '>' {
		return "", fmt.Errorf("%q is not one address in angle brackets like <bob@example.test>", v)
	}
	return check(v[1 : len(v)-1])
}

// withReply parses "<mailbox> reply text"; the text may be empty.
func withReply(v string) (mbox, text string, err error) {
	end := strings.IndexByte(v, '>')
	if len(v) < 2 || v[0] != '<' || end < 0 {
		return "", "", fmt.Errorf("%q does not start with an address in angle brackets like <bob@example.test>", v)
	}
	if mbox, err = rcptMailbox(v[1:end]); err != nil {
		return "", "", err
	}
	text = v[end+1:]
	if text != "" && text[0] != ' ' && text[0] != '\t' {
		return "", "", fmt.Errorf("no space between the address and the reply in %q", v)
	}
	text = strings.Trim(text, " \t")
	if i := strings.IndexFunc(text, func(r rune) bool { return (r < 0x20 && r != '\t') || r == 0x7f }); i >= 0 {
		return "", "", fmt.Errorf("control character %q in the reply text (CR, LF and NUL are never stored)", text[i])
	}
	return mbox, text, nil
}

// cutNotice splits the optional notice token off an X-Envelope-Failed value:
// "bounced <gone@example.test> 550 ..." gives NoticeBounced and the rest. A
// value that starts with "<" has no token (files written before notices
// existed). The token comes before the address so that no reply text can be
// mistaken for one.
func cutNotice(v string) (Notice, string, error) {
	if strings.HasPrefix(v, "<") {
		return NoticeUnknown, v, nil
	}
	tok, rest, _ := strings.Cut(v, " ")
	n := Notice(tok)
	if n == NoticeUnknown || checkNotice(n) != nil {
		return "", "", fmt.Errorf("%q does not start with an address in angle brackets or with %q or %q", v, NoticeBounced, NoticeNone)
	}
	return n, strings.TrimLeft(rest, " \t"), nil
}
