package deliver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// Host is one mail exchanger: its name (for logs and Relay) and its
// addresses, in the order to try them.
type Host struct {
	Name  string
	Addrs []netip.Addr
}

// Options configures Dial. Zero durations take the RFC 5321 §4.5.3.2
// defaults given per field.
type Options struct {
	Helo            string        // EHLO/HELO name (required; no spaces or control characters)
	Port            int           // TCP port for every host (25 in production; 0 means 25)
	ConnectTimeout  time.Duration // per address; default 30s
	GreetingTimeout time.Duration // whole greeting; default 5m (RFC 5321 §4.5.3.2.1)
	CommandTimeout  time.Duration // EHLO, MAIL, RCPT, DATA initiation, RSET, QUIT: default 5m (§4.5.3.2.2-4)
	DataTimeout     time.Duration // each write of the message body: default 3m (§4.5.3.2.5)
	FinalTimeout    time.Duration // reply to the final dot: default 10m (§4.5.3.2.6)
	// Dialer opens TCP connections; nil means a net.Dialer.
	Dialer interface {
		DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	}
	Logger *slog.Logger // debug-level protocol events; nil discards
	Debug  io.Writer    // raw protocol trace (go-smtp DebugWriter); nil: none
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ConnectTimeout, 30*time.Second)
	def(&o.GreetingTimeout, 5*time.Minute)
	def(&o.CommandTimeout, 5*time.Minute)
	def(&o.DataTimeout, 3*time.Minute)
	def(&o.FinalTimeout, 10*time.Minute)
	if o.Port == 0 {
		o.Port = 25
	}
	if o.Dialer == nil {
		o.Dialer = &net.Dialer{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Dial connects to the first host that accepts a session: hosts in order,
// each address of a host in turn (RFC 5321 §5.1). A refused or timed-out
// connection moves on to the next address; a greeting that is not 2yz
// (judged by its last line, RFC 5321 §4.2.1: "220-..." then "521 ..." is a
// 521), a close before the greeting ends, or a failed EHLO and HELO moves on
// to the next host.
//
// The error is always *Error. It is permanent only when every host that
// was tried answered with a 5yz greeting (RFC 7504: 521, 554) and none was
// unreachable or temporarily refusing; its Code, Status and Msg then carry
// the last server's text. Otherwise it is temporary, with Msg like "all MX
// hosts failed (last: mx1.a.test[127.0.0.2]:2525: connection refused)".
// An invalid Options.Helo is a temporary local error (a configuration
// mistake must not bounce mail).
func Dial(ctx context.Context, hosts []Host, o Options) (*Session, error) {
	o = o.withDefaults()
	if err := checkHelo(o.Helo); err != nil {
		return nil, localError(false, "4.3.5", err.Error(), nil) // RFC 3463: system incorrectly configured
	}
	var (
		last      *Error
		refused5  bool // some host answered with a 5yz greeting
		temporary bool // some host was unreachable or failed temporarily
	)
	for _, h := range hosts {
		if len(h.Addrs) == 0 {
			temporary = true
			last = &Error{Status: "4.4.4", Command: cmdConnect, Msg: h.Name + ": no address"}
		}
		for _, ip := range h.Addrs {
			if err := ctx.Err(); err != nil {
				return nil, &Error{Status: "4.4.2", Command: cmdConnect, Msg: "canceled: " + err.Error(), Err: err}
			}
			s, err := dialAddr(ctx, h.Name, ip, o)
			if err == nil {
				return s, nil
			}
			last = err
			o.Logger.Debug("smtp dial failed", "host", h.Name, "addr", ip, "err", err)
			if err.Command == cmdGreeting && err.Permanent {
				refused5 = true
			} else {
				temporary = true
			}
			if err.Command != cmdConnect {
				break // the host answered: its other addresses are the same server
			}
		}
	}
	if last == nil {
		return nil, &Error{Status: "4.4.4", Command: cmdConnect, Msg: "no MX hosts to try"}
	}
	e := *last
	e.Err = last
	if refused5 && !temporary {
		e.Msg = "every MX host refused mail (last: " + last.Msg + ")"
		return nil, &e
	}
	e.Permanent = false
	if e.Code/100 == 5 {
		e.Code, e.Status = 0, "4"+e.Status[1:]
	}
	e.Msg = "all MX hosts failed (last: " + last.Msg + ")"
	return nil, &e
}

func checkHelo(h string) error {
	if h == "" {
		return fmt.Errorf("Options.Helo is empty (RFC 5321 §4.1.1.1 needs a name)")
	}
	for i := 0; i < len(h); i++ {
		if h[i] <= ' ' || h[i] >= 0x7f {
			return fmt.Errorf("Options.Helo %q has a space, a control character or non-ASCII", h)
		}
	}
	return nil
}

// dialAddr connects to one address, reads the greeting and says EHLO.
// Errors name the relay in Msg.
func dialAddr(ctx context.Context, name string, ip netip.Addr, o Options) (*Session, *Error) {
	relay := name + "[" + ip.String() + "]:" + strconv.Itoa(o.Port)
	fail := func(e *Error) *Error {
		if err := ctx.Err(); err != nil {
			e.Msg, e.Err = "canceled: "+err.Error(), err
		}
		e.Msg = relay + ": " + e.Msg
		return e
	}

	dctx, cancel := context.WithTimeout(ctx, o.ConnectTimeout)
	raw, err := o.Dialer.DialContext(dctx, "tcp", net.JoinHostPort(ip.String(), strconv.Itoa(o.Port)))
	cancel()
	if err != nil {
		return nil, fail(&Error{Status: "4.4.1", Command: cmdConnect, Msg: describe(err), Err: err})
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	cw := newConn(raw, o.DataTimeout)
	s, e := handshake(cw, relay, o)
	if !stop() && e == nil {
		// ctx ended as the handshake finished: the watcher closed raw.
		s.c.Close()
		e = ioError(cmdEHLO, net.ErrClosed)
	}
	if e != nil {
		return nil, fail(e)
	}
	o.Logger.Debug("smtp session open", "relay", relay, "8bitmime", s.eightBit, "smtputf8", s.utf8, "size", s.sizeLimit)
	return s, nil
}

// handshake reads the greeting and says EHLO (or HELO) on a new connection.
func handshake(cw *conn, relay string, o Options) (*Session, *Error) {
	raw := cw.Conn
	// Greeting, read here rather than by go-smtp: act on the last line's
	// code, and send nothing before the reply is complete (C01, C03).
	_ = raw.SetReadDeadline(time.Now().Add(o.GreetingTimeout))
	code, lines, err := readReply(cw.br)
	_ = raw.SetReadDeadline(time.Time{})
	if o.Debug != nil && len(lines) > 0 {
		_, _ = io.WriteString(o.Debug, strings.Join(lines, "\r\n")+"\r\n")
	}
	if err != nil {
		raw.Close()
		return nil, ioError(cmdGreeting, err)
	}
	if code/100 != 2 {
		// RFC 5321 §3.1: after a 554 greeting the server waits for QUIT.
		_ = raw.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = io.WriteString(raw, "QUIT\r\n")
		raw.Close()
		return nil, replyError(cmdGreeting, greetingReply(code, lines))
	}

	// go-smtp reads the greeting lazily (in Hello): give it a copy that
	// always passes its check for exactly 220.
	synthetic := "220 " + replyText(lines[len(lines)-1]) + "\r\n"
	cw.replay = []byte(synthetic)
	c := smtp.NewClient(cw)
	c.CommandTimeout = o.CommandTimeout
	c.SubmissionTimeout = o.FinalTimeout
	if o.Debug != nil {
		c.DebugWriter = &skipWriter{w: o.Debug, skip: len(synthetic)}
	}
	cw.capture = new(bytes.Buffer)
	err = c.Hello(o.Helo) // EHLO, then HELO on 500/502 (RFC 5321 §4.1.4)
	ehloReply := cw.capture.Bytes()
	cw.capture = nil
	if err != nil {
		c.Close()
		e, _ := classify(cmdEHLO, err)
		return nil, e
	}

	// STARTTLS slots in here: when EHLO offered it, "STARTTLS", the TLS
	// handshake on raw, a new go-smtp client over the TLS conn wrapped the
	// same way, and a second EHLO whose reply replaces the one above
	// (RFC 3207 §4.2). Extensions are read only after that point.

	s := &Session{c: c, conn: cw, o: o, relay: relay}
	s.utf8, _ = c.Extension("SMTPUTF8")
	s.eightBit, _ = c.Extension("8BITMIME")
	if ok, _ := c.Extension("SIZE"); ok {
		s.sizeLimit = sizeLimit(ehloReply)
	}
	return s, nil
}

// greetingReply builds the reply of a refusing greeting: the code of the
// last line, its enhanced status code if it has one (RFC 2034), and the
// text of every line.
func greetingReply(code int, lines []string) *smtp.SMTPError {
	se := &smtp.SMTPError{Code: code, EnhancedCode: smtp.NoEnhancedCode}
	texts := make([]string, len(lines))
	for i, l := range lines {
		texts[i] = replyText(l)
	}
	last := texts[len(texts)-1]
	if word, rest, ok := strings.Cut(last, " "); ok {
		if ec, ok := parseStatus(word); ok && ec[0] == code/100 {
			se.EnhancedCode, texts[len(texts)-1] = ec, rest
		}
	}
	se.Message = strings.Join(texts, "\n")
	return se
}

func parseStatus(s string) (smtp.EnhancedCode, bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return smtp.EnhancedCode{}, false
	}
	var ec smtp.EnhancedCode
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 999 {
			return smtp.EnhancedCode{}, false
		}
		ec[i] = n
	}
	return ec, true
}

// sizeLimit finds the SIZE keyword in a captured EHLO reply (RFC 1870 §4)
// and returns the smallest positive limit in octets; 0 means no limit
// ("SIZE" alone, "SIZE 0", or no usable number). go-smtp keeps only the last
// SIZE line, hence this second look at the raw reply.
func sizeLimit(reply []byte) int64 {
	var limit int64
	for _, line := range strings.Split(string(reply), "\n") {
		line = strings.TrimRight(line, "\r")
		if len(line) < 4 || !strings.HasPrefix(line, "250") || (line[3] != '-' && line[3] != ' ') {
			continue
		}
		f := strings.Fields(line[4:])
		if len(f) < 2 || !strings.EqualFold(f[0], "SIZE") {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || n <= 0 {
			continue
		}
		if limit == 0 || n < limit {
			limit = n
		}
	}
	return limit
}
