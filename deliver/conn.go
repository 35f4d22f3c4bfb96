package deliver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// conn sits between go-smtp and the TCP connection. It
//   - replays a synthetic "220" line: deliver reads the real greeting itself
//     (to act on the code of its last line, RFC 5321 §4.2.1) and go-smtp's
//     lazy greet then reads this copy;
//   - replays the EHLO exchange deliver ran itself to decide on STARTTLS,
//     when the session stays in cleartext: go-smtp's identical EHLO line is
//     not sent, and it reads the reply deliver got (one EHLO on the wire);
//   - puts a write deadline on every Write: the one go-smtp set for the
//     current command, or else DataTimeout (each block of the message body,
//     RFC 5321 §4.5.3.2.5), so a receiver that stops reading cannot hang us;
//   - bounds what go-smtp reads as one reply (EHLO, HELO, AUTH): its
//     textproto reader limits a line's length but not the number of lines,
//     so a receiver streaming "250-" lines would fill memory. Read fails
//     once more than maxReplyLines lines or maxReplyOctets octets came in
//     since the last command was written (see replyRead);
//   - records reads while capture is set (the EHLO reply, for SIZE) and
//     remembers whether any write failed (to tell whether the final dot went
//     out).
//
// It is used by one goroutine at a time; only Close may come from the
// context watcher, and net.Conn.Close is safe for that.
type conn struct {
	net.Conn
	tcp         net.Conn      // the TCP connection: Conn itself, or the one under TLS; the context watcher closes it
	br          *bufio.Reader // over Conn; holds what the greeting read ahead
	replay      []byte        // synthetic replies not yet read by go-smtp
	swallow     []byte        // the EHLO line already sent: go-smtp's copy is not sent again
	answer      []byte        // the reply to swallow, queued in replay when go-smtp writes it
	dataTimeout time.Duration
	deadline    time.Time     // write deadline set by go-smtp, zero between commands
	capture     *bytes.Buffer // non-nil: copy of everything read
	writeErr    error         // first failed write
	written     int64         // octets Write got out, in total (a failed write counts its part)
	replyRead   replyCount    // what Read returned since the last Write: the reply go-smtp is reading
}

// replyCount is the size of a reply read so far.
type replyCount struct{ lines, octets int }

// add counts p and reports whether the reply is still within the limits
// deliver's own reader applies (see readReply).
func (r *replyCount) add(p []byte) bool {
	r.lines += bytes.Count(p, []byte{'\n'})
	r.octets += len(p)
	return r.lines <= maxReplyLines && r.octets <= maxReplyOctets
}

// newConn wraps c, which runs over the TCP connection tcp (c itself, or a
// *tls.Conn over it).
func newConn(c, tcp net.Conn, dataTimeout time.Duration) *conn {
	return &conn{Conn: c, tcp: tcp, br: bufio.NewReaderSize(c, 4096), dataTimeout: dataTimeout}
}

func (c *conn) Read(p []byte) (int, error) {
	var n int
	var err error
	if len(c.replay) > 0 {
		n = copy(p, c.replay)
		c.replay = c.replay[n:]
	} else {
		n, err = c.br.Read(p)
	}
	if !c.replyRead.add(p[:n]) {
		// The octets are dropped, not handed over: go-smtp must not take
		// a reply cut at the limit for a complete one. The session is
		// over (a malformed reply loses it, as in readReply).
		return 0, errReplyTooLong
	}
	if c.capture != nil && n > 0 {
		c.capture.Write(p[:n])
	}
	return n, err
}

func (c *conn) Write(p []byte) (int, error) {
	c.replyRead = replyCount{} // a command: what is read next is its reply
	if c.swallow != nil {
		same := bytes.Equal(p, c.swallow)
		c.swallow = nil
		if same {
			c.replay = append(c.replay, c.answer...)
			c.answer = nil
			return len(p), nil
		}
		// Not the expected EHLO: send it; a second EHLO is legal.
		c.answer = nil
	}
	dl := c.deadline
	if dl.IsZero() {
		dl = time.Now().Add(c.dataTimeout)
	}
	if err := c.Conn.SetWriteDeadline(dl); err != nil {
		c.noteWriteErr(err)
		return 0, err
	}
	n, err := c.Conn.Write(p)
	c.written += int64(n)
	if err != nil {
		c.noteWriteErr(err)
	}
	return n, err
}

func (c *conn) noteWriteErr(err error) {
	if c.writeErr == nil {
		c.writeErr = err
	}
}

func (c *conn) SetDeadline(t time.Time) error {
	c.deadline = t
	return c.Conn.SetDeadline(t)
}

func (c *conn) SetWriteDeadline(t time.Time) error {
	c.deadline = t
	return c.Conn.SetWriteDeadline(t)
}

// skipWriter drops the first skip bytes written to it: the replayed greeting
// must not show up in the protocol trace a second time.
type skipWriter struct {
	w    io.Writer
	skip int
}

func (s *skipWriter) Write(p []byte) (int, error) {
	n := len(p)
	if s.skip > 0 {
		k := min(s.skip, len(p))
		s.skip -= k
		p = p[k:]
	}
	if len(p) > 0 {
		if _, err := s.w.Write(p); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// Limits on one reply, in every phase: the greeting and every reply read
// here (readReply), and EHLO, HELO and AUTH read by go-smtp (conn.Read). RFC
// 5321 §4.5.3.1.5 makes a reply line at most 512 octets and names no limit
// on the number of lines; real EHLO replies have about 20. A receiver that
// sends more is broken or hostile, and without these a stream of "250-"
// lines would be read until memory runs out. Time is bounded by the
// deadline on every read (RFC 5321 §4.5.3.2).
const (
	maxReplyLine   = 2000     // octets, twice RFC 5321 §4.5.3.1.5 like go-smtp
	maxReplyLines  = 100      // lines in one reply
	maxReplyOctets = 64 << 10 // octets in one reply, each line end counted as CRLF
)

var (
	errMalformedReply = errors.New("malformed reply")
	errReplyTooLong   = fmt.Errorf("%w: longer than %d lines or %d octets", errMalformedReply, maxReplyLines, maxReplyOctets)
)

// readReply reads one complete reply (RFC 5321 §4.2.1): lines "ddd-text"
// until a line "ddd text" or "ddd". It returns the code of the LAST line
// (servers that change codes between lines exist) and every line as
// received without its line end. Bare LF line ends are accepted. A reply
// longer than maxReplyLines or maxReplyOctets is an error.
func readReply(br *bufio.Reader) (code int, lines []string, err error) {
	octets := 0
	for len(lines) < maxReplyLines {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) || len(line) > maxReplyLine {
			return 0, lines, fmt.Errorf("%w: line longer than %d octets", errMalformedReply, maxReplyLine)
		}
		if err != nil {
			if err == io.EOF && len(line) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return 0, lines, err
		}
		s := strings.TrimRight(string(line), "\r\n")
		// Counted as wireReply writes it again (CRLF), so a reply accepted
		// here also fits conn.Read's limit when it is replayed to go-smtp.
		if octets += len(s) + 2; octets > maxReplyOctets {
			return 0, lines, errReplyTooLong
		}
		c, more, ok := parseReplyLine(s)
		if !ok {
			return 0, lines, fmt.Errorf("%w: %q", errMalformedReply, s)
		}
		lines = append(lines, s)
		if !more {
			return c, lines, nil
		}
	}
	return 0, lines, errReplyTooLong
}

// replyText is the text of a reply line after "ddd-" or "ddd ".
func replyText(line string) string {
	if len(line) < 4 {
		return ""
	}
	return line[4:]
}

// parseReplyLine splits "250-text" / "250 text" / "250".
func parseReplyLine(s string) (code int, more, ok bool) {
	if len(s) < 3 {
		return 0, false, false
	}
	for i := 0; i < 3; i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false, false
		}
	}
	code = int(s[0]-'0')*100 + int(s[1]-'0')*10 + int(s[2]-'0')
	if code < 200 || code > 599 {
		return 0, false, false
	}
	if len(s) == 3 {
		return code, false, true
	}
	switch s[3] {
	case '-':
		return code, true, true
	case ' ':
		return code, false, true
	}
	return 0, false, false
}
