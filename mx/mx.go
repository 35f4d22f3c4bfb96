// Package mx turns a recipient domain into an ordered delivery route using DNS
// (RFC 5321 §5.1, RFC 7505).
//
// Every query goes to one configured server (Resolver.Server), never the
// machine's resolver. Lookup reads DNS answers itself: NXDOMAIN, a null MX
// and a domain with neither MX nor address records are permanent failures;
// SERVFAIL, REFUSED, timeouts and MX hosts without addresses are temporary.
// The result is a Route or an *mta.Error that says which, with the reply code
// and enhanced status code to put in a DSN.
package mx

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/idna"

	"github.com/mxflush/mxflush/addr"
	"github.com/mxflush/mxflush/mta"
)

// Resolver looks up delivery routes. The zero value is not usable: Server is
// required. A Resolver is safe for concurrent use.
type Resolver struct {
	Server   string        // "host:port" of the DNS server every query goes to (required)
	Timeout  time.Duration // per query (each UDP or TCP exchange); 0 means 5s
	MaxHosts int           // MX hosts kept after sorting; 0 means 10

	udp udpPool // sockets of finished UDP queries, reused by the next ones
}

// Close closes the sockets the Resolver keeps for its next queries. It
// may be used again afterwards (it opens new ones).
func (r *Resolver) Close() { r.udp.close() }

// Route is where mail for a domain goes.
type Route struct {
	Domain   string     // as asked (A-label, lower case, no trailing dot), or the literal as given
	Hosts    []mta.Host // preference order ascending, equal preferences shuffled; hosts without any address dropped
	Implicit bool       // no MX records: the domain's own A/AAAA (RFC 5321 §5.1)
	Literal  bool       // domain was an address literal "[127.0.0.1]": no DNS at all (RFC 5321 §4.1.3)
}

// permanent and temporary build the *mta.Error of a failed lookup:
// permanent ones fail the recipients with a DSN, temporary ones defer them.
// Code is the reply code a DSN's diagnostic shows (556 null MX, RFC 7505
// §4.2; 550 other permanent; 451 temporary) and Status the enhanced status
// (RFC 3463): 5.1.10 null MX, 5.1.2 no such domain, 5.1.3 malformed
// literal or name, 4.4.3 DNS failure, 4.4.4 no address for any host, 4.3.5
// no server configured. The DNS failure itself is kept in the text (it
// says which query to which server failed how) and as the cause.
func permanent(domain string, code int, status, msg string, err error) *mta.Error {
	return &mta.Error{Permanent: true, Code: code, Status: status, Command: mta.CmdDNS, Target: domain, Msg: withCause(domain, msg, err), Err: err}
}

func temporary(domain, status, msg string, err error) *mta.Error {
	return &mta.Error{Code: 451, Status: status, Command: mta.CmdDNS, Target: domain, Msg: withCause(domain, msg, err), Err: err}
}

// withCause adds the failure's own words, except an NXDOMAIN of the name
// itself, which would only repeat the message ("domain does not exist");
// one at the end of a CNAME chain names that end.
func withCause(name, msg string, err error) string {
	var nx *nxDomainError
	if err == nil || (errors.As(err, &nx) && strings.EqualFold(strings.TrimSuffix(nx.name, "."), name)) {
		return msg
	}
	return msg + ": " + mta.OneLine(err.Error())
}

// Lookup returns the route for domain: an A-label domain name (a U-label is
// converted with IDNA's lookup profile, RFC 5891 §5) or an address literal
// "[192.0.2.1]" / "[IPv6:2001:db8::1]". Steps (RFC 5321 §5.1):
//
//   - a literal is the route itself, with no DNS query (RFC 5321 §4.1.3);
//   - MX query, CNAMEs followed (RFC 5321 §5.1: an alias domain is treated
//     as its canonical name); NXDOMAIN is permanent 5.1.2;
//   - a null MX, the single target "." (RFC 7505 §3), is permanent 5.1.10
//     with code 556 (RFC 7505 §4.2) and no address lookup; "." among real
//     MX records is ignored;
//   - no MX records: implicit MX, the domain's own A and AAAA at preference
//     0; none of those either is permanent 5.1.2;
//   - hosts sorted by preference, equal preferences shuffled, duplicates
//     removed, capped at MaxHosts; then A and AAAA for each host, CNAMEs
//     followed (an MX target that is an alias breaks RFC 2181 §10.3 but is
//     common); hosts without addresses are dropped, and none left is
//     temporary 4.4.4;
//   - every host is marked Insecure unless the server authenticated the
//     answers that named it (the AD bit, RFC 4035 §3.2.3): the MX answer
//     with any CNAME leading to it (RFC 7672 §2.2.1); for an implicit MX,
//     the MX answer that denied MX records and the domain's own address
//     answers (RFC 7672 §2.2.2). An MX host's own address answers do not
//     count: its TLSA records sit below its name, in the same zone or a
//     child, so they are authenticated only when that zone is signed.
//
// Any other DNS failure (SERVFAIL, REFUSED, timeout, network error, ctx
// done) is temporary 4.4.3. The error is always an *mta.Error.
func (r *Resolver) Lookup(ctx context.Context, domain string) (Route, error) {
	if strings.HasPrefix(domain, "[") {
		ip, err := addr.Literal(domain)
		if err != nil {
			return Route{}, permanent(domain, 550, "5.1.3", "malformed address literal", err)
		}
		return Route{Domain: domain, Literal: true, Hosts: []mta.Host{{Name: domain, Addrs: []netip.Addr{ip}}}}, nil
	}
	name, err := idna.Lookup.ToASCII(strings.TrimSuffix(domain, "."))
	if err != nil || name == "" || len(name) > 253 {
		return Route{}, permanent(domain, 550, "5.1.3", "domain is not a valid host name (RFC 5321 §4.1.2, RFC 5891)", err)
	}
	name = strings.ToLower(name)
	if r.Server == "" {
		return Route{}, temporary(name, "4.3.5", "no DNS server configured", nil)
	}

	mxs, ad, err := r.resolve(ctx, name, dns.TypeMX)
	switch {
	case isNXDomain(err):
		return Route{}, permanent(name, 550, "5.1.2", "domain does not exist (NXDOMAIN)", err)
	case err != nil:
		return Route{}, temporary(name, "4.4.3", "MX lookup failed", err)
	case len(mxs) == 0:
		return r.implicit(ctx, name, ad)
	}

	hosts := r.sortMX(mxs)
	if len(hosts) == 0 {
		// Only "." targets: a null MX (RFC 7505 §3). No address lookup of
		// the domain or of "." (RFC 7505 §4.1, §4.2).
		return Route{}, permanent(name, 556, "5.1.10", "domain has a null MX (RFC 7505): it accepts no mail", nil)
	}
	for i := range hosts {
		hosts[i].Insecure = !ad
	}
	return r.addresses(ctx, name, hosts)
}

// sortMX turns MX records into hosts: "." targets dropped (RFC 7505 §3 says
// a null MX is the only record; a real MX beside it wins), shuffled, then
// stably sorted by preference so equal preferences stay in random order
// (RFC 5321 §5.1), deduplicated by name keeping the lowest preference, and
// capped at MaxHosts.
func (r *Resolver) sortMX(rrs []dns.RR) []mta.Host {
	var hosts []mta.Host
	for _, rr := range rrs {
		m, ok := rr.(*dns.MX)
		if !ok || m.Mx == "." {
			continue
		}
		hosts = append(hosts, mta.Host{Name: strings.ToLower(strings.TrimSuffix(m.Mx, ".")), Pref: m.Preference})
	}
	rand.Shuffle(len(hosts), func(i, j int) { hosts[i], hosts[j] = hosts[j], hosts[i] })
	slices.SortStableFunc(hosts, func(a, b mta.Host) int { return int(a.Pref) - int(b.Pref) })
	seen := make(map[string]bool, len(hosts))
	hosts = slices.DeleteFunc(hosts, func(h mta.Host) bool {
		dup := seen[h.Name]
		seen[h.Name] = true
		return dup
	})
	limit := r.MaxHosts
	if limit <= 0 {
		limit = 10
	}
	if len(hosts) > limit {
		hosts = hosts[:limit]
	}
	return hosts
}

// implicit builds the route of a domain without MX records: the domain's own
// addresses at preference 0 (RFC 5321 §5.1). mxAD is the AD bit of the MX
// answer that had no records: the host is Insecure unless both that
// denial and the address answers were authenticated.
func (r *Resolver) implicit(ctx context.Context, name string, mxAD bool) (Route, error) {
	addrs, ad, err := r.hostAddrs(ctx, name)
	if len(addrs) > 0 {
		return Route{Domain: name, Implicit: true, Hosts: []mta.Host{{Name: name, Addrs: addrs, Insecure: !mxAD || !ad}}}, nil
	}
	if err != nil && !isNXDomain(err) {
		return Route{}, temporary(name, "4.4.3", "no MX records and the A/AAAA lookup failed", err)
	}
	return Route{}, permanent(name, 550, "5.1.2", "domain has no MX, A or AAAA records (RFC 5321 §5.1)", err)
}

// addresses resolves every host concurrently and keeps those with at least
// one address, in order.
func (r *Resolver) addresses(ctx context.Context, name string, hosts []mta.Host) (Route, error) {
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i := range hosts {
		wg.Go(func() { hosts[i].Addrs, _, errs[i] = r.hostAddrs(ctx, hosts[i].Name) })
	}
	wg.Wait()
	var kept []mta.Host
	var why []string
	var causes []error
	for i, h := range hosts {
		switch {
		case len(h.Addrs) > 0:
			kept = append(kept, h)
		case errs[i] != nil:
			why = append(why, fmt.Sprintf("%s (%v)", h.Name, errs[i]))
			causes = append(causes, errs[i])
		default:
			why = append(why, h.Name+" (no A or AAAA records)")
		}
	}
	if len(kept) == 0 {
		return Route{}, temporary(name, "4.4.4", "no address for any MX host: "+strings.Join(why, ", "), errors.Join(causes...))
	}
	return Route{Domain: name, Hosts: kept}, nil
}

// hostAddrs returns the A then AAAA addresses of host (CNAMEs followed). The
// error is the first failure; addresses found despite it are returned too.
// An NXDOMAIN on A skips the AAAA query: the name does not exist. ad says
// that every answer that came back (a failed query gives nothing) had the
// AD bit.
func (r *Resolver) hostAddrs(ctx context.Context, host string) ([]netip.Addr, bool, error) {
	var addrs []netip.Addr
	var firstErr error
	ad := true
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		rrs, rrsAD, err := r.resolve(ctx, host, qtype)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			if isNXDomain(err) {
				break
			}
			continue
		}
		ad = ad && rrsAD
		for _, rr := range rrs {
			var ip netip.Addr
			switch v := rr.(type) {
			case *dns.A:
				ip, _ = netip.AddrFromSlice(v.A.To4())
			case *dns.AAAA:
				ip, _ = netip.AddrFromSlice(v.AAAA.To16())
			}
			if !ip.IsValid() || ip.IsUnspecified() || ip.IsMulticast() || slices.Contains(addrs, ip) {
				continue
			}
			addrs = append(addrs, ip)
		}
	}
	return addrs, ad, firstErr
}
