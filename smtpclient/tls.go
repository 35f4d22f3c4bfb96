package smtpclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/mxflush/mxflush/mta"
)

// ErrPlaintextAfterSTARTTLS: the server sent more after its 220 to
// STARTTLS, before the handshake. RFC 3207 §4.2 has the client discard
// what it learnt before TLS; octets that arrive in that gap are either a
// broken server or someone injecting replies to be read as if they came
// over TLS. They are discarded and no handshake is started.
var ErrPlaintextAfterSTARTTLS = errors.New("the server sent data after its 220 to STARTTLS")

// StartTLS says STARTTLS (RFC 3207) and, on a 220, runs the handshake with
// cfg within CommandTimeout. It returns the reply: anything but 220 leaves
// the session in cleartext and in step. After a 220 the error says
// whether TLS came up: ErrPlaintextAfterSTARTTLS, an *IOError for a failed
// handshake, or nil. With TLS up the extensions are forgotten: the caller
// says EHLO again (RFC 3207 §4.2).
func (c *Client) StartTLS(ctx context.Context, cfg *tls.Config) (mta.Reply, *tls.ConnectionState, error) {
	r, err := c.Cmd("STARTTLS")
	if err != nil || r.Code != 220 {
		return r, nil, err
	}
	if n := c.br.Buffered(); n > 0 {
		// Dropped with the old reader: nothing read before TLS may be
		// taken for a reply under it.
		c.br.Discard(n)
		return r, nil, fmt.Errorf("%w (%d octets discarded)", ErrPlaintextAfterSTARTTLS, n)
	}
	cs, err := c.Handshake(ctx, cfg)
	return r, cs, err
}

// Handshake runs a TLS client handshake on the connection within
// CommandTimeout: after a 220 to STARTTLS, or before the greeting for
// implicit TLS (RFC 8314 §3.3). The extensions are forgotten.
func (c *Client) Handshake(ctx context.Context, cfg *tls.Config) (*tls.ConnectionState, error) {
	tc := tls.Client(c.tcp, cfg)
	if c.o.CommandTimeout > 0 {
		_ = c.tcp.SetDeadline(time.Now().Add(c.o.CommandTimeout))
	}
	err := tc.HandshakeContext(ctx)
	_ = c.tcp.SetDeadline(time.Time{})
	if err != nil {
		return nil, &IOError{Op: "TLS handshake", Err: err}
	}
	c.ext = Extensions{}
	c.setConn(tc)
	cs := tc.ConnectionState()
	return &cs, nil
}
