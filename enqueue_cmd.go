package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"

	"github.com/mxflush/mxflush/addr"
	"github.com/mxflush/mxflush/report"
	"github.com/mxflush/mxflush/spool"
)

// EnqueueCmd is `mxflush enqueue`: one message from stdin into new/.
type EnqueueCmd struct {
	From    *string  `short:"f" help:"Envelope sender; an empty one (-f \"\") or <> is the null sender (default: the message's Sender or From)." placeholder:"SENDER"`
	Headers bool     `short:"t" help:"Take recipients from To, Cc and Bcc (added to any given), and remove Bcc."`
	Rcpts   []string `arg:"" optional:"" name:"rcpt" help:"Envelope recipients."`
}

// Run reads the message, builds and checks the envelope, and enqueues it.
// A bad address exits 65 (EX_DATAERR) and nothing is written.
func (c *EnqueueCmd) Run(g *Globals) error {
	raw, err := io.ReadAll(g.stdin)
	if err != nil {
		return exitf(report.ExIOErr, "reading the message from stdin: %v", err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return exitf(report.ExDataErr, "empty message on stdin")
	}
	var hdr mail.Header
	if msg, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		hdr = msg.Header
	} else if c.Headers || c.From == nil {
		return exitf(report.ExDataErr, "the message's header section cannot be parsed (RFC 5322 §2.2): %v", err)
	}

	env := spool.Envelope{}
	switch {
	case c.From != nil:
		env.From = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(*c.From), "<"), ">")
	default:
		from, err := headerSender(hdr)
		if err != nil {
			return exitf(report.ExDataErr, "%v", err)
		}
		env.From = from
	}
	if env.From != "" {
		if env.From, err = addr.Check(env.From); err != nil {
			return exitf(report.ExDataErr, "sender: %v", err)
		}
	}
	for _, r := range c.Rcpts {
		r = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(r), "<"), ">")
		env.To = append(env.To, r)
	}
	if c.Headers {
		for _, field := range []string{"To", "Cc", "Bcc"} {
			list, err := headerAddrs(hdr, field)
			if err != nil {
				return exitf(report.ExDataErr, "%v", err)
			}
			env.To = append(env.To, list...)
		}
		raw = removeField(raw, "Bcc")
	}
	if len(env.To) == 0 {
		return exitf(report.ExUsage, "no recipients: give them as arguments or use -t")
	}
	for _, r := range env.To {
		if _, err := addr.Check(r); err != nil {
			return exitf(report.ExDataErr, "recipient: %v", err)
		}
	}
	id, err := deposit(g, env, bytes.NewReader(raw))
	if err != nil {
		var ae *addr.Error
		var pe *spool.ParseError
		if errors.As(err, &ae) || errors.As(err, &pe) {
			return exitf(report.ExDataErr, "%v", err)
		}
		return exitf(report.ExCantCreat, "%v", err)
	}
	fmt.Fprintln(g.stdout, id)
	return nil
}

// headerSender derives the envelope sender as sendmail does: Sender, then From.
func headerSender(h mail.Header) (string, error) {
	for _, field := range []string{"Sender", "From"} {
		if h.Get(field) == "" {
			continue
		}
		list, err := headerAddrs(h, field)
		if err != nil {
			return "", err
		}
		if len(list) > 0 {
			return list[0], nil
		}
	}
	return "", errors.New("no sender: give -f SENDER, or a From header field in the message")
}

func headerAddrs(h mail.Header, field string) ([]string, error) {
	if h == nil || h.Get(field) == "" {
		return nil, nil
	}
	list, err := h.AddressList(field)
	if err != nil {
		return nil, fmt.Errorf("%s header field: %v (RFC 5322 §3.4)", field, err)
	}
	out := make([]string, len(list))
	for i, a := range list {
		out[i] = a.Address
	}
	return out, nil
}

// removeField returns raw without every occurrence of the header field name
// and its continuation lines (RFC 5322 §2.2.3); the body is untouched.
func removeField(raw []byte, name string) []byte {
	var out bytes.Buffer
	skipping := false
	rest := raw
	for len(rest) > 0 {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line = rest[:i+1]
		}
		rest = rest[len(line):]
		if len(bytes.TrimRight(line, "\r\n")) == 0 { // end of the header section
			out.Write(line)
			out.Write(rest)
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if !skipping {
				out.Write(line)
			}
			continue
		}
		colon := bytes.IndexByte(line, ':')
		skipping = colon > 0 && strings.EqualFold(strings.TrimSpace(string(line[:colon])), name)
		if !skipping {
			out.Write(line)
		}
	}
	return out.Bytes()
}
