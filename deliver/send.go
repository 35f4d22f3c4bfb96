package deliver

import (
	"context"
	"io"
	"slices"
	"strings"

	"github.com/mxflush/mxflush/addr"
)

// Message is one message for the recipients of one destination.
type Message struct {
	From string   // checked mailbox, "" for the null sender <>
	To   []string // checked mailboxes for this destination, in order
	Size int64    // octets of the message as stored: the SIZE= estimate (RFC 1870 §3)
	// Open opens the RFC 5322 message. Send calls it once for an 8-bit scan
	// when the server lacks 8BITMIME, and once per DATA transaction (more
	// than one only after a 452 too-many-recipients split). Each reader is
	// closed before the next Open and before Send returns.
	Open func() (io.ReadCloser, error)
}

// Result is the outcome for one recipient.
type Result struct {
	Rcpt  string // as in Message.To
	Err   error  // nil: delivered (2yz after end of data); else *Error (Permanent: failed, else deferred)
	Reply string // the server's final reply, "250 2.0.0 Ok: queued as X", or Err's (*Error).Reply()
}

// Send delivers m and returns one Result per recipient, in the order of
// m.To. The steps, and what each failure means for the recipients:
//
//   - Envelope check (defence in depth, RFC 5321 §4.1.2, C31): if From or any
//     To fails addr.Check or holds CR, LF or NUL, every recipient fails
//     permanently with Command "local" and nothing is sent.
//   - SMTPUTF8 (RFC 6531 §3.4), on a server without it: a non-ASCII sender
//     fails every recipient, 5.6.7, nothing sent; a non-ASCII recipient
//     fails alone, 5.6.7, and the others go in a transaction without
//     SMTPUTF8. A U-label domain alone needs no SMTPUTF8: it is sent in
//     A-label form (RFC 6531 §3.2).
//   - SIZE (RFC 1870): m.Size above the smallest advertised positive limit:
//     every recipient fails, 5.3.4, nothing sent. SIZE=m.Size goes on MAIL
//     whenever SIZE is offered.
//   - 8BITMIME (RFC 6152): offered: go-smtp puts BODY=8BITMIME on MAIL. Not
//     offered (or HELO session): the message is scanned first, and any octet
//     >= 0x80 fails every recipient, 5.6.3.
//   - MAIL: 4yz defers all, 5yz fails all, except 530 (RFC 4954 §6:
//     authentication required), which defers all as a configuration error
//     (Error.Config): the relay wants credentials it did not get. The same
//     holds for a 530 to RCPT.
//   - RCPT per recipient: 2yz accepted, 4yz deferred, 5yz failed. A 452
//     (RFC 5321 §4.5.3.1.10) stops the RCPTs: the accepted ones get the
//     message, then a new transaction (MAIL again) carries the rest, and so
//     on; a 452 on the first RCPT of a transaction defers all the rest.
//   - No RCPT accepted: RSET, no DATA (RFC 2920 §3.1).
//   - DATA 4yz/5yz and the reply to the final dot apply to every accepted
//     recipient of the transaction. The body is streamed from Open through
//     the normaliser (see NewNormalizer); go-smtp dot-stuffs it (RFC 5321
//     §4.5.2). A successful transaction is not followed by RSET; an aborted
//     one is.
//
// The error is nil, or a *LostError when the session can no longer be used
// (421, I/O error, timeout, cancelled ctx): the recipients without a final
// result then have temporary ones, and the caller must Close the session.
// Send on a lost or closed session returns at once with temporary results.
func (s *Session) Send(ctx context.Context, m Message) ([]Result, error) {
	res := newResults(m.To)
	all := res.unresolved()
	if s.lost != nil {
		res.setAll(all, s.lost.Err)
		return res.rs, s.lost
	}
	if s.closed {
		e := localError(false, "4.4.2", "session already closed", nil)
		res.setAll(all, e)
		return res.rs, &LostError{Err: e, Safe: true}
	}
	if len(m.To) == 0 {
		return res.rs, nil
	}
	from, to, fromUTF8, rcptUTF8, e := envelope(m)
	if e != nil {
		res.setAll(all, e)
		return res.rs, nil
	}
	needUTF8 := fromUTF8 || slices.Contains(rcptUTF8, true)
	if needUTF8 && !s.utf8 {
		// RFC 6531 §3.4: a non-ASCII address cannot go to this server. A
		// non-ASCII sender sinks the whole message; a non-ASCII recipient
		// fails alone and the others go without SMTPUTF8.
		noUTF8 := localError(true, "5.6.7", "an address is not ASCII and the server does not offer SMTPUTF8 (RFC 6531 §3.4)", nil)
		if fromUTF8 {
			res.setAll(all, noUTF8)
			return res.rs, nil
		}
		var ascii []int
		for _, i := range all {
			if rcptUTF8[i] {
				res.set(i, noUTF8, "")
			} else {
				ascii = append(ascii, i)
			}
		}
		if all, needUTF8 = ascii, false; len(all) == 0 {
			return res.rs, nil
		}
	}
	if s.sizeLimit > 0 && m.Size > s.sizeLimit {
		res.setAll(all, sizeError(m.Size, s.sizeLimit))
		return res.rs, nil
	}
	if !s.eightBit {
		if e := s.scan8bit(m); e != nil {
			res.setAll(all, e)
			return res.rs, nil
		}
	}

	stop := s.watch(ctx)
	defer func() {
		if !stop() && s.lost == nil {
			// ctx ended just as Send finished: the watcher has closed the
			// connection, so the next Send must not try to use it.
			s.lose(ctx, ioError(cmdMail, ctx.Err()), true)
		}
	}()
	mail := s.mailCommand(from, m.Size, needUTF8)
	for pending := all; len(pending) > 0; {
		var lost *LostError
		pending, lost = s.transaction(ctx, m, mail, to, pending, res)
		if lost != nil {
			res.setAll(res.unresolved(), lost.Err)
			return res.rs, lost
		}
	}
	return res.rs, nil
}

// scan8bit opens the message and looks for octets >= 0x80 (RFC 6152 §3).
func (s *Session) scan8bit(m Message) *Error {
	rc, err := m.Open()
	if err != nil {
		return localError(false, "4.3.0", "cannot open the message: "+err.Error(), err)
	}
	defer rc.Close()
	buf := s.buffer()
	for {
		n, err := rc.Read(buf)
		for _, c := range buf[:n] {
			if c >= 0x80 {
				return localError(true, "5.6.3",
					"message has 8-bit content and the server does not offer 8BITMIME (RFC 6152 §3)", nil)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return localError(false, "4.3.0", "reading the message failed: "+err.Error(), err)
		}
	}
}

// envelope checks and converts the addresses to their wire form. An invalid
// address refuses the whole message: such an envelope is corrupt or
// hostile (C31), so nobody gets it.
func envelope(m Message) (from string, to []string, fromUTF8 bool, rcptUTF8 []bool, e *Error) {
	needUTF8 := false
	wire := func(a string) (string, error) {
		if strings.ContainsAny(a, "\r\n\x00") {
			return "", &addr.Error{Addr: a, Rule: "CR, LF or NUL in an address (RFC 5321 §4.1.2)"}
		}
		mbox, err := addr.Check(a)
		if err != nil {
			return "", err
		}
		w, utf8 := addr.Wire(mbox)
		needUTF8 = utf8
		return w, nil
	}
	if m.From != "" {
		w, err := wire(m.From)
		if err != nil {
			return "", nil, false, nil, localError(true, "5.1.7", "invalid sender, message not sent: "+err.Error(), err)
		}
		from, fromUTF8 = w, needUTF8
	}
	to = make([]string, len(m.To))
	rcptUTF8 = make([]bool, len(m.To))
	for i, a := range m.To {
		w, err := wire(a)
		if err != nil {
			return "", nil, false, nil, localError(true, "5.1.3", "invalid recipient, message not sent: "+err.Error(), err)
		}
		to[i], rcptUTF8[i] = w, needUTF8
	}
	return from, to, fromUTF8, rcptUTF8, nil
}
