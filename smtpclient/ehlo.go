package smtpclient

import (
	"strconv"
	"strings"

	"github.com/mxflush/mxflush/mta"
)

// Extensions are the service extensions a server listed in its reply to
// EHLO (RFC 5321 §4.1.1.1): one keyword per line after the first, with
// parameters after it. The zero value lists none (no EHLO yet, a refused
// one, or HELO).
type Extensions struct {
	params    map[string]string // upper-case keyword -> its parameters, those of repeated lines joined by a space
	sizeLimit int64
}

// parseExtensions reads the lines of a 250 reply to EHLO. Keywords are
// case-insensitive (RFC 5321 §2.4). SIZE may be listed more than once
// (a server behind a proxy, say): the smallest positive limit counts
// (RFC 1870 §4), "SIZE" alone or "SIZE 0" means no limit.
func parseExtensions(lines []string) Extensions {
	e := Extensions{params: make(map[string]string, len(lines))}
	for _, l := range lines[min(1, len(lines)):] {
		kw, params, _ := strings.Cut(strings.TrimSpace(l), " ")
		if kw == "" {
			continue
		}
		kw, params = strings.ToUpper(kw), strings.TrimSpace(params)
		if kw == "SIZE" {
			f, _, _ := strings.Cut(params, " ")
			if n, err := strconv.ParseInt(f, 10, 64); err == nil && n > 0 && (e.sizeLimit == 0 || n < e.sizeLimit) {
				e.sizeLimit = n
			}
		}
		if old, ok := e.params[kw]; ok && old != "" {
			params = strings.TrimSpace(old + " " + params)
		}
		e.params[kw] = params
	}
	return e
}

// Has reports whether the keyword (any case) was listed.
func (e Extensions) Has(keyword string) bool {
	_, ok := e.params[strings.ToUpper(keyword)]
	return ok
}

// Params is what followed the keyword, "" when nothing did or it was not
// listed: "PLAIN LOGIN" for AUTH.
func (e Extensions) Params(keyword string) string { return e.params[strings.ToUpper(keyword)] }

// SizeLimit is the smallest positive SIZE limit listed, in octets; 0 when
// SIZE was not listed or names no limit (RFC 1870 §4).
func (e Extensions) SizeLimit() int64 { return e.sizeLimit }

// Extensions are those of the last successful EHLO; none after HELO,
// after a refused EHLO, and after STARTTLS until EHLO is said again
// (RFC 3207 §4.2).
func (c *Client) Extensions() Extensions { return c.ext }

// Ehlo says EHLO name and returns the reply. A 2yz reply sets Extensions;
// any other leaves none, and the caller decides on HELO (RFC 5321
// §4.1.4 after a 500 or 502).
func (c *Client) Ehlo(name string) (mta.Reply, error) {
	c.ext = Extensions{}
	r, err := c.Cmd("EHLO " + name)
	if err == nil && r.Class() == 2 {
		c.ext = parseExtensions(r.Lines)
	}
	return r, err
}

// Helo says HELO name (RFC 5321 §4.1.1.1) and returns the reply. A
// session after HELO has no extensions.
func (c *Client) Helo(name string) (mta.Reply, error) {
	c.ext = Extensions{}
	return c.Cmd("HELO " + name)
}
