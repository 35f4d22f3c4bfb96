package smtpclient

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/mxflush/mxflush/mta"
)

// Limits on one reply, in every phase (greeting, EHLO, HELO, STARTTLS,
// AUTH, MAIL, RCPT, DATA, the final dot, RSET, QUIT). RFC 5321 §4.5.3.1.5
// makes a reply line at most 512 octets and names no limit on the number
// of lines; real EHLO replies have about 20. A server that sends more is
// broken or hostile, and without these a stream of "250-" lines would be
// read until memory runs out. Time is bounded by the deadline every
// ReadReply sets (RFC 5321 §4.5.3.2).
const (
	MaxReplyLine   = 2000     // octets in one line without its line end: twice RFC 5321 §4.5.3.1.5
	MaxReplyLines  = 100      // lines in one reply
	MaxReplyOctets = 64 << 10 // octets in one reply, each line end counted as CRLF
)

var (
	// ErrMalformedReply: a line that is not a reply line by RFC 5321
	// §4.2's grammar, or one longer than MaxReplyLine. The session is out
	// of step: the caller should drop it.
	ErrMalformedReply = errors.New("malformed reply")
	// ErrReplyTooLong: a reply of more than MaxReplyLines lines or
	// MaxReplyOctets octets. It is an ErrMalformedReply too.
	ErrReplyTooLong = fmt.Errorf("%w: longer than %d lines or %d octets", ErrMalformedReply, MaxReplyLines, MaxReplyOctets)
)

// readReply reads one complete reply (RFC 5321 §4.2.1): lines "ddd-text"
// until a line "ddd text" or "ddd". Its code is the code of the LAST line
// (servers that change codes between lines exist, and §4.2.1 has the
// client act on the final one). Bare LF line ends are accepted. raw gets
// each line as received, without its line end (for the trace).
func readReply(br *bufio.Reader, raw func(line []byte)) (mta.Reply, error) {
	var r mta.Reply
	octets := 0
	for n := 0; n < MaxReplyLines; n++ {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) || len(line) > MaxReplyLine+2 {
			return mta.Reply{}, fmt.Errorf("%w: line longer than %d octets", ErrMalformedReply, MaxReplyLine)
		}
		if err != nil {
			if err == io.EOF && len(line) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return mta.Reply{}, err
		}
		line = line[:len(line)-1]
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		if len(line) > MaxReplyLine {
			return mta.Reply{}, fmt.Errorf("%w: line longer than %d octets", ErrMalformedReply, MaxReplyLine)
		}
		if octets += len(line) + 2; octets > MaxReplyOctets {
			return mta.Reply{}, ErrReplyTooLong
		}
		if raw != nil {
			raw(line)
		}
		code, last, text, ok := mta.ParseLine(string(line))
		if !ok {
			return mta.Reply{}, fmt.Errorf("%w: %q", ErrMalformedReply, mta.OneLine(string(line)))
		}
		r.Code = code
		r.Lines = append(r.Lines, text)
		if last {
			splitStatus(&r)
			return r, nil
		}
	}
	return mta.Reply{}, ErrReplyTooLong
}

// splitStatus finds the reply's enhanced status code (RFC 2034 §4): the
// first one a line starts with whose class is the code's (mta.SplitStatus:
// a 5yz reply's "4.2.1" is text, not its status), and takes it off every
// line that starts with it, as RFC 2034 §4 has each line of a reply carry
// it. A line with another code keeps it as text ("550-5.1.1 first",
// "550 5.7.1 second": status 5.1.1, texts "first" and "5.7.1 second").
func splitStatus(r *mta.Reply) {
	for _, l := range r.Lines {
		if s, _ := mta.SplitStatus(r.Code, l); s != "" {
			r.Status = s
			break
		}
	}
	if r.Status == "" {
		return
	}
	for i, l := range r.Lines {
		if s, rest := mta.SplitStatus(r.Code, l); s == r.Status {
			r.Lines[i] = rest
		}
	}
}
