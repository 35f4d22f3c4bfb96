package deliver

import (
	"context"
	"fmt"

	"github.com/mxflush/mxflush/mta"
	"github.com/mxflush/mxflush/smtpclient"
)

// Session is one SMTP connection after a successful greeting and EHLO (or
// HELO). It sends messages one after another with Send and ends with Close.
// A Session is not safe for concurrent use; it holds at most one message
// reader open at a time, and none between calls.
type Session struct {
	c     *smtpclient.Client
	o     Options
	relay string

	utf8       bool  // SMTPUTF8 offered (RFC 6531)
	eightBit   bool  // 8BITMIME offered (RFC 6152)
	pipelining bool  // PIPELINING offered (RFC 2920)
	size       bool  // SIZE offered (RFC 1870): SIZE= goes on MAIL
	sizeLimit  int64 // smallest SIZE limit offered, octets; 0: none or no limit (RFC 1870)
	tls        TLSState

	// ahead is the look-ahead message whose commands went out behind the
	// last final dot (see SendThen), for the next Send.
	ahead *prepared

	buf  []byte                 // copy buffer for the body and measure, allocated on first use
	norm *smtpclient.Normalizer // reused for every message
	// kept holds the normalised octets of measured messages small enough
	// to send from memory (see measure), used in turn.
	kept [2][]byte
	turn int

	lost   *LostError // set once the connection is unusable
	closed bool
}

// Relay names the server in Postfix's log form, "mx.a.test[127.0.0.2]:2525".
func (s *Session) Relay() string { return s.relay }

// TLS describes the session's security: TLS version and cipher, whether
// the certificate was verified, and why a session that tried TLS is in
// cleartext.
func (s *Session) TLS() TLSState { return s.tls }

// Close ends the session: QUIT (waiting at most CommandTimeout for the
// reply, RFC 5321 §4.1.1.10), then closes the connection. After a lost
// session it only closes. It is safe to call twice; the error is only
// informative, since every message's outcome is already known.
func (s *Session) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if a := s.ahead; a != nil {
		s.ahead = nil
		a.release()
		if a.sent {
			// The server may be waiting in DATA for the look-ahead
			// message: QUIT would become message content. Dropping the
			// connection before a final dot makes it discard the
			// transaction (RFC 5321 §4.1.1.4).
			s.c.Close()
			return nil
		}
	}
	if s.lost != nil {
		s.c.Close()
		return nil
	}
	err := s.quit()
	if cerr := s.c.Close(); err == nil && cerr != nil {
		err = ioError(mta.CmdQuit, cerr)
	}
	return err
}

// quit sends QUIT and reads the reply, which should be 221.
func (s *Session) quit() error {
	r, err := s.c.Quit()
	if err != nil {
		return ioError(mta.CmdQuit, err)
	}
	if r.Code != 221 {
		return replyError(mta.CmdQuit, r)
	}
	return nil
}

// lose marks the session unusable, closes the connection and returns the
// *LostError for Send. A cancelled context is named as the cause.
func (s *Session) lose(ctx context.Context, e *mta.Error, safe bool) *LostError {
	if err := ctx.Err(); err != nil && e.Code == 0 {
		e = &mta.Error{Status: "4.4.2", Command: e.Command, Msg: "canceled: " + err.Error(), Err: err}
	}
	s.lost = &LostError{Err: e, Safe: safe}
	if s.ahead != nil { // never sent here: the caller sends it elsewhere
		s.ahead.release()
		s.ahead = nil
	}
	s.c.Close()
	s.o.Logger.Debug("smtp session lost", "relay", s.relay, "err", e, "safe", safe)
	return s.lost
}

func (s *Session) buffer() []byte {
	if s.buf == nil {
		s.buf = make([]byte, 32<<10)
	}
	return s.buf
}

func sizeError(size, limit int64) *mta.Error {
	// RFC 1870 §6.1 has the server answer 552 to such a MAIL; RFC 3463
	// §3.4: 5.3.4, message too big for system. No transaction is opened.
	return localError(true, "5.3.4",
		fmt.Sprintf("message size %d octets exceeds the server's SIZE limit of %d octets (counted with CRLF line ends, RFC 1870 §4 and §6.1); not sent", size, limit), nil)
}

// results tracks the outcome of each recipient of one Send.
type results struct {
	rs   []Result
	done []bool
}

func newResults(to []string) *results {
	r := &results{rs: make([]Result, len(to)), done: make([]bool, len(to))}
	for i, a := range to {
		r.rs[i].Rcpt = a
	}
	return r
}

func (r *results) set(i int, e *mta.Error, reply string) {
	r.done[i] = true
	if e != nil {
		r.rs[i].Err, r.rs[i].Reply = e, e.Reply()
		return
	}
	r.rs[i].Err, r.rs[i].Reply = nil, reply
}

func (r *results) setAll(idx []int, e *mta.Error) {
	for _, i := range idx {
		r.set(i, e, "")
	}
}

// unresolved lists the recipients without a result yet.
func (r *results) unresolved() []int {
	var idx []int
	for i, d := range r.done {
		if !d {
			idx = append(idx, i)
		}
	}
	return idx
}
