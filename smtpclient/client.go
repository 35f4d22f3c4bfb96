package smtpclient

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"time"

	"github.com/mxflush/mxflush/mta"
)

// Options are a Client's time limits and trace. Zero timeouts mean none,
// which only tests should want.
type Options struct {
	// CommandTimeout bounds each write of a command group and the
	// reading of each reply that has no limit of its own (RFC 5321
	// §4.5.3.2.2-4: the limit is per command, also in a pipelined group).
	CommandTimeout time.Duration
	// DataTimeout bounds each write of the message content (RFC 5321
	// §4.5.3.2.5), the final dot included.
	DataTimeout time.Duration
	// Trace, when not nil, gets every octet written and every reply line
	// read, in the order they crossed the wire; AUTH's exchange shows as
	// one line without the credentials.
	Trace io.Writer
}

// Client is one SMTP connection seen from the client's side. It is used by
// one goroutine at a time; only the function Watch starts may close it
// from another.
type Client struct {
	conn net.Conn // what commands go over: tcp, or TLS over it
	tcp  net.Conn // the TCP connection, closed by Close and by Watch
	o    Options
	br   *bufio.Reader
	w    deadlineWriter
	bw   *bufio.Writer
	ext  Extensions
	dw   DataWriter
}

// New returns a Client on c, the TCP connection. Nothing is read or
// written: the caller reads the greeting (ReadReply), or first runs an
// implicit TLS handshake (Handshake).
func New(c net.Conn, o Options) *Client {
	cl := &Client{conn: c, tcp: c, o: o}
	cl.setConn(c)
	return cl
}

// setConn puts the reader and writer over c (the TCP connection, or TLS
// over it), dropping whatever the old reader held.
func (c *Client) setConn(conn net.Conn) {
	c.conn = conn
	c.br = bufio.NewReaderSize(conn, 4096)
	c.w = deadlineWriter{conn: conn, trace: c.o.Trace, written: c.w.written}
	c.bw = bufio.NewWriterSize(&c.w, 8<<10)
}

// IOError is a read or a write on the connection that failed: closed,
// reset, or timed out (then errors.Is(err, os.ErrDeadlineExceeded)).
// The session is lost with it.
type IOError struct {
	Op  string // "read", "write" or "TLS handshake"
	Err error
}

func (e *IOError) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *IOError) Unwrap() error { return e.Err }

// Timeout reports whether the read or write ran out of time.
func (e *IOError) Timeout() bool { return errors.Is(e.Err, os.ErrDeadlineExceeded) }

// Watch closes the connection when ctx ends, so that a blocked read or
// write returns, and returns the function that stops watching (false: the
// connection was closed).
func (c *Client) Watch(ctx context.Context) (stop func() bool) {
	return context.AfterFunc(ctx, func() { c.tcp.Close() })
}

// Close closes the TCP connection, without QUIT (see Quit) and without
// TLS's close_notify: the session is over either way.
func (c *Client) Close() error { return c.tcp.Close() }

// Queue buffers one command line (without its CRLF) behind whatever is
// buffered already: a pipelined group (RFC 2920 §3.1) is queued command by
// command, written with one Flush, and its replies are read in the order
// of the commands with Reply. line must hold no CR or LF. Should the
// buffer fill, what it holds is written within CommandTimeout.
func (c *Client) Queue(line string) {
	c.w.timeout = c.o.CommandTimeout
	c.bw.WriteString(line)
	c.bw.WriteString("\r\n")
}

// Flush writes what is buffered, each write within CommandTimeout.
func (c *Client) Flush() error {
	c.w.timeout = c.o.CommandTimeout
	return c.flush()
}

func (c *Client) flush() error {
	if err := c.bw.Flush(); err != nil {
		return &IOError{Op: "write", Err: err}
	}
	return nil
}

// Written is the number of octets that went out so far; with Buffered,
// a caller can tell whether a given octet (the final dot) was written
// when a Flush fails.
func (c *Client) Written() int64 { return c.w.written }

// Buffered is the number of octets queued and not yet written.
func (c *Client) Buffered() int { return c.bw.Buffered() }

// ReadReply reads one reply within timeout (the whole reply, however it
// is split into segments). The error is an *IOError, or ErrMalformedReply
// or ErrReplyTooLong (see MaxReplyLines).
func (c *Client) ReadReply(timeout time.Duration) (mta.Reply, error) {
	if timeout > 0 {
		_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	} else {
		_ = c.conn.SetReadDeadline(time.Time{})
	}
	var raw func([]byte)
	if c.o.Trace != nil {
		raw = c.traceLine
	}
	r, err := readReply(c.br, raw)
	if err != nil && !errors.Is(err, ErrMalformedReply) {
		err = &IOError{Op: "read", Err: err}
	}
	return r, err
}

// Reply reads one reply within CommandTimeout.
func (c *Client) Reply() (mta.Reply, error) { return c.ReadReply(c.o.CommandTimeout) }

// Cmd writes one command and reads its reply.
func (c *Client) Cmd(line string) (mta.Reply, error) {
	c.Queue(line)
	if err := c.Flush(); err != nil {
		return mta.Reply{}, err
	}
	return c.Reply()
}

// Quit says QUIT (RFC 5321 §4.1.1.10) and reads the reply, which should be
// 221. It does not close the connection.
func (c *Client) Quit() (mta.Reply, error) { return c.Cmd("QUIT") }

func (c *Client) traceLine(line []byte) {
	c.o.Trace.Write(append(line[:len(line):len(line)], '\r', '\n'))
}

// deadlineWriter puts a deadline on every write, so that a server that
// stops reading cannot hang the client, counts what went out, and copies
// it to the trace unless hidden (AUTH).
type deadlineWriter struct {
	conn    net.Conn
	timeout time.Duration
	trace   io.Writer
	hide    bool
	written int64
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	if w.timeout > 0 {
		if err := w.conn.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
			return 0, err
		}
	}
	n, err := w.conn.Write(p)
	w.written += int64(n)
	if w.trace != nil && !w.hide && n > 0 {
		w.trace.Write(p[:n])
	}
	return n, err
}
