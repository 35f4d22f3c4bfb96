package deliver

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/mxflush/mxflush/mta"
	"github.com/mxflush/mxflush/smtpclient"
)

// retry is what a failed attempt on one address asks of Dial, besides
// its error.
type retry uint8

const (
	retryNone retry = iota
	// retryPlain: TLS failed during or after the handshake under TLSMay,
	// so the same address is tried again without STARTTLS (RFC 7435).
	retryPlain
	// retryHELO: EHLO got 500 or 502 and the server closed the connection
	// before HELO could follow, so the same address is tried again on a
	// new connection that starts with HELO (RFC 5321 §4.1.4).
	retryHELO
)

// open runs a new connection up to the first MAIL FROM:
//
//  1. implicit TLS (RFC 8314 §3.3), when the plan says so;
//  2. the greeting, judged by the code of its last line (RFC 5321
//     §4.2.1);
//  3. EHLO --helo and, unless the plan is TLSNone or TLS is up already,
//     STARTTLS when offered (see starttls), then EHLO again over TLS
//     (RFC 3207 §4.2); HELO follows a 500 or 502 to EHLO (RFC 5321
//     §4.1.4);
//  4. AUTH, when Options.Auth has credentials for the host (see
//     authenticate).
//
// A failure is an error and what the caller should try next on the same
// address, if anything.
func open(ctx context.Context, raw net.Conn, relay, host string, pl plan, o Options, st TLSState) (*Session, retry, *mta.Error) {
	c := smtpclient.New(raw, smtpclient.Options{CommandTimeout: o.CommandTimeout, DataTimeout: o.DataTimeout, Trace: o.Debug})
	if pl.implicit {
		if e := handshake(ctx, c, host, pl, o, &st); e != nil {
			return nil, retryNone, e
		}
		st.Implicit = true
	}
	if e := greet(c, o); e != nil {
		return nil, retryNone, e
	}
	if pl.helo {
		s, e := openHELO(c, relay, o, st)
		return s, retryNone, e
	}
	ehlo, err := c.Ehlo(o.Helo)
	if err != nil {
		return nil, retryNone, ioError(mta.CmdEHLO, err)
	}
	if !pl.implicit && pl.mode != TLSNone {
		secured, rt, e := starttls(ctx, c, host, pl, o, &st, ehlo)
		if e != nil {
			return nil, rt, e
		}
		if secured {
			ehlo, err = c.Ehlo(o.Helo)
		}
	}
	// TLS came up by STARTTLS but the session over it failed: under may
	// that counts as a failed STARTTLS too ("during or after the
	// handshake"), and the address is tried again in cleartext.
	afterTLS := retryNone
	if st.Version != "" && !pl.implicit && pl.mode == TLSMay {
		afterTLS = retryPlain
	}
	if err != nil {
		return nil, afterTLS, ioError(mta.CmdEHLO, err)
	}
	cmd := mta.CmdEHLO
	if ehlo.Code == 500 || ehlo.Code == 502 {
		// The server does not know EHLO: HELO on the same connection.
		cmd = mta.CmdHELO
		if ehlo, err = c.Helo(o.Helo); err != nil {
			rt := afterTLS
			if st.Version == "" && !pl.mode.required() {
				rt = retryHELO // it closed instead of answering HELO
			}
			return nil, rt, ioError(mta.CmdHELO, err)
		}
	}
	if ehlo.Class() != 2 {
		e, lost := judge(cmd, 2, ehlo)
		if !lost {
			quit(c) // refused with a reply: the server waits for QUIT
		}
		return nil, afterTLS, e
	}
	if pl.auth != nil {
		if e, inStep := authenticate(c, pl.auth, st, relay, o); e != nil {
			if inStep {
				quit(c)
			}
			return nil, retryNone, e
		}
	}
	s := &Session{c: c, o: o, relay: relay, tls: st}
	ext := c.Extensions()
	s.utf8 = ext.Has("SMTPUTF8")
	s.eightBit = ext.Has("8BITMIME")
	s.pipelining = ext.Has("PIPELINING") && !o.NoPipelining
	s.size = ext.Has("SIZE")
	s.sizeLimit = ext.SizeLimit()
	return s, retryNone, nil
}

// openHELO starts a session with HELO instead of EHLO, for a server that
// closed the connection after refusing EHLO. Such a session has no extension
// (RFC 5321 §4.1.4 via §3.2): no PIPELINING, SIZE, 8BITMIME, SMTPUTF8,
// STARTTLS or AUTH; 8-bit and UTF-8 messages fail in Send as on any session
// without them.
func openHELO(c *smtpclient.Client, relay string, o Options, st TLSState) (*Session, *mta.Error) {
	r, err := c.Helo(o.Helo)
	if err != nil {
		return nil, ioError(mta.CmdHELO, err)
	}
	if e, lost := judge(mta.CmdHELO, 2, r); e != nil {
		if !lost {
			quit(c)
		}
		return nil, e
	}
	return &Session{c: c, o: o, relay: relay, tls: st}, nil
}

// greet reads the greeting within GreetingTimeout and judges it by the
// code of its last line; nothing is sent before the reply is complete (it
// may be split across segments, and the last line's code may differ from
// the others').
func greet(c *smtpclient.Client, o Options) *mta.Error {
	r, err := c.ReadReply(o.GreetingTimeout)
	if err != nil {
		return ioError(mta.CmdGreeting, err)
	}
	if r.Class() != 2 {
		// RFC 5321 §3.1: after a 554 greeting the server waits for QUIT.
		// Its reply is not awaited: the host is refused either way.
		c.Queue("QUIT")
		_ = c.Flush()
		return replyError(mta.CmdGreeting, r)
	}
	return nil
}

// starttls, after the EHLO reply ehlo, secures the connection when the
// server offers STARTTLS (RFC 3207). secured: TLS is up and EHLO is to be
// said again.
//
// Under TLSMay: no STARTTLS offered, or a 4yz/5yz to it (454 4.7.0), goes
// on in cleartext on this connection; an I/O error after STARTTLS, data
// sent before the handshake, or a failed handshake is an error and
// retryPlain. Under the other modes every one of these is a temporary
// error (4.7.4 or 4.7.5), and when the server answered (no STARTTLS, EHLO
// or STARTTLS refused, other than with 421) the connection is still in
// step and gets QUIT first (RFC 5321 §4.1.1.10).
func starttls(ctx context.Context, c *smtpclient.Client, host string, pl plan, o Options, st *TLSState, ehlo mta.Reply) (secured bool, rt retry, e *mta.Error) {
	onFail := retryNone
	if pl.mode == TLSMay {
		onFail = retryPlain
	}
	need := "TLS is required (TLS policy " + pl.mode.String() + ")"
	if ehlo.Code != 250 || !c.Extensions().Has("STARTTLS") {
		if !pl.mode.required() {
			return false, retryNone, nil
		}
		why := "the server does not offer STARTTLS"
		if ehlo.Code != 250 {
			why = "EHLO was refused (" + ehlo.String() + ")"
		}
		if ehlo.Code != 421 {
			quit(c) // the server answered and waits for more (RFC 5321 §4.1.1.10)
		}
		return false, retryNone, &mta.Error{Status: "4.7.4", Command: mta.CmdSTARTTLS, Msg: need + " but " + why}
	}
	r, cs, err := c.StartTLS(ctx, pl.tlsConfig(host, o.TLS.Roots, st))
	switch {
	case r.Code == 0:
		return false, onFail, ioError(mta.CmdSTARTTLS, err)
	case r.Code != 220:
		e := replyError(mta.CmdSTARTTLS, r)
		if !pl.mode.required() {
			st.Note, st.Detail = "STARTTLS refused, sent without TLS", e.Reply()
			return false, retryNone, nil
		}
		e.Permanent, e.Msg = false, need+" but STARTTLS was refused: "+e.Msg
		if e.Status[0] == '5' {
			e.Status = "4" + e.Status[1:]
		}
		if r.Code != 421 {
			quit(c) // a refused STARTTLS leaves the session in cleartext, in step (RFC 3207 §4)
		}
		return false, retryNone, e
	case errors.Is(err, smtpclient.ErrPlaintextAfterSTARTTLS):
		return false, onFail, &mta.Error{Status: "4.7.5", Command: mta.CmdTLS, Err: err,
			Msg: "TLS handshake not started: " + err.Error() + " (RFC 3207 §4.2)"}
	case err != nil:
		st.Verified, st.DANE = false, false
		return false, onFail, tlsError(err)
	}
	st.fill(*cs)
	return true, retryNone, nil
}

// handshake runs implicit TLS (RFC 8314 §3.3) before the greeting.
func handshake(ctx context.Context, c *smtpclient.Client, host string, pl plan, o Options, st *TLSState) *mta.Error {
	cs, err := c.Handshake(ctx, pl.tlsConfig(host, o.TLS.Roots, st))
	if err != nil {
		st.Verified, st.DANE = false, false
		return tlsError(err)
	}
	st.fill(*cs)
	return nil
}

// tlsError is a failed handshake or certificate check: temporary, 4.7.5
// (RFC 3463 §3.8: cryptographic failure).
func tlsError(err error) *mta.Error {
	cause := err
	var ioe *smtpclient.IOError
	if errors.As(err, &ioe) {
		cause = ioe.Err
	}
	msg := cause.Error()
	if errors.Is(cause, io.EOF) || errors.Is(cause, io.ErrUnexpectedEOF) || errors.Is(cause, net.ErrClosed) {
		msg = describe(cause)
	}
	return &mta.Error{Status: "4.7.5", Command: mta.CmdTLS, Msg: "TLS handshake failed: " + msg, Err: err}
}

// quit ends a session that is still in step (the last command got its
// reply, other than 421) but will not be used: RFC 5321 §4.1.1.10 wants
// QUIT before the client closes, and §3.8 the server to keep the
// connection until it comes. The reply is awaited within CommandTimeout,
// and any failure ignored: the outcome is known already. A connection that
// failed (I/O error, timeout, 421) gets no QUIT: writing to it is pointless
// and waiting for a reply could only time out.
func quit(c *smtpclient.Client) {
	_, _ = c.Quit()
}
