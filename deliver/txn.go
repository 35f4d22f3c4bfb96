package deliver

import (
	"context"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/mxflush/mxflush/mta"
	"github.com/mxflush/mxflush/smtpclient"
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

// transaction runs one mail transaction for p.pending (in order): MAIL,
// RCPT for each, DATA and the body, and leaves in p.pending the recipients
// for another transaction after a 452 (RFC 5321 §4.5.3.1.10). The message
// is opened first, so that a message that cannot be read costs no command
// (a look-ahead message is open already, and its commands may be written
// already). When the server offers PIPELINING (RFC 2920) MAIL, the RCPTs
// and DATA go out as one group and their replies are read after it;
// otherwise each command waits for its reply. next is SendThen's
// look-ahead, used when this transaction is the message's last.
func (s *Session) transaction(ctx context.Context, p *prepared, next func() (Message, bool)) *LostError {
	pending, sent := p.pending, p.sent
	p.pending, p.sent = nil, false
	if p.rc == nil && p.wire == nil {
		rc, err := p.m.Open()
		if err != nil {
			p.res.setAll(pending, localError(false, "4.3.0", "cannot open the message: "+err.Error(), err))
			return nil
		}
		p.rc = rc
	}
	defer p.closeReader()
	var env envelopeResult
	switch {
	case p.env != nil: // a look-ahead whose replies were read already
		env, p.env = *p.env, nil
	case s.pipelining:
		env = s.envelopePipelined(p.mail, p.to, pending, p.res, sent)
	default:
		env = s.envelopeSequential(p.mail, p.to, pending, p.res)
	}
	p.pending = env.next
	switch {
	case env.lost != nil:
		return s.lose(ctx, env.lost, true)
	case len(env.accepted) > 0 && env.data:
		if len(p.pending) > 0 || !s.pipelining {
			next = nil
		}
		return s.body(ctx, p, env.accepted, next)
	case env.data:
		// RFC 2920 §3.1: DATA accepted with no recipient: end the empty
		// message with a lone dot; the server has nobody to send it to.
		return s.emptyData(ctx)
	case env.mailOK:
		return s.reset(ctx)
	}
	return nil
}

// envelopeResult is what MAIL, RCPT and DATA left: the recipients accepted
// and those to retry in a new transaction (452), whether the MAIL was
// accepted, whether DATA got its 354, or why the session was lost.
type envelopeResult struct {
	accepted, next []int
	mailOK, data   bool
	lost           *mta.Error
}

// envelopeSequential sends MAIL, each RCPT and DATA one at a time, each
// after the reply to the one before. A refused MAIL ends the transaction;
// a 452 after an accepted RCPT stops the RCPTs (the rest go in a new
// transaction), one before any defers that recipient alone; DATA is sent
// only when some recipient was accepted.
func (s *Session) envelopeSequential(mail string, to []string, pending []int, res *results) (r envelopeResult) {
	e, lost := s.command(mta.CmdMail, 2, mail)
	if lost != nil {
		return envelopeResult{lost: lost}
	}
	if e != nil {
		res.setAll(pending, authRequired(e))
		return r
	}
	r.mailOK = true
	for k, i := range pending {
		e, lost := s.command(mta.CmdRcpt, 2, "RCPT TO:<"+to[i]+">")
		if lost != nil {
			return envelopeResult{lost: lost}
		}
		if e == nil {
			r.accepted = append(r.accepted, i)
			continue
		}
		if tooManyRecipients(e) {
			if len(r.accepted) > 0 { // the rest go in a new transaction
				r.next = pending[k:]
				break
			}
			// A 452 with none accepted is about this recipient (a full
			// mailbox): deferring all the rest would starve them, since
			// the next transaction starts with it again.
			e = deferred(e)
		}
		res.set(i, authRequired(e), "")
	}
	if len(r.accepted) == 0 {
		return r
	}
	e, lost = s.command(mta.CmdData, 3, "DATA")
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
// DATA anyway. The refusals are set in res only once every reply of the
// group was read: a reply of the wrong class (a 250 to DATA, a 354 to RCPT)
// shows a server that answered out of order (smtp-sink lets the replies
// after a delayed one overtake it), so a 5yz read before it may belong to
// another command, and the whole group is sent again. sent: the first
// group went out already, behind the previous message's final dot (see
// lookahead).
//
// A session lost in the middle of the replies (a 421, a close, a timeout)
// does not void the replies read before it in step: Postfix at its defaults
// answers 20 refused RCPTs and then says 421 (smtpd_hard_error_limit) in
// place of the next reply, and resending the whole group would meet the
// same 421 on every session and run until the message expires. So the
// refusals read count (a 5yz fails its recipient, a 4yz defers it, a
// refused MAIL every recipient), and the recipients accepted, refused with
// 452 or left without a reply are left unresolved, to be sent again on a
// new session (LostError.Unresolved): none of them had a DATA accepted.
// An out-of-order reply voids them all, as above.
func (s *Session) envelopePipelined(mail string, to []string, pending []int, res *results, sent bool) (r envelopeResult) {
	reply := func(cmd string, want int) (e, lost *mta.Error) {
		e, lost = s.reply(cmd, want)
		if lost != nil && (lost.Code/100 == 2 || lost.Code/100 == 3) {
			// A 354 to RCPT, a 250 to DATA: see mta.Error.OutOfOrder.
			lost = &mta.Error{Status: "4.5.0", Command: cmd, Err: lost, OutOfOrder: true,
				Msg: "replies out of order (RFC 2920 §3.1): " + lost.Reply()}
		}
		return e, lost
	}
	var mailErr *mta.Error
	var tooMany []int                      // the 452s (too many recipients)
	refused := make(map[int]*mta.Error, 4) // every refusal, 452s too: set in res once the DATA reply is read, or by lose
	mailRead := false                      // the MAIL reply was read: the replies in refused count if the session is lost
	lose := func(lost *mta.Error) envelopeResult {
		if mailRead && !lost.OutOfOrder {
			for _, i := range pending {
				switch e := refused[i]; {
				case mailErr != nil:
					res.set(i, mailErr, "")
				case e != nil && !slices.Contains(tooMany, i): // a 452 asks for another transaction: the new session's
					res.set(i, e, "")
				}
			}
		}
		return envelopeResult{lost: lost}
	}
	for k := 0; k < len(pending); {
		group := pending[k:min(k+maxGroup, len(pending))]
		if k > 0 || !sent {
			if k == 0 {
				s.c.Queue(mail)
			}
			s.writeRcpts(to, group, k+len(group) == len(pending))
			if err := s.c.Flush(); err != nil {
				cmd := mta.CmdRcpt
				if k == 0 {
					cmd = mta.CmdMail // the write carried MAIL too
				}
				return lose(ioError(cmd, err))
			}
		}
		if k == 0 {
			e, lost := reply(mta.CmdMail, 2)
			if lost != nil {
				return envelopeResult{lost: lost}
			}
			if e != nil {
				mailErr = authRequired(e)
			}
			mailRead = true
		}
		for _, i := range group {
			e, lost := reply(mta.CmdRcpt, 2)
			switch {
			case lost != nil:
				return lose(lost)
			case mailErr != nil:
				refused[i] = mailErr
			case e == nil:
				r.accepted = append(r.accepted, i)
			case tooManyRecipients(e):
				tooMany = append(tooMany, i)
				refused[i] = deferred(e)
			default:
				refused[i] = authRequired(e)
			}
		}
		k += len(group)
	}
	e, lost := reply(mta.CmdData, 3)
	if lost != nil {
		return lose(lost)
	}
	if mailErr != nil && e == nil {
		// A server in step answers DATA after a refused MAIL with 503 or
		// 554 (RFC 2920 §3.1); a 354 shows that the replies overtook one
		// another, e.g. the dot's 550 read for the look-ahead's MAIL and
		// its MAIL's 250 for the dot: no refusal of the group can count.
		return envelopeResult{lost: &mta.Error{Status: "4.5.0", Command: mta.CmdData, Err: mailErr, OutOfOrder: true,
			Msg: "replies out of order (RFC 2920 §3.1): DATA accepted after MAIL was refused with " + mailErr.Reply()}}
	}
	r.mailOK, r.data = mailErr == nil, e == nil
	if len(r.accepted) > 0 {
		// The 452s go in the next transaction, behind the accepted ones.
		r.next = tooMany
		for _, i := range tooMany {
			delete(refused, i)
		}
		if e != nil {
			res.setAll(r.accepted, e)
			r.accepted = nil
		}
	}
	for _, i := range pending {
		if e := refused[i]; e != nil {
			res.set(i, e, "")
		}
	}
	return r
}

// writeRcpts buffers a RCPT line for each recipient of group and, when
// last, DATA.
func (s *Session) writeRcpts(to []string, group []int, last bool) {
	for _, i := range group {
		s.c.Queue("RCPT TO:<" + to[i] + ">")
	}
	if last {
		s.c.Queue("DATA")
	}
}

// body writes the message after a 354 (as measure kept it, or streamed
// through the normaliser) to the dot stuffer (RFC 5321 §4.5.2), ends it
// with the final dot and reads the reply within FinalTimeout, which applies to every accepted recipient. With a
// look-ahead (next non-nil), the next message's first group is written
// behind the dot and kept in s.ahead for its own Send.
func (s *Session) body(ctx context.Context, p *prepared, accepted []int, next func() (Message, bool)) *LostError {
	dw := s.c.Data()
	if p.wire != nil {
		// Normalised already, and kept, by measure.
		if _, werr := dw.Write(p.wire); werr != nil {
			return s.lose(ctx, ioError(mta.CmdData, werr), true)
		}
	} else if lost := s.stream(ctx, p, dw); lost != nil {
		return lost
	}
	dotEnd := dw.End() // the octet count once the final dot is out
	p.closeReader()
	var ahead *prepared
	if next != nil {
		ahead = s.lookahead(next)
	}
	if err := dw.Flush(); err != nil {
		ahead.release()
		// Safe only if the dot did not get out whole: with a look-ahead, the
		// write may have failed on the commands behind it.
		return s.lose(ctx, ioError(mta.CmdEOD, err), s.c.Written() < dotEnd)
	}
	final, err := s.c.ReadReply(s.o.FinalTimeout)
	if err != nil {
		ahead.release()
		// The final dot got out: the server may have taken the message.
		return s.lose(ctx, ioError(mta.CmdEOD, err), false)
	}
	var aheadLost *mta.Error
	if ahead != nil && ahead.sent {
		// The look-ahead's replies come right behind the dot's (the
		// server answers them before it waits for the body): read them
		// now, so that m's result counts only when the replies are known
		// to be in step. RFC 2920 §3.1 wants them in order, but a server
		// that let one overtake another (smtp-sink -W does) would have
		// m's verdict read from the next message's MAIL reply.
		env := s.envelopePipelined(ahead.mail, ahead.to, ahead.pending, ahead.res, true)
		if e := env.lost; e != nil && (e.OutOfOrder || e.Code != 0 && e.Code != 421) {
			ahead.release()
			reply := e.Reply()
			if inner, ok := e.Err.(*mta.Error); ok && e.OutOfOrder {
				reply = inner.Reply() // the reply of the wrong class, or the MAIL refusal before a 354
			}
			return s.lose(ctx, &mta.Error{Status: "4.5.0", Command: mta.CmdEOD, Err: e, OutOfOrder: true,
				Msg: "replies out of order (RFC 2920 §3.1), so the reply to the end of data is not known: " + reply}, false)
		}
		ahead.env, aheadLost = &env, env.lost
	}
	if e, lost := judge(mta.CmdEOD, 2, final); e != nil {
		if lost {
			ahead.release()
			return s.lose(ctx, e, false)
		}
		p.res.setAll(accepted, e)
		return s.keepAhead(ctx, ahead, aheadLost)
	}
	reply := final.String()
	for _, i := range accepted {
		p.res.set(i, nil, reply)
	}
	if len(p.pending) > 0 && p.m.Accepted != nil {
		done := make([]string, len(accepted))
		for k, i := range accepted {
			done[k] = p.m.To[i]
		}
		p.m.Accepted(done)
	}
	s.o.Logger.Debug("smtp message accepted", "relay", s.relay, "rcpts", len(accepted), "reply", reply)
	return s.keepAhead(ctx, ahead, aheadLost)
}

// stream writes the message from its reader through the normaliser to the
// dot-stuffer.
func (s *Session) stream(ctx context.Context, p *prepared, dw *smtpclient.DataWriter) *LostError {
	if s.norm == nil {
		s.norm = smtpclient.NewNormalizer(nil)
	}
	s.norm.Reset(p.rc)
	defer s.norm.Reset(nil)
	buf := s.buffer()
	for {
		n, err := s.norm.Read(buf)
		if n > 0 {
			if _, werr := dw.Write(buf[:n]); werr != nil {
				return s.lose(ctx, ioError(mta.CmdData, werr), true)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			// The only way to abort DATA is to drop the connection before
			// the final dot (RFC 5321 §4.1.1.4): the server then discards it.
			e := localError(false, "4.3.0", "reading the message failed during DATA: "+err.Error(), err)
			return s.lose(ctx, e, true)
		}
	}
}

// keepAhead keeps the look-ahead for its own Send, or, when its replies
// lost the session (a 421 or a dropped connection after the final dot's
// reply, which stands), loses the session: the look-ahead's final dot was
// never sent, so it is safe to send elsewhere.
func (s *Session) keepAhead(ctx context.Context, ahead *prepared, lost *mta.Error) *LostError {
	if lost != nil {
		ahead.release()
		return s.lose(ctx, lost, true)
	}
	s.ahead = ahead
	return nil
}

// lookahead takes the next message from next, prepares it and, when it has
// recipients left to send and is open, buffers its MAIL, RCPT and DATA (at
// most maxGroup RCPTs) behind the final dot. The result is nil when next
// has no message.
func (s *Session) lookahead(next func() (Message, bool)) *prepared {
	m, ok := next()
	if !ok {
		return nil
	}
	p := s.prepare(m)
	if len(p.pending) == 0 || len(p.pending) > maxGroup {
		return p // nothing to send, or a group too large to buffer: sent by its own Send
	}
	if p.wire == nil {
		rc, err := m.Open()
		if err != nil {
			p.res.setAll(p.pending, localError(false, "4.3.0", "cannot open the message: "+err.Error(), err))
			p.pending = nil
			return p
		}
		p.rc = rc
	}
	p.sent = true
	s.c.Queue(p.mail)
	s.writeRcpts(p.to, p.pending, true)
	return p
}

// release closes a look-ahead message that will not be sent here.
func (p *prepared) release() {
	if p != nil {
		p.closeReader()
	}
}

// emptyData ends a DATA the server accepted without a valid recipient with
// a lone dot (RFC 2920 §3.1). Nobody's result depends on the reply.
func (s *Session) emptyData(ctx context.Context) *LostError {
	dw := s.c.Data()
	dw.End()
	if err := dw.Flush(); err != nil {
		return s.lose(ctx, ioError(mta.CmdEOD, err), true)
	}
	if _, lost := s.reply(mta.CmdEOD, 2); lost != nil {
		return s.lose(ctx, lost, true)
	}
	return nil
}

// reset aborts a transaction that will not reach the end of data (RFC 5321
// §4.1.1.5). Any failure loses the session: its state is no longer known.
func (s *Session) reset(ctx context.Context) *LostError {
	e, lost := s.command(mta.CmdRset, 2, "RSET")
	if lost == nil && e != nil {
		lost = e
	}
	if lost != nil {
		return s.lose(ctx, lost, true)
	}
	return nil
}

// command writes one command line and reads its reply; see reply.
func (s *Session) command(cmd string, want int, line string) (e, lost *mta.Error) {
	s.c.Queue(line)
	if err := s.c.Flush(); err != nil {
		return nil, ioError(cmd, err)
	}
	return s.reply(cmd, want)
}

// reply reads the reply to cmd within CommandTimeout (RFC 5321
// §4.5.3.2.2-4: the limit is per command, also in a pipelined group) and
// judges it against the wanted class (2 for 2yz, 3 for 354): see judge. An
// I/O error, a timeout or a malformed reply loses the session (the second
// *mta.Error).
func (s *Session) reply(cmd string, want int) (e, lost *mta.Error) {
	r, err := s.c.Reply()
	if err != nil {
		return nil, ioError(cmd, err)
	}
	e, isLost := judge(cmd, want, r)
	if isLost {
		return nil, e
	}
	return e, nil
}
