package smtpclient

import "bytes"

// DataWriter writes the message content after a 354: text whose lines all
// end in CRLF (a Normalizer's output), dot-stuffed as it goes (RFC 5321
// §4.5.2: a line that starts with "." gets one more). Each write to the
// connection gets DataTimeout (RFC 5321 §4.5.3.2.5).
type DataWriter struct {
	c   *Client
	bol bool // the next octet starts a line
}

// Data returns the writer for one message's content. There is one per
// Client: each call starts it over.
func (c *Client) Data() *DataWriter {
	c.w.timeout = c.o.DataTimeout
	c.dw = DataWriter{c: c, bol: true}
	return &c.dw
}

// Write buffers p, dot-stuffed; the error is the first failed write to the
// connection (an *IOError), after which the session is lost.
func (d *DataWriter) Write(p []byte) (int, error) {
	n := len(p)
	bw := d.c.bw
	for len(p) > 0 {
		if d.bol && p[0] == '.' {
			bw.WriteByte('.')
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			bw.Write(p)
			d.bol = false
			break
		}
		bw.Write(p[:i+1])
		d.bol, p = true, p[i+1:]
	}
	if _, err := bw.Write(nil); err != nil { // the first error of any write above, which bufio keeps
		return 0, &IOError{Op: "write", Err: err}
	}
	return n, nil
}

// End buffers the end of data: CRLF if the text did not end a line, then
// ".CRLF" (RFC 5321 §4.1.1.4). It returns the count of octets written once
// the final dot is out, to compare with Written after a failed Flush.
// Commands may be queued behind it (RFC 2920 §3.1); Flush writes them all
// within DataTimeout per write.
func (d *DataWriter) End() (dotEnd int64) {
	if !d.bol {
		d.c.bw.WriteString("\r\n")
	}
	d.c.bw.WriteString(".\r\n")
	return d.c.Written() + int64(d.c.Buffered())
}

// Flush writes what is buffered: the rest of the content, the final dot
// and any commands queued behind it, each write within DataTimeout.
func (d *DataWriter) Flush() error {
	d.c.w.timeout = d.c.o.DataTimeout
	return d.c.flush()
}
