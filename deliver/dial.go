package deliver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/mxflush/mxflush/mta"
)

// Options configures Dial. Zero durations take the RFC 5321 §4.5.3.2
// defaults given per field.
type Options struct {
	Helo            string        // EHLO/HELO name (required; no spaces or control characters); the same before and after STARTTLS
	Port            int           // TCP port for hosts without their own (25 in production; 0 means 25)
	ConnectTimeout  time.Duration // per address; default 30s
	GreetingTimeout time.Duration // whole greeting; default 5m (RFC 5321 §4.5.3.2.1)
	CommandTimeout  time.Duration // EHLO, STARTTLS and the TLS handshake, AUTH, MAIL, RCPT, DATA initiation, RSET, QUIT: default 5m (§4.5.3.2.2-4)
	DataTimeout     time.Duration // each write of the message body: default 3m (§4.5.3.2.5)
	FinalTimeout    time.Duration // reply to the final dot: default 10m (§4.5.3.2.6)
	TLS             TLSPolicy     // the zero value is opportunistic STARTTLS (TLSMay)
	// NoPipelining sends one command at a time even to a server that
	// offers PIPELINING (RFC 2920): for a server that answered a pipelined
	// group out of order earlier in the run (see mta.Error.OutOfOrder).
	NoPipelining bool
	// Auth returns the SMTP AUTH credentials (RFC 4954) for a host (its
	// name without brackets) and port, or nil for none. nil: no AUTH.
	Auth func(host string, port int) *Auth
	// Family restricts the addresses connected to, as Postfix's
	// inet_protocols: FamilyAll (the zero value), FamilyIPv4 or FamilyIPv6.
	Family Family
	// Bind, when valid, is the source address of every connection, as
	// Postfix's smtp_bind_address: on a host with several addresses, the
	// one receivers know (its PTR and SPF). Only addresses of its family
	// are connected to. It applies to the default dialer (Dialer nil).
	Bind netip.Addr
	// Dialer opens TCP connections; nil means a net.Dialer (from Bind).
	Dialer interface {
		DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	}
	Logger *slog.Logger // debug-level protocol events; nil discards
	Debug  io.Writer    // raw protocol trace (AUTH credentials left out); nil: none
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
		d := &net.Dialer{}
		if o.Bind.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: o.Bind.AsSlice()}
		}
		o.Dialer = d
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
// 521), a close before the greeting ends, a failed EHLO and HELO, or a TLS
// step that the policy cannot accept moves on to the next host.
//
// TLS follows o.TLS (see TLSMode). Under TLSMay a TLS failure during or
// after the handshake is followed at once by a new connection to the same
// address without STARTTLS (RFC 7435); a 454 to STARTTLS goes on in
// cleartext on the same connection. Under TLSEncrypt, TLSVerify and
// TLSDANE nothing is ever sent in cleartext: such failures are temporary
// errors (4.7.4 no STARTTLS, 4.7.5 handshake or certificate), never
// permanent. Under TLSDANE each host's TLSA records are looked up first;
// a failed lookup skips the host (RFC 7672 §2.2). A host that an insecure
// DNS answer named (mta.Host.Insecure) gets no TLSA lookup and TLSMay
// (RFC 7672 §2.2.1).
//
// The error is always *mta.Error. An AUTH failure (mta.Error.Config) ends Dial at
// once: other hosts would get the same wrong credentials. Otherwise it is
// permanent only when every host that was tried answered with a 5yz
// greeting (RFC 7504: 521, 554) and none was unreachable or temporarily
// refusing; its Code, Status and Msg then carry the last server's text.
// Otherwise it is temporary, with Msg like "all MX hosts failed (last:
// mx1.a.test[127.0.0.2]:2525: connection refused)". An invalid Options.Helo
// is a temporary local error (a configuration mistake must not bounce
// mail).
func Dial(ctx context.Context, hosts []mta.Host, o Options) (*Session, error) {
	o = o.withDefaults()
	if err := checkHelo(o.Helo); err != nil {
		return nil, localError(false, "4.3.5", err.Error(), nil) // RFC 3463: system incorrectly configured
	}
	if o.TLS.Implicit && o.TLS.Mode == TLSNone {
		return nil, configError("4.3.5", mta.CmdLocal, "implicit TLS (RFC 8314) with TLS policy none", nil)
	}
	var (
		last      *mta.Error
		refused5  bool // some host answered with a 5yz greeting
		temporary bool // some host was unreachable or failed temporarily
	)
	for _, h := range hosts {
		port := h.Port
		if port == 0 {
			port = o.Port
		}
		if len(h.Addrs) == 0 {
			temporary = true
			last = &mta.Error{Status: "4.4.4", Command: mta.CmdConnect, Msg: h.Name + ": no address"}
			continue
		}
		addrs := o.usable(h.Addrs)
		if len(addrs) == 0 {
			temporary = true
			last = &mta.Error{Status: "4.4.4", Command: mta.CmdConnect, Msg: h.Name + ": no " + o.familyName() + " address"}
			continue
		}
		pl, err := o.TLS.planFor(ctx, certName(h.Name), port, h.Insecure)
		if err != nil {
			temporary = true
			last = &mta.Error{Status: "4.7.5", Command: mta.CmdTLS, Msg: h.Name + ": TLSA lookup failed (RFC 7672 §2.2): " + err.Error(), Err: err}
			o.Logger.Debug("smtp TLSA lookup failed", "host", h.Name, "err", err)
			continue
		}
		if h.Insecure && o.TLS.Mode == TLSDANE {
			o.Logger.Debug("smtp no DANE: the DNS answer naming the host was not authenticated (RFC 7672 §2.2.1)", "host", h.Name)
		}
		if o.Auth != nil {
			pl.auth = o.Auth(certName(h.Name), port)
		}
		for _, ip := range addrs {
			if err := ctx.Err(); err != nil {
				return nil, &mta.Error{Status: "4.4.2", Command: mta.CmdConnect, Msg: "canceled: " + err.Error(), Err: err}
			}
			s, rt, err := dialAddr(ctx, h.Name, ip, port, pl, o, "")
			if rt == retryPlain && ctx.Err() == nil {
				why := strings.TrimPrefix(err.Msg, relayName(h.Name, ip, port)+": ")
				o.Logger.Debug("smtp TLS failed, retrying without TLS", "host", h.Name, "addr", ip, "err", err)
				s, rt, err = dialAddr(ctx, h.Name, ip, port, plan{mode: TLSNone, auth: pl.auth}, o, why)
			}
			if rt == retryHELO && ctx.Err() == nil {
				o.Logger.Debug("smtp EHLO refused and connection closed, retrying with HELO", "host", h.Name, "addr", ip, "err", err)
				s, _, err = dialAddr(ctx, h.Name, ip, port, plan{mode: TLSNone, helo: true}, o, "")
			}
			if err == nil {
				return s, nil
			}
			if err.Config {
				return nil, err
			}
			last = err
			o.Logger.Debug("smtp dial failed", "host", h.Name, "addr", ip, "err", err)
			if err.Command == mta.CmdGreeting && err.Permanent {
				refused5 = true
			} else {
				temporary = true
			}
			if err.Command != mta.CmdConnect {
				break // the host answered: its other addresses are the same server
			}
		}
	}
	if last == nil {
		return nil, &mta.Error{Status: "4.4.4", Command: mta.CmdConnect, Msg: "no MX hosts to try"}
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

// relayName is Postfix's form "name[ip]:port".
func relayName(name string, ip netip.Addr, port int) string {
	return name + "[" + ip.String() + "]:" + strconv.Itoa(port)
}

// certName is the name a certificate must carry for host: the name itself,
// or the address of a literal "[127.0.0.1]" (an IP SAN).
func certName(host string) string {
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		h := strings.TrimSuffix(host[1:], "]")
		h, _ = strings.CutPrefix(h, "IPv6:")
		return h
	}
	return host
}

// dialAddr connects to one address and opens a session on it (see open).
// fallback is the TLS failure that made this a cleartext retry, or "".
// Errors name the relay in Msg; rt is what to try next on this address.
func dialAddr(ctx context.Context, name string, ip netip.Addr, port int, pl plan, o Options, fallback string) (s *Session, rt retry, e *mta.Error) {
	relay := relayName(name, ip, port)
	fail := func(e *mta.Error) *mta.Error {
		if err := ctx.Err(); err != nil {
			e.Msg, e.Err, rt = "canceled: "+err.Error(), err, retryNone
		}
		e.Msg = relay + ": " + e.Msg
		return e
	}

	dctx, cancel := context.WithTimeout(ctx, o.ConnectTimeout)
	raw, err := o.Dialer.DialContext(dctx, "tcp", net.JoinHostPort(ip.String(), strconv.Itoa(port)))
	cancel()
	if err != nil {
		return nil, retryNone, fail(&mta.Error{Status: "4.4.1", Command: mta.CmdConnect, Msg: describe(err), Err: err})
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	st := TLSState{}
	if fallback != "" {
		st.Note, st.Detail = "TLS failed, sent without TLS", fallback
	}
	s, rt, e = open(ctx, raw, relay, certName(name), pl, o, st)
	if !stop() && e == nil {
		// ctx ended as the handshake finished: the watcher closed raw.
		s.c.Close()
		e = ioError(mta.CmdEHLO, net.ErrClosed)
	}
	if e != nil {
		raw.Close()
		e = fail(e)
		return nil, rt, e
	}
	o.Logger.Debug("smtp session open", "relay", relay, "tls", s.tls.Token(), "8bitmime", s.eightBit, "smtputf8", s.utf8, "size", s.sizeLimit)
	return s, retryNone, nil
}
