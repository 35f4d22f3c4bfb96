package deliver

import (
	"bufio"
	"context"
	"io"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// maxGroup bounds the RCPT commands written before their replies are read
// when the server offers PIPELINING: RFC 2920 §3.1 lets the client send a
// whole group, but a server that cannot write its replies while we are
// still writing commands would deadlock us both. 100 commands of at most
// 512 octets (RFC 5321 §4.5.3.1.4) and their replies fit any socket buffer.
const maxGroup = 100

// mailCommand builds "MAIL FROM:<from>" with the parameters the server
// offers: BODY=8BITMIME (RFC 6152), SIZE= (RFC 1870 §6), SMTPUTF8 (RFC 6531
// §3.4). from and the parameters were checked for CR, LF and NUL.
func (s *Session) mailCommand(from string, size int64, utf8 bool) string {
	var b strings.Builder
	b.WriteString("MAIL FROM:<")
	b.WriteString(from)
	b.WriteByte('>')
	if s.eightBit {
		b.WriteString(" BODY=8BITMIME")
	}
	if s.size && size > 0 {
		b.WriteString(" SIZE=")
		b.WriteString(strconv.FormatInt(size, 10))
	}
	if utf8 {
		b.WriteString(" SMTPUTF8")
	}
	return b.String()
}

// transaction runs one mail transaction for the recipients in pending (in
// order): MAIL, RCPT for each, DATA and the body, and returns the
// recipients left for another transaction after a 452 (RFC 5321
// §4.5.3.1.10). The message is opened first, so that a message that cannot
// be read costs no command. When the server offers PIPELINING (RFC 2920)
// MAIL, the RCPTs and DATA go out as one group and their replies are read
// after it; otherwise each command waits for its reply.
func (s *Session) transaction(ctx context.Context, m Message, mail string, to []string,
	pending []int, res *results) (next []int, lost *LostError) {
	rc, err := m.Open()
	if err != nil {
		res.setAll(pending, localError(false, "4.3.0", "cannot open the message: "+err.Error(), err))
		return nil, nil
	}
	defer rc.Close()
	_ = s.conn.SetDeadline(time.Now().Add(s.o.CommandTimeout))
	defer s.conn.SetDeadline(time.Time{})
	var env envelopeResult
	if s.pipelining {
		env = s.envelopePipelined(mail, to, pending, res)
	} else {
		env = s.envelopeSequential(mail, to, pending, res)
	}
	switch {
	case env.lost != nil:
		return nil, s.lose(ctx, env.lost, true)
	case len(env.accepted) > 0 && env.data:
		return env.next, s.body(ctx, rc, env.accepted, res)
	case env.data:
		// RFC 2920 §3.1: DATA accepted with no recipient: end the empty
		// message with a lone dot; the server has nobody to send it to.
		return env.next, s.emptyData(ctx)
	case env.mailOK:
		return env.next, s.reset(ctx)
	}
	return env.next, nil
}

// envelopeResult is what MAIL, RCPT and DATA left: the recipients accepted
// and those to retry in a new transaction (452), whether the MAIL was
// accepted, whether DATA got its 354, or why the session was lost.
type envelopeResult struct {
	accepted, next []int
	mailOK, data   bool
	lost           *Error
}

// envelopeSequential sends MAIL, each RCPT and DATA one at a time, each
// after the reply to the one before. A refused MAIL ends the transaction;
// a 452 stops the RCPTs (the rest go in a new transaction); DATA is sent
// only when some recipient was accepted.
func (s *Session) envelopeSequential(mail string, to []string, pending []int, res *results) (r envelopeResult) {
	e, lost := s.command(cmdMail, 2, mail)
	if lost != nil {
		return envelopeResult{lost: lost}
	}
	if e != nil {
		res.setAll(pending, authRequired(e))
		return r
	}
	r.mailOK = true
	for k, i := range pending {
		e, lost := s.command(cmdRcpt, 2, "RCPT TO:<"+to[i]+">")
		if lost != nil {
			return envelopeResult{lost: lost}
		}
		if e == nil {
			r.accepted = append(r.accepted, i)
			continue
		}
		if e.Code == 452 { // too many recipients: the rest go in a new transaction
			if len(r.accepted) == 0 {
				res.setAll(pending[k:], e)
			} else {
				r.next = pending[k:]
			}
			break
		}
		res.set(i, authRequired(e), "")
	}
	if len(r.accepted) == 0 {
		return r
	}
	e, lost = s.command(cmdData, 3, "DATA")
	if lost != nil {
		return envelopeResult{lost: lost}
	}
	if e != nil {
		res.setAll(r.accepted, e)
		r.accepted = nil
		return r
	}
	r.data = true
	return r
}

// envelopePipelined writes MAIL, the RCPTs and DATA as one group (in
// writes of at most maxGroup RCPTs) and then reads every reply in order,
// as RFC 2920 §3.1 requires of the client: a refused MAIL fails every
// recipient whatever the RCPT replies say; each 452 recipient goes in a new
// transaction if another was accepted, else it is deferred; the DATA reply
// is read even when no recipient was accepted, because a server may accept
// DATA anyway.
func (s *Session) envelopePipelined(mail string, to []string, pending []int, res *results) (r envelopeResult) {
	var mailErr *Error
	var tooMany []int
	tooManyErr := map[int]*Error{}
	s.bw.WriteString(mail + "\r\n")
	for k := 0; k < len(pending); {
		group := pending[k:min(k+maxGroup, len(pending))]
		for _, i := range group {
			s.bw.WriteString("RCPT TO:<" + to[i] + ">\r\n")
		}
		last := k+len(group) == len(pending)
		if last {
			s.bw.WriteString("DATA\r\n")
		}
		if err := s.bw.Flush(); err != nil {
			return envelopeResult{lost: ioError(cmdRcpt, err)}
		}
		if k == 0 {
			e, lost := s.reply(cmdMail, 2)
			if lost != nil {
				return envelopeResult{lost: lost}
			}
			if e != nil {
				mailErr = authRequired(e)
			}
		}
		for _, i := range group {
			e, lost := s.reply(cmdRcpt, 2)
			switch {
			case lost != nil:
				return envelopeResult{lost: lost}
			case mailErr != nil:
				res.set(i, mailErr, "")
			case e == nil:
				r.accepted = append(r.accepted, i)
			case e.Code == 452:
				tooMany = append(tooMany, i)
				tooManyErr[i] = e
			default:
				res.set(i, authRequired(e), "")
			}
		}
		k += len(group)
	}
	e, lost := s.reply(cmdData, 3)
	if lost != nil {
		return envelopeResult{lost: lost}
	}
	r.mailOK, r.data = mailErr == nil, e == nil
	if len(r.accepted) > 0 {
		r.next = tooMany
		if e != nil {
			res.setAll(r.accepted, e)
			r.accepted = nil
		}
	} else {
		for _, i := range tooMany {
			res.set(i, tooManyErr[i], "")
		}
	}
	return r
}

// body streams the message after a 354 through the normaliser and the dot
// stuffer (RFC 5321 §4.5.2), ends it with the final dot and reads the reply
// within FinalTimeout, which applies to every accepted recipient.
func (s *Session) body(ctx context.Context, rc io.Reader, accepted []int, res *results) *LostError {
	if s.norm == nil {
		s.norm = newNormalizer()
	}
	s.norm.reset(rc)
	defer s.norm.reset(nil)
	// Each write of the body gets DataTimeout (RFC 5321 §4.5.3.2.5).
	_ = s.conn.SetDeadline(time.Time{})
	s.conn.writeErr = nil
	dw := s.tw.DotWriter()
	buf := s.buffer()
	for {
		n, err := s.norm.Read(buf)
		if n > 0 {
			if _, werr := dw.Write(buf[:n]); werr != nil {
				return s.lose(ctx, ioError(cmdData, werr), true)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			// The only way to abort DATA is to drop the connection before
			// the final dot (RFC 5321 §4.1.1.4): the server then discards it.
			e := localError(false, "4.3.0", "reading the message failed during DATA: "+err.Error(), err)
			return s.lose(ctx, e, true)
		}
	}
	if err := dw.Close(); err != nil { // writes ".\r\n" and flushes
		return s.lose(ctx, ioError(cmdEOD, err), true)
	}
	_ = s.conn.SetDeadline(time.Now().Add(s.o.FinalTimeout))
	code, lines, err := s.readReply()
	if err != nil {
		// The final dot got out unless writing it failed.
		return s.lose(ctx, ioError(cmdEOD, err), s.conn.writeErr != nil)
	}
	if e, lost := judge(cmdEOD, 2, code, lines); e != nil {
		if lost {
			return s.lose(ctx, e, false)
		}
		res.setAll(accepted, e)
		return nil
	}
	reply := strconv.Itoa(code) + " " + oneLine(strings.Join(replyTexts(lines), "\n"))
	for _, i := range accepted {
		res.set(i, nil, reply)
	}
	s.o.Logger.Debug("smtp message accepted", "relay", s.relay, "rcpts", len(accepted), "reply", reply)
	return nil
}

// emptyData ends a DATA the server accepted without a valid recipient with
// a lone dot (RFC 2920 §3.1). Nobody's result depends on the reply.
func (s *Session) emptyData(ctx context.Context) *LostError {
	s.bw.WriteString(".\r\n")
	if err := s.bw.Flush(); err != nil {
		return s.lose(ctx, ioError(cmdEOD, err), true)
	}
	if _, lost := s.reply(cmdEOD, 2); lost != nil {
		return s.lose(ctx, lost, true)
	}
	return nil
}

// reset aborts a transaction that will not reach the end of data (RFC 5321
// §4.1.1.5). Any failure loses the session: its state is no longer known.
func (s *Session) reset(ctx context.Context) *LostError {
	_ = s.conn.SetDeadline(time.Now().Add(s.o.CommandTimeout))
	e, lost := s.command(cmdRset, 2, "RSET")
	if lost == nil && e != nil {
		lost = e
	}
	if lost != nil {
		return s.lose(ctx, lost, true)
	}
	return nil
}

// command writes one command line and reads its reply; see reply.
func (s *Session) command(cmd string, want int, line string) (e, lost *Error) {
	s.bw.WriteString(line + "\r\n")
	if err := s.bw.Flush(); err != nil {
		return nil, ioError(cmd, err)
	}
	return s.reply(cmd, want)
}

// reply reads the reply to cmd and judges it against the wanted class
// (2 for 2yz, 3 for 354): see judge. An I/O error, a timeout or a
// malformed reply loses the session (the second *Error).
func (s *Session) reply(cmd string, want int) (e, lost *Error) {
	code, lines, err := s.readReply()
	if err != nil {
		return nil, ioError(cmd, err)
	}
	e, isLost := judge(cmd, want, code, lines)
	if isLost {
		return nil, e
	}
	return e, nil
}

// readReply reads one reply from the connection and traces it.
func (s *Session) readReply() (int, []string, error) {
	code, lines, err := readReply(s.br)
	if s.o.Debug != nil && len(lines) > 0 {
		trace(s.o, "", lines)
	}
	return code, lines, err
}

// judge turns a reply into nil (its class is want), or an *Error, and says
// whether the session is lost: a 421 (RFC 5321 §3.8) or a reply outside
// 4yz/5yz that was not wanted leaves the server's state unknown.
func judge(cmd string, want, code int, lines []string) (e *Error, lost bool) {
	if code/100 == want {
		return nil, false
	}
	e = replyError(cmd, commandReply(code, lines))
	class := code / 100
	return e, code == 421 || (class != 4 && class != 5)
}

// commandReply builds the *smtp.SMTPError of a reply to a command as
// go-smtp does: the enhanced status code (RFC 2034 §4) is taken from the
// first line and left out of every line that repeats it.
func commandReply(code int, lines []string) *smtp.SMTPError {
	texts := replyTexts(lines)
	se := &smtp.SMTPError{Code: code, EnhancedCode: smtp.NoEnhancedCode, Message: strings.Join(texts, "\n")}
	word, _, ok := strings.Cut(texts[0], " ")
	if !ok {
		return se
	}
	ec, ok := parseStatus(word)
	if !ok {
		return se
	}
	for i, t := range texts {
		texts[i] = strings.TrimPrefix(t, word+" ")
	}
	se.EnhancedCode, se.Message = ec, strings.Join(texts, "\n")
	return se
}

// replyTexts is the text of each reply line, after "ddd-" or "ddd ".
func replyTexts(lines []string) []string {
	texts := make([]string, len(lines))
	for i, l := range lines {
		texts[i] = replyText(l)
	}
	return texts
}

// newWriters sets up the buffered writer for commands and bodies: 8 KiB,
// so that a small message and its final dot leave in one write. With
// Options.Debug every octet written is traced too.
func (s *Session) newWriters() {
	var out io.Writer = s.conn
	if s.o.Debug != nil {
		out = io.MultiWriter(s.conn, s.o.Debug)
	}
	s.bw = bufio.NewWriterSize(out, 8<<10)
	s.tw = textproto.NewWriter(s.bw)
}
