package testnet

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// SMTPOptions configures a receiver. Hooks run on the session's goroutine
// and must return; an *smtp.SMTPError they return is sent as the reply
// (any other error becomes a 451 or 554 chosen by go-smtp).
type SMTPOptions struct {
	Domain          string                                          // EHLO name, default "mx.test"
	MaxMessageBytes int64                                           // 0: unlimited (advertised as SIZE with no value)
	SMTPUTF8        bool                                            // advertise SMTPUTF8 (RFC 6531)
	Mail            func(from string, opts *smtp.MailOptions) error // return *smtp.SMTPError to refuse MAIL
	Rcpt            func(to string) error                           // return *smtp.SMTPError to refuse RCPT
	Data            func(from string, to []string, data []byte) error
	DataDelay       time.Duration // sleep before answering end of data (slow receiver); Close cuts it short
	Active          *Gauge        // shared across receivers: counts concurrent sessions, keeps the max
	// MaxSessions, with Active, refuses a session that starts (EHLO) while
	// that many are open with 421 4.7.0, as a receiver with a limit on
	// connections per client does (Postfix's
	// smtpd_client_connection_count_limit refuses at the greeting).
	MaxSessions int

	// TLS offers STARTTLS (RFC 3207) with this configuration; nil: no
	// STARTTLS. With ImplicitTLS, every connection is TLS from its first
	// octet instead (RFC 8314 §3.3) and STARTTLS is not offered.
	TLS         *tls.Config
	ImplicitTLS bool
	// AuthUsers offers AUTH (RFC 4954) and checks user -> password; nil:
	// no AUTH. AUTH is offered only over TLS unless InsecureAuth. A wrong
	// password gets 535 5.7.8.
	AuthUsers    map[string]string
	AuthMechs    []string // offered mechanisms, from PLAIN and LOGIN; default both
	InsecureAuth bool
	AuthRequired bool // MAIL before a successful AUTH gets 530 5.7.0
}

// Hello is one SMTP session as the server saw it start: the first EHLO or
// HELO of a connection, and the first after STARTTLS (a new session).
type Hello struct {
	Session int        // connection number, as in Received
	Name    string     // the EHLO/HELO argument
	TLS     bool       // the connection was under TLS
	Version uint16     // tls.VersionTLS13, ...; 0 without TLS
	Client  netip.Addr // the client's source address
}

// AuthAttempt is one AUTH exchange that reached a password check. The
// password is never kept.
type AuthAttempt struct {
	Session int
	Mech    string // "PLAIN" or "LOGIN"
	User    string
	OK      bool
	TLS     bool
}

// Gauge counts concurrent SMTP sessions (from EHLO/HELO to QUIT, or to the
// end of the connection when there is no QUIT or it came under TLS) across
// the receivers that share it, and keeps the maximum.
// The zero value is ready; it is safe for concurrent use.
type Gauge struct {
	mu       sync.Mutex
	now, max int
}

// Now returns the number of sessions open at this moment.
func (g *Gauge) Now() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.now
}

// Max returns the largest number of sessions that were open at once.
func (g *Gauge) Max() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.max
}

func (g *Gauge) add(d int) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.now += d
	g.max = max(g.max, g.now)
}

// Received is one accepted message.
type Received struct {
	From    string           // MAIL FROM address, "" for <>
	To      []string         // RCPT TO addresses that were accepted, in order
	Data    []byte           // the message as stored: dot-stuffing removed, CRLF line ends as sent
	Helo    string           // the EHLO/HELO argument of the session
	Session int              // 1-based number of the connection on this receiver
	Opts    smtp.MailOptions // MAIL parameters (SIZE=, BODY=, SMTPUTF8)
	TLS     bool             // it came over TLS
}

// Receiver is a go-smtp server on a loopback address that records what it
// receives. All methods are safe for concurrent use.
type Receiver struct {
	o      SMTPOptions
	srv    *smtp.Server
	ln     net.Listener
	done   chan struct{} // closed by Close
	served chan struct{} // closed when Serve has returned
	once   sync.Once

	mu       sync.Mutex
	msgs     []Received
	cmds     []string
	hellos   []Hello
	auths    []AuthAttempt
	sessions int
	conns    map[*recConn]struct{}
}

// StartSMTP starts a receiver listening on addr ("127.0.0.2:0" or a port
// from FreePort). The caller must Close it.
func StartSMTP(addr string, o SMTPOptions) (*Receiver, error) {
	if o.Domain == "" {
		o.Domain = "mx.test"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("testnet: smtp: listen %s: %w", addr, err)
	}
	r := &Receiver{
		o:      o,
		ln:     ln,
		done:   make(chan struct{}),
		served: make(chan struct{}),
		conns:  make(map[*recConn]struct{}),
	}
	r.srv = smtp.NewServer(backend{r})
	r.srv.Domain = o.Domain
	r.srv.MaxMessageBytes = o.MaxMessageBytes
	r.srv.EnableSMTPUTF8 = o.SMTPUTF8
	r.srv.AllowInsecureAuth = o.InsecureAuth
	if !o.ImplicitTLS {
		r.srv.TLSConfig = o.TLS
	}
	r.srv.ReadTimeout = time.Minute // a forgotten client cannot pin a test forever
	r.srv.WriteTimeout = time.Minute
	r.srv.ErrorLog = log.New(io.Discard, "", 0)
	go func() {
		defer close(r.served)
		_ = r.srv.Serve(&recListener{Listener: ln, r: r})
	}()
	return r, nil
}

// Addr returns "127.0.0.x:PORT".
func (r *Receiver) Addr() string { return r.ln.Addr().String() }

// Messages returns a copy of the accepted messages (those whose Data hook
// returned nil), in the order their end of data was answered.
func (r *Receiver) Messages() []Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// Sessions returns the number of connections accepted so far.
func (r *Receiver) Sessions() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sessions
}

// Commands returns every command line received in cleartext so far
// (without CRLF and without message content), across sessions in arrival
// order: for checks like "no RSET between messages", "never saw spy@" or
// "no AUTH before STARTTLS". Lines sent under TLS are not seen: recording
// stops at a STARTTLS that got 220, and an ImplicitTLS receiver records
// none (see Hellos, Auths and Received for what happened under TLS).
func (r *Receiver) Commands() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.cmds)
}

// Hellos returns the sessions the server started, in order (see Hello).
func (r *Receiver) Hellos() []Hello {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.hellos)
}

// Auths returns the AUTH attempts that reached a password check, in order.
func (r *Receiver) Auths() []AuthAttempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.auths)
}

// Close stops accepting, closes every connection, and waits until every
// session goroutine has returned (at most 5s). Safe to call twice.
func (r *Receiver) Close() error {
	var err error
	r.once.Do(func() {
		close(r.done)
		err = r.ln.Close()
		<-r.served // no new connections after this
		r.mu.Lock()
		for c := range r.conns {
			c.Conn.Close()
		}
		r.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if serr := r.srv.Shutdown(ctx); serr == context.DeadlineExceeded {
			err = fmt.Errorf("testnet: smtp: sessions still running after close: %w", serr)
		}
	})
	return err
}

// recListener numbers and tracks connections for Sessions and Close.
type recListener struct {
	net.Listener
	r *Receiver
}

func (l *recListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	r := l.r
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sessions++
	rc := &recConn{Conn: c, r: r, id: r.sessions, hidden: r.o.ImplicitTLS}
	r.conns[rc] = struct{}{}
	if r.o.ImplicitTLS {
		return tls.Server(rc, r.o.TLS), nil
	}
	return rc, nil
}

// recConn records the command lines a client sends. It follows DATA: after
// a "DATA" line the content is skipped until the "." line, unless the
// server's answer to DATA was not 354. Read and Write run on the session's
// goroutine; Close may come from Receiver.Close.
type recConn struct {
	net.Conn
	r        *Receiver
	id       int
	line     []byte // the current line, truncated to maxRecLine
	inData   bool   // inside message content
	awaitRep bool   // DATA sent, its reply not yet written
	awaitTLS bool   // STARTTLS sent, its reply not yet written
	hidden   bool   // under TLS: what is read is ciphertext, not recorded
	// leave takes the session off the Gauge, once: when QUIT is read
	// (before the 221 goes out, so that a client which waits for it can
	// never see its next session counted with this one), or at Logout.
	leave func()
}

const maxRecLine = 4096

func (c *recConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.scan(p[:n])
	return n, err
}

func (c *recConn) Write(p []byte) (int, error) {
	if c.awaitTLS {
		c.awaitTLS = false
		c.hidden = len(p) >= 3 && string(p[:3]) == "220"
	}
	if c.awaitRep {
		c.awaitRep = false
		if len(p) < 3 || string(p[:3]) != "354" {
			c.inData = false
		}
	}
	return c.Conn.Write(p)
}

func (c *recConn) Close() error {
	c.r.mu.Lock()
	delete(c.r.conns, c)
	c.r.mu.Unlock()
	return c.Conn.Close()
}

func (c *recConn) scan(b []byte) {
	for len(b) > 0 && !c.hidden {
		seg, rest, full := cutLine(b)
		b = rest
		keep := maxRecLine
		if c.inData {
			keep = 3 // enough to see ".\r"
		}
		if room := keep - len(c.line); room > 0 {
			c.line = append(c.line, seg[:min(len(seg), room)]...)
		}
		if !full {
			return
		}
		line := c.line
		c.line = c.line[:0]
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		if c.inData {
			if len(line) == 1 && line[0] == '.' {
				c.inData = false
			}
			continue
		}
		cmd := string(line)
		c.r.mu.Lock()
		c.r.cmds = append(c.r.cmds, cmd)
		c.r.mu.Unlock()
		if strings.EqualFold(cmd, "DATA") {
			c.inData, c.awaitRep = true, true
		}
		if strings.EqualFold(cmd, "STARTTLS") {
			c.awaitTLS = true
		}
		if strings.EqualFold(cmd, "QUIT") && c.leave != nil {
			c.leave()
		}
	}
}

// cutLine splits b after its first LF; full reports whether there was one.
func cutLine(b []byte) (line, rest []byte, full bool) {
	for i, x := range b {
		if x == '\n' {
			return b[:i], b[i+1:], true
		}
	}
	return b, nil, false
}

// backend hands every session to the receiver.
type backend struct{ r *Receiver }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	id := 0
	nc := c.Conn()
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	if rc, ok := nc.(*recConn); ok {
		id = rc.id
	}
	h := Hello{Session: id, Name: c.Hostname()}
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		h.Client = ta.AddrPort().Addr().Unmap()
	}
	if cs, ok := c.TLSConnectionState(); ok {
		h.TLS, h.Version = true, cs.Version
	}
	if b.r.o.MaxSessions > 0 && b.r.o.Active != nil && b.r.o.Active.Now() >= b.r.o.MaxSessions {
		return nil, &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "too many connections from your address"}
	}
	b.r.mu.Lock()
	b.r.hellos = append(b.r.hellos, h)
	b.r.mu.Unlock()
	b.r.o.Active.add(1)
	leave := sync.OnceFunc(func() { b.r.o.Active.add(-1) })
	if rc, ok := nc.(*recConn); ok {
		rc.leave = leave
	}
	return &session{r: b.r, id: id, helo: c.Hostname(), tls: h.TLS, leave: leave}, nil
}

// session is one SMTP session: it collects the envelope and records the
// message at end of data.
type session struct {
	r     *Receiver
	id    int
	helo  string
	tls   bool
	auth  bool   // AUTH succeeded
	leave func() // takes the session off the Gauge, once (see recConn.leave)
	from  string
	to    []string
	opts  smtp.MailOptions
}

func (s *session) Reset() {
	s.from, s.to, s.opts = "", nil, smtp.MailOptions{}
}

func (s *session) Logout() error {
	s.leave()
	return nil
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if s.r.o.AuthRequired && !s.auth {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	if s.r.o.Mail != nil {
		if err := s.r.o.Mail(from, opts); err != nil {
			return err
		}
	}
	s.from = from
	if opts != nil {
		s.opts = *opts
	}
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.r.o.Rcpt != nil {
		if err := s.r.o.Rcpt(to); err != nil {
			return err
		}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if d := s.r.o.DataDelay; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-s.r.done:
			t.Stop()
			return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "receiver closing"}
		}
	}
	if s.r.o.Data != nil {
		if err := s.r.o.Data(s.from, slices.Clone(s.to), data); err != nil {
			return err
		}
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.r.msgs = append(s.r.msgs, Received{
		From: s.from, To: slices.Clone(s.to), Data: data,
		Helo: s.helo, Session: s.id, Opts: s.opts, TLS: s.tls,
	})
	return nil
}
