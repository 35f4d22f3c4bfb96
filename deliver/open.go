package deliver

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// open runs a new connection up to the first MAIL FROM:
//
//  1. implicit TLS (RFC 8314 §3.3), when the plan says so;
//  2. the greeting, read here (see greet);
//  3. unless the plan is TLSNone or TLS is already up: EHLO --helo and, if
//     offered, STARTTLS and the handshake, run here on the raw connection
//     (see starttls);
//  4. go-smtp's client takes the connection, secured or not, reads a
//     synthetic copy of the greeting and says EHLO --helo: over TLS on the
//     wire (RFC 3207 §4.2 wants a fresh EHLO), in cleartext answered from
//     step 3's reply so that only one EHLO goes out. HELO follows a 500 or
//     502 (RFC 5321 §4.1.4);
//  5. AUTH, when Options.Auth has credentials for the host (see
//     authenticate).
//
// go-smtp v0.25.1 cannot do opportunistic STARTTLS itself (its startTLS is
// private, and NewClientStartTLS says "EHLO localhost" and fails without
// STARTTLS), hence steps 2-3 here and the hand-over in 4.
func open(ctx context.Context, raw net.Conn, relay, host string, pl plan, o Options, st TLSState) (*Session, *Error) {
	var c net.Conn = raw
	if pl.implicit {
		tc, e := handshakeTLS(ctx, raw, host, pl, o, &st)
		if e != nil {
			return nil, e
		}
		st.Implicit = true
		c = tc
	}
	cw := newConn(c, raw, o.DataTimeout)
	synthetic, e := greet(cw, o)
	if e != nil {
		return nil, e
	}
	if pl.helo {
		return openHELO(cw, relay, o, st)
	}
	if !pl.implicit && pl.mode != TLSNone {
		if cw, e = starttls(ctx, cw, host, pl, o, &st); e != nil {
			return nil, e
		}
	}

	cw.replay = append([]byte(synthetic), cw.replay...)
	cl := smtp.NewClient(cw)
	cl.CommandTimeout = o.CommandTimeout
	cl.SubmissionTimeout = o.FinalTimeout
	if o.Debug != nil {
		// The synthetic greeting and a replayed EHLO exchange are not on
		// the wire a second time (greet and starttls traced the real ones):
		// leave them out.
		cl.DebugWriter = &skipWriter{w: o.Debug, skip: len(synthetic) + len(cw.swallow) + len(cw.answer)}
	}
	cw.capture = new(bytes.Buffer)
	err := cl.Hello(o.Helo) // EHLO, then HELO on 500/502 (RFC 5321 §4.1.4)
	ehloReply := cw.capture.Bytes()
	cw.capture = nil
	if err != nil {
		e, lost := classify(cmdEHLO, err)
		if !lost {
			cw.quit(o) // EHLO and HELO refused with a reply: the server waits for QUIT
		}
		cl.Close()
		if lost && e.Code == 0 && st.Version == "" && !pl.mode.required() && ehloRefused(ehloReply) {
			// HELO fallback: EHLO got 500/502, then the connection closed
			// before go-smtp's HELO: start again with HELO.
			e.heloRetry = true
		}
		if st.Version != "" && !pl.implicit && pl.mode == TLSMay {
			// TLS came up but the session over it failed: this counts
			// as a failed STARTTLS too ("during or after the handshake").
			e.plainRetry = true
		}
		return nil, e
	}
	if pl.auth != nil {
		if e := authenticate(cl, pl.auth, st, relay, o); e != nil {
			if inStep(e) {
				cw.quit(o)
			}
			cl.Close()
			return nil, e
		}
	}

	s := &Session{c: cl, conn: cw, o: o, relay: relay, tls: st}
	s.utf8, _ = cl.Extension("SMTPUTF8")
	s.eightBit, _ = cl.Extension("8BITMIME")
	s.pipelining, _ = cl.Extension("PIPELINING")
	s.pipelining = s.pipelining && !o.NoPipelining
	if s.size, _ = cl.Extension("SIZE"); s.size {
		s.sizeLimit = sizeLimit(ehloReply)
	}
	s.br = cw.br
	s.newWriter()
	return s, nil
}

// ehloRefused reports whether the reply to EHLO, in what go-smtp read
// during Hello (the synthetic greeting line first), is 500 or 502 (RFC
// 5321 §4.1.4: the server does not know EHLO).
func ehloRefused(read []byte) bool {
	_, reply, ok := bytes.Cut(read, []byte("\n"))
	return ok && (bytes.HasPrefix(reply, []byte("500")) || bytes.HasPrefix(reply, []byte("502")))
}

// openHELO starts a session with HELO instead of EHLO, for a server that
// closed the connection after refusing EHLO. Such a session has no extension
// (RFC 5321 §4.1.4 via §3.2): no PIPELINING, SIZE, 8BITMIME, SMTPUTF8,
// STARTTLS or AUTH; 8-bit and UTF-8 messages fail in Send as on any session
// without them. deliver runs every command itself; go-smtp's client only
// closes the connection.
func openHELO(cw *conn, relay string, o Options, st TLSState) (*Session, *Error) {
	helo := "HELO " + o.Helo
	code, lines, err := cw.command(helo, o.CommandTimeout)
	trace(o, helo, lines)
	if err != nil {
		return nil, ioError(cmdHELO, err)
	}
	if code/100 != 2 {
		if code != 421 {
			cw.quit(o)
		}
		return nil, replyError(cmdHELO, greetingReply(code, lines))
	}
	s := &Session{c: smtp.NewClient(cw), conn: cw, o: o, relay: relay, tls: st, br: cw.br}
	s.newWriter()
	return s, nil
}

// greet reads the greeting and judges it by the code of its last line, and
// sends nothing before the reply is complete (it may be split across
// segments, and the last line's code may differ from the others'). It returns
// the synthetic "220" line go-smtp is to read in its place: go-smtp checks
// for exactly 220, and reads the greeting lazily in Hello.
func greet(cw *conn, o Options) (string, *Error) {
	_ = cw.Conn.SetReadDeadline(time.Now().Add(o.GreetingTimeout))
	code, lines, err := readReply(cw.br)
	_ = cw.Conn.SetReadDeadline(time.Time{})
	trace(o, "", lines)
	if err != nil {
		return "", ioError(cmdGreeting, err)
	}
	if code/100 != 2 {
		// RFC 5321 §3.1: after a 554 greeting the server waits for QUIT.
		_ = cw.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = io.WriteString(cw.Conn, "QUIT\r\n")
		return "", replyError(cmdGreeting, greetingReply(code, lines))
	}
	return "220 " + replyText(lines[len(lines)-1]) + "\r\n", nil
}

// starttls says EHLO and, when the server offers STARTTLS (RFC 3207),
// secures the connection. It returns the connection go-smtp is to use: a
// new one over TLS, or cw with the EHLO exchange set up for replay.
//
// Under TLSMay: no STARTTLS offered, or a 4yz/5yz to it (454 4.7.0), goes
// on in cleartext on this connection; an I/O error after STARTTLS, data
// sent before the handshake, or a failed handshake is an error with
// plainRetry set. Under the other modes every one of these is a temporary
// error (4.7.4 or 4.7.5), and when the server answered (no STARTTLS, EHLO
// or STARTTLS refused, other than with 421) the connection is still in
// step and gets QUIT first (RFC 5321 §4.1.1.10).
func starttls(ctx context.Context, cw *conn, host string, pl plan, o Options, st *TLSState) (*conn, *Error) {
	ehlo := "EHLO " + o.Helo
	code, lines, err := cw.command(ehlo, o.CommandTimeout)
	trace(o, ehlo, lines)
	if err != nil {
		return nil, ioError(cmdEHLO, err)
	}
	cleartext := func() *conn {
		cw.swallow, cw.answer = []byte(ehlo+"\r\n"), wireReply(lines)
		return cw
	}
	need := "TLS is required (TLS policy " + pl.mode.String() + ")"
	if code != 250 || !hasKeyword(lines, "STARTTLS") {
		if !pl.mode.required() {
			return cleartext(), nil
		}
		why := "the server does not offer STARTTLS"
		if code != 250 {
			why = "EHLO was refused (" + oneLine(strings.Join(lines, "\n")) + ")"
		}
		if code != 421 {
			cw.quit(o) // the server answered and waits for more (RFC 5321 §4.1.1.10)
		}
		return nil, &Error{Status: "4.7.4", Command: cmdSTARTTLS, Msg: need + " but " + why}
	}
	code, reply, err := cw.command("STARTTLS", o.CommandTimeout)
	trace(o, "STARTTLS", reply)
	if err != nil {
		e := ioError(cmdSTARTTLS, err)
		e.plainRetry = pl.mode == TLSMay
		return nil, e
	}
	if code != 220 {
		e := replyError(cmdSTARTTLS, greetingReply(code, reply))
		if !pl.mode.required() {
			st.Note, st.Detail = "STARTTLS refused, sent without TLS", e.Reply()
			return cleartext(), nil
		}
		e.Permanent, e.Msg = false, need+" but STARTTLS was refused: "+e.Msg
		if e.Status[0] == '5' {
			e.Status = "4" + e.Status[1:]
		}
		if code != 421 {
			cw.quit(o) // a refused STARTTLS leaves the session in cleartext, in step (RFC 3207 §4)
		}
		return nil, e
	}
	if cw.br.Buffered() > 0 {
		// Anything read ahead came in cleartext and must not be taken for
		// the first reply under TLS (RFC 3207 §4.2; response injection).
		return nil, &Error{Status: "4.7.5", Command: cmdTLS, plainRetry: pl.mode == TLSMay,
			Msg: "TLS handshake not started: the server sent data after its 220 to STARTTLS"}
	}
	tc, e := handshakeTLS(ctx, cw.Conn, host, pl, o, st)
	if e != nil {
		e.plainRetry = pl.mode == TLSMay
		return nil, e
	}
	return newConn(tc, cw.tcp, o.DataTimeout), nil
}

// handshakeTLS runs the client handshake on c within CommandTimeout and
// checks the certificate as the plan says (see plan.tlsConfig).
func handshakeTLS(ctx context.Context, c net.Conn, host string, pl plan, o Options, st *TLSState) (*tls.Conn, *Error) {
	tc := tls.Client(c, pl.tlsConfig(host, o.TLS.Roots, st))
	_ = c.SetDeadline(time.Now().Add(o.CommandTimeout))
	err := tc.HandshakeContext(ctx)
	_ = c.SetDeadline(time.Time{})
	if err != nil {
		msg := err.Error()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
			msg = describe(err)
		}
		st.Verified, st.DANE = false, false
		return nil, &Error{Status: "4.7.5", Command: cmdTLS, Msg: "TLS handshake failed: " + msg, Err: err}
	}
	st.fill(tc.ConnectionState())
	return tc, nil
}

// quit ends a session that is still in step (the last command got its
// reply, other than 421) but will not be used: RFC 5321 §4.1.1.10 wants
// QUIT before the client closes, and §3.8 the server to keep the
// connection until it comes. The reply is awaited within CommandTimeout,
// and any failure ignored: the outcome is known already. A connection that
// failed (I/O error, timeout, 421) gets no QUIT: writing to it is pointless
// and waiting for a reply could only time out.
func (c *conn) quit(o Options) {
	_, lines, _ := c.command("QUIT", o.CommandTimeout)
	trace(o, "QUIT", lines)
}

// inStep reports whether the connection is still in step after e, an error
// from EHLO or AUTH: e carries a 4yz or 5yz reply other than 421, or no
// command was sent (e.Err nil: a refusal decided here, or an AUTH LOGIN
// exchange that go-smtp cancelled with "*" and its reply).
func inStep(e *Error) bool {
	var se *smtp.SMTPError
	if errors.As(e.Err, &se) {
		return se.Code != 421 && (se.Code/100 == 4 || se.Code/100 == 5)
	}
	return e.Err == nil
}

// command sends one command line on the connection itself (not through
// go-smtp) and reads the reply, within timeout.
func (c *conn) command(line string, timeout time.Duration) (int, []string, error) {
	_ = c.Conn.SetDeadline(time.Now().Add(timeout))
	defer c.Conn.SetDeadline(time.Time{})
	if _, err := io.WriteString(c.Conn, line+"\r\n"); err != nil {
		return 0, nil, err
	}
	return readReply(c.br)
}

// trace writes a command deliver sent itself, and its reply, to the
// protocol trace.
func trace(o Options, cmd string, reply []string) {
	if o.Debug == nil {
		return
	}
	var b strings.Builder
	if cmd != "" {
		b.WriteString(cmd + "\r\n")
	}
	for _, l := range reply {
		b.WriteString(l + "\r\n")
	}
	_, _ = io.WriteString(o.Debug, b.String())
}
