package main

import (
	"errors"
	"io"
	"log"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mxflush/mxflush/addr"
	"github.com/mxflush/mxflush/report"
)

// serveSMTP is sendmail -bs: an SMTP dialog on stdin and stdout, as
// Symfony Mailer's and Laravel's sendmail transports speak it, served by
// go-smtp's server over the two streams. Each message goes through the
// submission path, as with -bm; a refused one gets a 4xx or 5xx reply
// with an enhanced status code (RFC 3463) and nothing is queued. The
// dialog ends with QUIT or the end of stdin; the exit status is then 0,
// whatever the replies were (the client has read them).
func serveSMTP(g *Globals, s *submitter) error {
	conn := newStdioConn(g.stdin, g.stdout)
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &bsSession{s: s}, nil
	}))
	srv.Domain = g.Origin
	srv.MaxMessageBytes = int64(g.MaxMessageSize) // advertised as SIZE (RFC 1870); 0: no limit
	srv.ErrorLog = log.New(g.stderr, "mxflush: sendmail -bs: ", 0)
	err := srv.Serve(&oneConnListener{conn: conn})
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return exitf(report.ExIOErr, "sendmail -bs: %v", err)
	}
	return nil
}

// bsSession is one SMTP session of sendmail -bs.
type bsSession struct {
	s     *submitter
	from  *string
	rcpts []string
}

// Mail checks the sender (a name without a domain cannot reach here:
// go-smtp's parser wants one, RFC 5321 §4.1.2) and the disk reserve.
func (b *bsSession) Mail(from string, _ *smtp.MailOptions) error {
	if from != "" {
		if _, err := addr.Check(b.s.qualify(from)); err != nil {
			return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 7}, Message: oneLineText(err)}
		}
	}
	if err := checkFree(b.s.g); err != nil {
		return replyFor(err)
	}
	b.from = &from
	return nil
}

// Rcpt resolves the recipient now, so that a bad address or an aliases
// problem is answered at RCPT rather than after the data.
func (b *bsSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if _, err := b.s.resolve([]string{to}); err != nil {
		return replyFor(err)
	}
	b.rcpts = append(b.rcpts, to)
	return nil
}

// Data submits the message; go-smtp has undone the dot-stuffing.
func (b *bsSession) Data(r io.Reader) error {
	_, err := b.s.submit(submission{from: b.from, rcpts: b.rcpts, complete: true}, r)
	if err != nil {
		return replyFor(err)
	}
	return nil
}

func (b *bsSession) Reset()        { b.from, b.rcpts = nil, nil }
func (b *bsSession) Logout() error { return nil }

// replyFor turns a submission error into an SMTP reply (RFC 5321 §4.2,
// enhanced codes RFC 3463): too big 552 5.3.4; a bad address 553 5.1.3;
// a bad message 554 5.6.0; too little disk 452 4.3.1; an aliases problem
// 451 4.3.5; anything else (the spool) 451 4.3.0, worth a retry.
func replyFor(err error) *smtp.SMTPError {
	msg := oneLineText(err)
	var tb *tooBigError
	var ae *addr.Error
	var ee *exitError
	switch {
	case errors.As(err, &tb), errors.Is(err, smtp.ErrDataTooLarge):
		return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: msg}
	case errors.As(err, &ae):
		return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: msg}
	case !errors.As(err, &ee):
	case ee.code == report.ExDataErr:
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: msg}
	case ee.code == report.ExTempFail:
		return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: msg}
	case ee.code == report.ExConfig:
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 5}, Message: msg}
	}
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: msg}
}

// oneLineText is err's text on one line, for a reply.
func oneLineText(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// stdioConn is a net.Conn over a reader and a writer (stdin and stdout).
// Deadlines are not supported: a caller that stops talking is waited for,
// as any sendmail -bs waits on its stdin.
type stdioConn struct {
	io.Reader
	io.Writer
	once   sync.Once
	closed chan struct{}
}

func newStdioConn(r io.Reader, w io.Writer) *stdioConn {
	return &stdioConn{Reader: &crlfReader{r: r}, Writer: w, closed: make(chan struct{})}
}

// crlfReader turns each bare LF of r into CRLF. A terminal and most
// scripts end their lines with LF alone, and go-smtp's server, reading
// the network's form (RFC 5321 §2.3.8), would never see the line "." end
// the DATA of such input: the message was lost with exit 0. Postfix's
// sendmail -bs takes LF too. A CR already before the LF is kept as it is,
// and the octets of a BDAT chunk (RFC 3030 §2), counted by their sender,
// pass unchanged: the line "BDAT n" given as a command is followed by n
// octets taken as they are.
type crlfReader struct {
	r      io.Reader
	buf    []byte
	line   []byte // the current line so far, to recognise DATA, "." and BDAT
	prevCR bool   // the last octet handed out was a CR
	inData bool   // between a DATA command and the line "."
	raw    int64  // octets of a BDAT chunk still to pass unchanged
	out    []byte // converted octets not yet handed out
}

func (c *crlfReader) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if cap(c.buf) == 0 {
			c.buf = make([]byte, 4096)
		}
		n, err := c.r.Read(c.buf[:cap(c.buf)])
		for _, b := range c.buf[:n] {
			c.take(b)
		}
		if err != nil && len(c.out) == 0 {
			return 0, err
		}
		if err != nil {
			break
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

// take converts one octet into c.out.
func (c *crlfReader) take(b byte) {
	if c.raw > 0 {
		c.raw--
		c.out = append(c.out, b)
		c.prevCR = false
		return
	}
	if b == '\n' && !c.prevCR {
		c.out = append(c.out, '\r')
	}
	c.out = append(c.out, b)
	c.prevCR = b == '\r'
	if b != '\n' {
		if len(c.line) < 64 { // enough to tell the commands apart
			c.line = append(c.line, b)
		}
		return
	}
	line := strings.TrimRight(string(c.line), "\r")
	c.line = c.line[:0]
	switch {
	case c.inData:
		c.inData = line != "."
	case strings.EqualFold(line, "DATA"):
		c.inData = true
	case len(line) > 5 && strings.EqualFold(line[:5], "BDAT "):
		f := strings.Fields(line[5:])
		if len(f) > 0 {
			if n, err := strconv.ParseInt(f[0], 10, 64); err == nil && n > 0 {
				c.raw = n
			}
		}
	}
}

func (c *stdioConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}
func (c *stdioConn) LocalAddr() net.Addr              { return stdioAddr{} }
func (c *stdioConn) RemoteAddr() net.Addr             { return stdioAddr{} }
func (c *stdioConn) SetDeadline(time.Time) error      { return nil }
func (c *stdioConn) SetReadDeadline(time.Time) error  { return nil }
func (c *stdioConn) SetWriteDeadline(time.Time) error { return nil }

type stdioAddr struct{}

func (stdioAddr) Network() string { return "stdio" }
func (stdioAddr) String() string  { return "stdin/stdout" }

// oneConnListener hands out its one connection, then waits for it to be
// closed (the session ended) and reports net.ErrClosed, which ends
// go-smtp's Serve.
type oneConnListener struct {
	conn *stdioConn
	mu   sync.Mutex
	done bool
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	first := !l.done
	l.done = true
	l.mu.Unlock()
	if first {
		return l.conn, nil
	}
	<-l.conn.closed
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error   { return nil }
func (l *oneConnListener) Addr() net.Addr { return stdioAddr{} }
