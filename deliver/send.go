package deliver

import (
	"context"
	"io"
	"slices"
	"strings"

	"github.com/mxflush/mxflush/addr"
	"github.com/mxflush/mxflush/mta"
	"github.com/mxflush/mxflush/smtpclient"
)

// Message is one message for the recipients of one destination.
type Message struct {
	From string   // checked mailbox, "" for the null sender <>
	To   []string // checked mailboxes for this destination, in order
	// Size is the octet count of the message as stored (what Open
	// returns). Sending only adds octets (CRLF for bare LFs, breaks in long
	// lines), so a Size over the server's SIZE limit is refused without
	// reading the message; SIZE= itself is counted as sent (see measure).
	Size int64
	// Open opens the RFC 5322 message. Send calls it once to measure the
	// message when the server offers SIZE or lacks 8BITMIME (see measure),
	// and once per transaction (more than one only after a 452
	// too-many-recipients split) unless the measured message was small
	// enough to keep in memory. Each reader is
	// closed before the next Open and before Send returns, except the
	// reader of a look-ahead message (see SendThen), which stays open until
	// that message's own Send.
	Open func() (io.ReadCloser, error)
	// Accepted, when not nil, is called with the recipients (as in To) that
	// a transaction delivered when the message needs another transaction
	// after it (a 452 split, RFC 5321 §4.5.3.1.10), as soon as its end of
	// data is accepted and before the next one starts, so that the caller
	// can record them (a crash journal) before more is sent. The last
	// transaction's recipients are only in Send's results.
	Accepted func(rcpts []string)
}

// Result is the outcome for one recipient.
type Result struct {
	Rcpt  string // as in Message.To
	Err   error  // nil: delivered (2yz after end of data); else *mta.Error (Permanent: failed, else deferred)
	Reply string // the server's final reply, "250 2.0.0 Ok: queued as X", or Err's (*mta.Error).Reply()
}

// Send delivers m and returns one Result per recipient, in the order of
// m.To. The steps, and what each failure means for the recipients:
//
//   - Envelope check (defence in depth against command injection, RFC 5321
//     §4.1.2): if From or any To fails addr.Check or holds CR, LF or NUL,
//     every recipient fails permanently with Command "local" and nothing is
//     sent.
//   - SMTPUTF8 (RFC 6531 §3.4), on a server without it: a non-ASCII sender
//     fails every recipient, 5.6.7, nothing sent; a non-ASCII recipient
//     fails alone, 5.6.7, and the others go in a transaction without
//     SMTPUTF8. A U-label domain alone needs no SMTPUTF8: it is sent in
//     A-label form (RFC 6531 §3.2).
//   - SIZE (RFC 1870 §4): when SIZE is offered the message is read once
//     through the normaliser first (see measure) and SIZE= on MAIL is its
//     size as sent: CRLF line ends and inserted line breaks counted,
//     dot-stuffing not. Above the smallest advertised positive limit every
//     recipient fails, 5.3.4, and no command is sent.
//   - 8BITMIME (RFC 6152): offered: BODY=8BITMIME goes on MAIL. Not offered
//     (or HELO session): the same reading looks for octets >= 0x80, and
//     any fails every recipient, 5.6.3.
//   - The message is opened before the first command: if it cannot be, every
//     recipient is deferred (4.3.0) and nothing is sent. A message read
//     first and small enough is kept in memory and not opened again.
//   - PIPELINING (RFC 2920) offered: MAIL, the RCPTs and DATA go out as one
//     group and every reply is read after it (see envelopePipelined).
//     Otherwise each command waits for its reply.
//   - MAIL: 4yz defers all, 5yz fails all, except 530 (RFC 4954 §6:
//     authentication required), which defers all as a configuration error
//     (mta.Error.Config): the relay wants credentials it did not get. The same
//     holds for a 530 to RCPT.
//   - RCPT per recipient: 2yz accepted, 4yz deferred, 5yz failed. A 452
//     (RFC 5321 §4.5.3.1.10) sends the recipients it refused in a new
//     transaction (MAIL again) after the accepted ones got the message; a
//     452 with no recipient accepted defers its recipient. Without
//     PIPELINING the first 452 after an accepted RCPT stops the RCPTs.
//   - No RCPT accepted: no message content, RSET.
//   - DATA 4yz/5yz and the reply to the final dot apply to every accepted
//     recipient of the transaction. The body is streamed from Open through
//     the normaliser (see smtpclient.NewNormalizer) and dot-stuffed (RFC 5321 §4.5.2).
//     A successful transaction is not followed by RSET; an aborted one is.
//
// The error is nil, or a *LostError when the session can no longer be used
// (421, I/O error, timeout, cancelled ctx): the recipients without a final
// result then have temporary ones, and the caller must Close the session.
// Send on a lost or closed session returns at once with temporary results.
func (s *Session) Send(ctx context.Context, m Message) ([]Result, error) {
	return s.SendThen(ctx, m, nil)
}

// SendThen is Send with a look-ahead. When the server offers PIPELINING and
// m's last transaction has its content written, SendThen calls next once
// (unless next is nil); if next returns a message, that message's MAIL, RCPT
// and DATA are written right behind m's final dot, in the same TCP write
// (RFC 2920 §3.1 lets message content start a group), and m's outcome is
// read after. Over a long round trip this halves the time per message.
//
// The message next returned must be the m of the following Send or
// SendThen on this session (same From, To and Size); its results come from
// that call. m's reader is closed before the next message is opened, so the
// session still holds at most one message open. When SendThen returns an
// error, the message next returned was not sent (its final dot never was):
// the caller sends it on another session. Close drops a connection that
// waits in DATA for a look-ahead message, so that no empty or partial
// message is ever accepted.
func (s *Session) SendThen(ctx context.Context, m Message, next func() (Message, bool)) ([]Result, error) {
	var p *prepared
	if a := s.ahead; a != nil {
		s.ahead = nil
		if !a.same(m) {
			a.closeReader()
			e := localError(false, "4.3.0", "internal error: Send was not given the look-ahead message", nil)
			res := newResults(m.To)
			res.setAll(res.unresolved(), e)
			return res.rs, s.lose(ctx, e, true)
		}
		p = a
	} else {
		res := newResults(m.To)
		if s.lost != nil {
			res.setAll(res.unresolved(), s.lost.Err)
			return res.rs, s.lost
		}
		if s.closed {
			e := localError(false, "4.4.2", "session already closed", nil)
			res.setAll(res.unresolved(), e)
			return res.rs, &LostError{Err: e, Safe: true}
		}
		p = s.prepare(m)
	}
	if len(p.pending) == 0 {
		return p.res.rs, nil
	}

	stop := s.c.Watch(ctx)
	defer func() {
		if !stop() && s.lost == nil {
			// ctx ended just as Send finished: the watcher has closed the
			// connection, so the next Send must not try to use it.
			s.lose(ctx, ioError(mta.CmdMail, ctx.Err()), true)
		}
	}()
	for len(p.pending) > 0 {
		if lost := s.transaction(ctx, p, next); lost != nil {
			p.res.setAll(p.res.unresolved(), lost.Err)
			return p.res.rs, lost
		}
	}
	return p.res.rs, nil
}

// prepared is a message checked and converted for this session: its
// results so far, the recipients of its next transaction, and the wire
// form of its envelope. A look-ahead message also has its reader open and,
// when sent is set, its MAIL, RCPT and DATA written.
type prepared struct {
	m       Message
	res     *results
	pending []int
	mail    string   // the MAIL command line, without CRLF
	to      []string // wire form of m.To
	rc      io.ReadCloser
	size    int64  // octets as sent (see measure); 0 when SIZE is not offered
	wire    []byte // the message as sent before dot-stuffing, when measure kept it; then rc stays nil
	sent    bool
	env     *envelopeResult // the replies to a look-ahead's group, read behind the previous final dot's
}

// same reports whether m is the message p was prepared from.
func (p *prepared) same(m Message) bool {
	return m.From == p.m.From && m.Size == p.m.Size && slices.Equal(m.To, p.m.To)
}

func (p *prepared) closeReader() {
	if p.rc != nil {
		p.rc.Close()
		p.rc = nil
	}
}

// prepare runs the checks that need no command (envelope, SMTPUTF8, SIZE,
// 8BITMIME); the recipients they fail get their results, and pending
// holds the rest.
func (s *Session) prepare(m Message) *prepared {
	p := &prepared{m: m, res: newResults(m.To)}
	all := p.res.unresolved()
	if len(m.To) == 0 {
		return p
	}
	from, to, fromUTF8, rcptUTF8, e := envelope(m)
	if e != nil {
		p.res.setAll(all, e)
		return p
	}
	needUTF8 := fromUTF8 || slices.Contains(rcptUTF8, true)
	if needUTF8 && !s.utf8 {
		// RFC 6531 §3.4: a non-ASCII address cannot go to this server. A
		// non-ASCII sender sinks the whole message; a non-ASCII recipient
		// fails alone and the others go without SMTPUTF8.
		noUTF8 := localError(true, "5.6.7", "an address is not ASCII and the server does not offer SMTPUTF8 (RFC 6531 §3.4)", nil)
		if fromUTF8 {
			p.res.setAll(all, noUTF8)
			return p
		}
		var ascii []int
		for _, i := range all {
			if rcptUTF8[i] {
				p.res.set(i, noUTF8, "")
			} else {
				ascii = append(ascii, i)
			}
		}
		if all, needUTF8 = ascii, false; len(all) == 0 {
			return p
		}
	}
	// The normaliser only adds octets (CR before a bare LF, line breaks),
	// so a stored size over the limit is over it as sent too: refused
	// without reading the message.
	if s.sizeLimit > 0 && m.Size > s.sizeLimit {
		p.res.setAll(all, sizeError(m.Size, s.sizeLimit))
		return p
	}
	if s.size || !s.eightBit {
		size, wire, e := s.measure(m)
		if e == nil && s.sizeLimit > 0 && size > s.sizeLimit {
			e = sizeError(size, s.sizeLimit)
		}
		if e != nil {
			p.res.setAll(all, e)
			return p
		}
		p.size, p.wire = size, wire
	}
	p.pending, p.to, p.mail = all, to, s.mailCommand(from, p.size, needUTF8)
	return p
}

// maxKept is the largest message, in octets as sent, that measure keeps in
// memory for the transaction: a session holds at most two such (the
// message and its look-ahead).
const maxKept = 64 << 10

// measure reads m once through the normaliser, before any command of its
// transaction, because two checks need the whole message first:
//
//   - SIZE (RFC 1870 §4): SIZE= and the check against the server's limit
//     count the message as transmitted after the 354: with CRLF line ends
//     (every bare LF or CR counted as CRLF, the final line ended) and the
//     breaks the normaliser inserts into lines over 998 octets, but not
//     the dots of dot-stuffing nor the final dot. Message.Size, the size
//     as stored, falls short for a message with bare LFs (a 19,990-octet
//     spool file is 20,280 octets sent), and the server then refuses it
//     with 552 after the whole body was sent;
//   - 8BITMIME (RFC 6152 §3) not offered: an octet >= 0x80 fails the
//     message, 5.6.3 (the normaliser passes every such octet through).
//
// Counting here, in the normaliser's own output, is exact by construction
// (the same code produces what DATA sends), where a count in the spool's
// scan would have to read every message body, also of messages not sent
// this run, and repeat the normaliser's folding rules. So that a message
// is still read only once on the hot path, the normalised octets of a
// message up to maxKept octets are returned in wire and the transaction
// sends them without opening m again; a larger one is opened again for
// DATA (its second read comes from the page cache, and costs little next
// to sending that many octets).
func (s *Session) measure(m Message) (size int64, wire []byte, e *mta.Error) {
	rc, err := m.Open()
	if err != nil {
		return 0, nil, localError(false, "4.3.0", "cannot open the message: "+err.Error(), err)
	}
	defer rc.Close()
	if s.norm == nil {
		s.norm = smtpclient.NewNormalizer(nil)
	}
	s.norm.Reset(rc)
	defer s.norm.Reset(nil)
	buf := s.buffer()
	// The kept octets go in one of two buffers the session reuses in turn:
	// at most two kept messages are in use at once, the one being sent and
	// its look-ahead, and a message's buffer is free again once the one
	// after it was measured.
	wire = s.kept[s.turn][:0]
	if wire == nil {
		wire = make([]byte, 0, 8<<10)
	}
	keep := true
	for {
		n, err := s.norm.Read(buf)
		if !s.eightBit {
			for _, c := range buf[:n] {
				if c >= 0x80 {
					return 0, nil, localError(true, "5.6.3",
						"message has 8-bit content and the server does not offer 8BITMIME (RFC 6152 §3)", nil)
				}
			}
		}
		size += int64(n)
		if keep = keep && size <= maxKept; keep {
			wire = append(wire, buf[:n]...)
		}
		if err == io.EOF {
			s.kept[s.turn] = wire[:0]
			if !keep {
				return size, nil, nil
			}
			s.turn ^= 1
			return size, wire, nil
		}
		if err != nil {
			return 0, nil, localError(false, "4.3.0", "reading the message failed: "+err.Error(), err)
		}
	}
}

// envelope checks and converts the addresses to their wire form. An invalid
// address refuses the whole message: such an envelope is corrupt or
// hostile (command injection), so nobody gets it.
func envelope(m Message) (from string, to []string, fromUTF8 bool, rcptUTF8 []bool, e *mta.Error) {
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
