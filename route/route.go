// Package route maps recipient domains to next hops: MX lookup, a static
// host list, TLS policy and auth per hop.
//
// A Table answers three questions for batch: which next hop a domain goes
// to (Hop: domains with the same hop share a batch, and so its connection
// limit and sessions), where that hop's hosts are (Lookup), and how to
// talk to them (Options: TLS policy, implicit TLS, credentials). The first
// matching rule of a routes file wins (the exact domain, then the nearest
// parent-domain pattern, then "*"); then the smart host; then the
// domain's own MX, as without a Table.
package route

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/mxflush/mxflush/deliver"
	"github.com/mxflush/mxflush/mta"
	"github.com/mxflush/mxflush/mx"
)

// Target is one destination of a next hop.
type Target struct {
	Host   string // lower-case A-label host name, or an IP address; no brackets
	Port   int    // 0: Config.Port
	Static bool   // "[host]" or an IP address: its own addresses, no MX lookup
}

// Hop is a next hop: where mail goes and how.
type Hop struct {
	Targets  []Target        // tried in order; none: the recipient domain's own MX
	Implicit bool            // "smtps:": TLS from the first octet (RFC 8314 §3.3)
	TLS      deliver.TLSMode // the policy, when TLSSet
	TLSSet   bool            // "tls=" was given; else Config.TLS.Mode applies
	Bind     netip.Addr      // "bind=": source address of the hop's connections; invalid: deliver.Options.Bind
	Conns    int             // "conns=": sessions at once at most, below --conns-per-site; 0: no cap of its own
	Source   string          // where it was configured: "--smarthost", "routes.txt:3"

	key       string // batch key; "" for the domain's own MX
	mode      deliver.TLSMode
	implicit  bool
	smarthost bool
}

// Config is what a Table is built from.
type Config struct {
	Rules     []Rule       // from ParseRoutes
	Smarthost *Hop         // from ParseSmarthost; nil: MX delivery
	Resolver  *mx.Resolver // DNS for MX, relay addresses and TLSA
	Port      int          // port of targets without one (--port)
	// TLS is the default policy: Mode (--tls), Implicit (--tls-implicit)
	// and Roots (--tls-ca). New fills LookupTLSA from Resolver.
	TLS deliver.TLSPolicy
	// TrustAD says the user named the DNS server (--dns): only then may
	// the dane policy rely on its AD bit, on the TLSA answers and on the
	// MX answers that name the hosts (mta.Host.Insecure). A resolver taken from
	// /etc/resolv.conf may be across a network where anyone can set the
	// bit, since nothing authenticates the answer on its way to us.
	TrustAD           bool
	Creds             *Credentials // nil: no AUTH
	AllowInsecureAuth bool         // send credentials without TLS (--allow-insecure-auth)
}

// Table is an immutable routing table; safe for concurrent use.
type Table struct {
	c     Config
	exact map[string]*Hop
	sub   map[string]*Hop // ".example.com"
	star  *Hop
	smart *Hop
	hops  map[string]*Hop // by key, hops with targets
}

// New checks the configuration and builds the table. Errors: a dane policy
// without TrustAD; implicit TLS with policy none; credentials for a relay
// whose policy is none, without AllowInsecureAuth.
func New(c Config) (*Table, error) {
	if c.Resolver == nil {
		return nil, errors.New("route: no resolver")
	}
	c.TLS.LookupTLSA = c.lookupTLSA
	t := &Table{c: c, exact: map[string]*Hop{}, sub: map[string]*Hop{}, hops: map[string]*Hop{}}
	if err := t.settle(nil, "--tls"); err != nil {
		return nil, err
	}
	for i := range c.Rules {
		h := &c.Rules[i].Hop
		if err := t.settle(h, h.Source); err != nil {
			return nil, err
		}
		switch p := c.Rules[i].Pattern; {
		case p == "*":
			t.star = h
		case strings.HasPrefix(p, "."):
			t.sub[p] = h
		default:
			t.exact[p] = h
		}
	}
	if c.Smarthost != nil {
		h := *c.Smarthost
		h.smarthost = true
		if err := t.settle(&h, h.Source); err != nil {
			return nil, err
		}
		t.smart = &h
	}
	return t, nil
}

// settle works out a hop's effective policy and key, and checks it; nil
// checks the defaults alone.
func (t *Table) settle(h *Hop, where string) error {
	mode, implicit := t.c.TLS.Mode, t.c.TLS.Implicit
	if h != nil {
		if h.TLSSet {
			mode = h.TLS
		}
		implicit = implicit || h.Implicit
		h.mode, h.implicit = mode, implicit
	}
	if mode == deliver.TLSDANE && !t.c.TrustAD {
		return fmt.Errorf("%s: TLS policy dane needs --dns naming a validating resolver you trust (best on this host): "+
			"DANE rests on the resolver's AD bit, which anyone between us and the resolver can set", where)
	}
	if implicit && mode == deliver.TLSNone {
		return fmt.Errorf("%s: implicit TLS (smtps:, --tls-implicit) with TLS policy none", where)
	}
	if h == nil || len(h.Targets) == 0 {
		return nil
	}
	for _, tg := range h.Targets {
		port := tg.Port
		if port == 0 {
			port = t.c.Port
		}
		if mode == deliver.TLSNone && !t.c.AllowInsecureAuth && t.c.Creds.lookup(tg.Host, port, h.smarthost) != nil {
			return fmt.Errorf("%s: credentials for %s would go without TLS (TLS policy none); use another policy, or --allow-insecure-auth", where, tg.Host)
		}
	}
	h.key = h.describe(t.c.TLS.Mode)
	if prev := t.hops[h.key]; prev != nil {
		// The same relay twice (a rule and the smart host): one hop.
		prev.smarthost = prev.smarthost || h.smarthost
		return nil
	}
	t.hops[h.key] = h
	return nil
}

// describe is the hop's key and summary name: "smtp:[relay.test]:587",
// with " tls=MODE" when the policy is not the default.
func (h *Hop) describe(def deliver.TLSMode) string {
	var b strings.Builder
	if h.implicit {
		b.WriteString("smtps:")
	} else {
		b.WriteString("smtp:")
	}
	for i, tg := range h.Targets {
		if i > 0 {
			b.WriteByte(',')
		}
		if tg.Static {
			b.WriteString("[" + tg.Host + "]")
		} else {
			b.WriteString(tg.Host)
		}
		if tg.Port != 0 {
			b.WriteString(":" + strconv.Itoa(tg.Port))
		}
	}
	if h.mode != def {
		b.WriteString(" tls=" + h.mode.String())
	}
	return b.String()
}

// match returns the hop of a domain (lower-case A-label, or an address
// literal, which only "*" and the smart host match); nil: its own MX
// with the defaults.
func (t *Table) match(domain string) *Hop {
	d := strings.ToLower(strings.TrimSuffix(domain, "."))
	if !strings.HasPrefix(d, "[") {
		if h := t.exact[d]; h != nil {
			return h
		}
		for rest := d; ; {
			i := strings.IndexByte(rest, '.')
			if i < 0 {
				break
			}
			rest = rest[i+1:]
			if h := t.sub["."+rest]; h != nil {
				return h
			}
		}
	}
	if t.star != nil {
		return t.star
	}
	return t.smart
}

// Hop returns the batch key of domain's next hop: the hop's description
// for a relay, or the domain itself for its own MX.
func (t *Table) Hop(domain string) string {
	if h := t.match(domain); h != nil && h.key != "" {
		return h.key
	}
	return domain
}

// Conns returns the session cap of the rule a key from Hop falls under
// (conns=N), or 0 when it has none.
func (t *Table) Conns(key string) int {
	h := t.hops[key]
	if h == nil {
		h = t.match(key)
	}
	if h == nil {
		return 0
	}
	return h.Conns
}

// Close closes the sockets the resolver keeps for its next queries (see
// mx.Resolver.Close); the Table may be used again afterwards.
func (t *Table) Close() { t.c.Resolver.Close() }

// Relay reports whether key, from Hop, names a relay (a route with
// targets, or the smart host) rather than a domain sent to its own MX.
func (t *Table) Relay(key string) bool { return t.hops[key] != nil }

// Lookup resolves a key from Hop: a relay's targets in order (static ones
// by their addresses, the others by MX), or a domain's own MX. A relay
// that cannot be resolved at all is a temporary *mta.Error, never a
// permanent one: the mail is not at fault.
func (t *Table) Lookup(ctx context.Context, key string) (mx.Route, error) {
	h := t.hops[key]
	if h == nil {
		return t.c.Resolver.Lookup(ctx, key)
	}
	route := mx.Route{Domain: key}
	var errs []error
	for _, tg := range h.Targets {
		var hosts []mta.Host
		if tg.Static {
			host, err := t.c.Resolver.Host(ctx, tg.Host)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			hosts = []mta.Host{host}
		} else {
			r, err := t.c.Resolver.Lookup(ctx, tg.Host)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			hosts = r.Hosts
		}
		for _, host := range hosts {
			host.Port = tg.Port
			route.Hosts = append(route.Hosts, host)
		}
	}
	if len(route.Hosts) > 0 {
		return route, nil
	}
	cause := errors.Join(errs...)
	e := &mta.Error{Code: 451, Status: "4.4.4", Command: mta.CmdDNS, Target: key,
		Msg: "no relay of " + h.Source + " could be resolved: " + mta.OneLine(cause.Error()), Err: cause}
	return mx.Route{}, e
}

// Options returns base with the TLS policy and credentials of a key from
// Hop. Credentials are only for relays (hops with targets), never for a
// domain's own MX hosts.
func (t *Table) Options(key string, base deliver.Options) deliver.Options {
	h := t.hops[key]
	if h == nil {
		h = t.match(key)
	}
	base.TLS = t.c.TLS
	if h == nil {
		return base
	}
	base.TLS.Mode, base.TLS.Implicit = h.mode, h.implicit
	if h.Bind.IsValid() {
		base.Bind = h.Bind
	}
	if len(h.Targets) == 0 || t.c.Creds.Empty() {
		return base
	}
	smarthost, insecure, creds := h.smarthost, t.c.AllowInsecureAuth, t.c.Creds
	base.Auth = func(host string, port int) *deliver.Auth {
		a := creds.lookup(host, port, smarthost)
		if a != nil {
			a.AllowInsecure = insecure
		}
		return a
	}
	return base
}

// lookupTLSA adapts mx's TLSA records to deliver's.
func (c Config) lookupTLSA(ctx context.Context, host string, port int) ([]deliver.TLSA, bool, error) {
	rrs, secure, err := c.Resolver.TLSA(ctx, host, port)
	if err != nil {
		return nil, false, err
	}
	out := make([]deliver.TLSA, len(rrs))
	for i, r := range rrs {
		out[i] = deliver.TLSA{Usage: r.Usage, Selector: r.Selector, MatchingType: r.MatchingType, Data: r.Data, Base: r.Base}
	}
	return out, secure, nil
}
