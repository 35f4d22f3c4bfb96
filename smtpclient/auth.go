package smtpclient

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"

	"github.com/emersion/go-sasl"
	"github.com/mxflush/mxflush/mta"
)

// ErrSASL: the mechanism could not answer a challenge (one it did not
// understand, or not base64). The exchange was cancelled with "*" and the
// server's reply to that read (RFC 4954 §4), so the session is in step.
var ErrSASL = errors.New("SASL exchange cancelled")

// Auth runs AUTH (RFC 4954) with the mechanism m: "AUTH mech
// initial-response" ("=" for an empty one, RFC 4954 §4), then for each 334
// challenge the mechanism's answer, until a reply that is not 334. It
// returns that reply: 235 is success, anything else a refusal for the
// caller to judge. The error is an *IOError, a malformed reply, or
// ErrSASL with the reply to the "*" that cancelled the exchange.
//
// The trace shows the mechanism and the outcome only: base64 is not
// secret.
func (c *Client) Auth(m sasl.Client) (mta.Reply, error) {
	mech, ir, err := m.Start()
	if err != nil {
		return mta.Reply{}, fmt.Errorf("%w: %v", ErrSASL, err)
	}
	c.w.hide = true
	r, err := c.auth(m, mech, ir)
	c.w.hide = false
	if c.o.Trace != nil {
		outcome := "failed"
		switch {
		case err == nil:
			outcome = "reply " + r.String()
		case errors.Is(err, ErrSASL):
			outcome = "cancelled, reply " + r.String()
		}
		io.WriteString(c.o.Trace, "AUTH "+mech+" (credentials not traced): "+outcome+"\r\n")
	}
	return r, err
}

func (c *Client) auth(m sasl.Client, mech string, ir []byte) (mta.Reply, error) {
	trace := c.o.Trace
	c.o.Trace = nil // replies to AUTH may echo what was sent (LOGIN's prompts do not, but servers vary)
	defer func() { c.o.Trace = trace }()
	line := "AUTH " + mech
	if ir != nil {
		line += " " + encode(ir)
	}
	r, err := c.Cmd(line)
	for err == nil && r.Code == 334 {
		var challenge, resp []byte
		challenge, err = base64.StdEncoding.DecodeString(r.Lines[len(r.Lines)-1])
		if err == nil {
			resp, err = m.Next(challenge)
		}
		if err != nil {
			cause := err
			r, err = c.Cmd("*")
			if err != nil {
				return r, err
			}
			return r, fmt.Errorf("%w: %v", ErrSASL, cause)
		}
		r, err = c.Cmd(base64.StdEncoding.EncodeToString(resp))
	}
	return r, err
}

// encode is an initial response as RFC 4954 §4 writes it: "=" when empty.
func encode(ir []byte) string {
	if len(ir) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(ir)
}
