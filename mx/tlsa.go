package mx

import (
	"context"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/miekg/dns"
	"golang.org/x/net/idna"
)

// TLSA is one TLSA record (RFC 6698 §2.1).
type TLSA struct {
	Usage        uint8  // 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE
	Selector     uint8  // 0 whole certificate, 1 SubjectPublicKeyInfo
	MatchingType uint8  // 0 exact, 1 SHA-256, 2 SHA-512
	Data         []byte // certificate association data, decoded from hex
	// Base is the TLSA base domain the record was found under (A-label
	// form, lower case, no trailing dot): the host name, or the name its
	// CNAME chain led to. Under DANE-TA a certificate may name it instead of
	// the host (RFC 7672 §3.2.2).
	Base string
}

// TLSA returns the TLSA records of _PORT._tcp.HOST (RFC 6698 §3, RFC 7672
// §2.2) and whether the server said it authenticated the answer: the AD
// bit (RFC 4035 §3.2.3), asked for with AD and DO set in the query (RFC
// 6840 §5.7). CNAMEs in the answer are followed. No such name or no
// records is (nil, AD, nil): an authenticated denial says "no DANE here".
//
// When HOST is itself an alias (an MX host name that is a CNAME) and its
// expansion is secure (the AD bit on the address answer that holds the
// chain), the TLSA records of the expanded name come first: RFC 7672
// §2.2.2 makes it the TLSA base domain, so that a provider's MX host
// carries one TLSA RRset for every domain that points at it. When the
// expanded name has no authenticated records, the original name's are
// used. An insecure expansion counts for nothing: only the original name
// is asked.
//
// The AD bit is only as trustworthy as the path to Resolver.Server and the
// server itself: anyone on that path can set it. It means something only
// for a validating resolver the user named, on this host or over a trusted
// link; the caller decides whether that is the case.
//
// Errors are temporary *mta.Error (4.7.5): SERVFAIL (which a validating
// resolver also answers for a bogus signature), timeouts, a malformed
// record. RFC 7672 §2.2 then treats the host as unusable.
func (r *Resolver) TLSA(ctx context.Context, host string, port int) ([]TLSA, bool, error) {
	name, err := idna.Lookup.ToASCII(strings.TrimSuffix(host, "."))
	if err != nil || name == "" {
		return nil, false, temporary(host, "4.7.5", "TLSA lookup: host is not a valid name", err)
	}
	name = strings.ToLower(name)
	if r.Server == "" {
		return nil, false, temporary(name, "4.3.5", "no DNS server configured", nil)
	}
	expanded, err := r.secureExpansion(ctx, name)
	if err != nil {
		return nil, false, err
	}
	if expanded != "" {
		rrs, secure, err := r.tlsaAt(ctx, expanded, port)
		if err != nil || (secure && len(rrs) > 0) {
			return rrs, secure, err
		}
	}
	return r.tlsaAt(ctx, name, port)
}

// secureExpansion returns the name that host, an alias, leads to through
// a CNAME chain the resolver authenticated, or "" when host is not an alias
// or the answer was not authenticated (RFC 7672 §2.2.2). It asks for the
// address records (type A), whose answer holds the whole chain, with AD and
// DO set as for TLSA; an AAAA-only host answers NODATA with the chain.
func (r *Resolver) secureExpansion(ctx context.Context, host string) (string, error) {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(host), dns.TypeA)
	q.AuthenticatedData = true
	q.SetEdns0(ednsSize, true)
	in, err := r.exchangeMsg(ctx, q)
	if err != nil {
		return "", temporary(host, "4.7.5", "TLSA lookup: CNAME expansion failed", err)
	}
	switch in.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
	default:
		return "", temporary(host, "4.7.5", "TLSA lookup: CNAME expansion failed",
			&rcodeError{name: dns.Fqdn(host), qtype: dns.TypeA, rcode: in.Rcode})
	}
	if !in.AuthenticatedData {
		return "", nil
	}
	owner := dns.Fqdn(host)
	for range maxCNAME + 1 {
		next := ""
		for _, rr := range in.Answer {
			if c, ok := rr.(*dns.CNAME); ok && strings.EqualFold(c.Hdr.Name, owner) {
				next = c.Target
			}
		}
		if next == "" {
			if strings.EqualFold(owner, dns.Fqdn(host)) {
				return "", nil
			}
			return strings.ToLower(strings.TrimSuffix(owner, ".")), nil
		}
		owner = next
	}
	return "", temporary(host, "4.7.5", fmt.Sprintf("TLSA lookup: CNAME chain longer than %d hops", maxCNAME), nil)
}

// tlsaAt looks up the TLSA records of _PORT._tcp.NAME, name being an
// A-label name in lower case (see TLSA).
func (r *Resolver) tlsaAt(ctx context.Context, name string, port int) ([]TLSA, bool, error) {
	qname := "_" + strconv.Itoa(port) + "._tcp." + name
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(qname), dns.TypeTLSA)
	q.AuthenticatedData = true
	q.SetEdns0(ednsSize, true)
	in, err := r.exchangeMsg(ctx, q)
	if err != nil {
		return nil, false, temporary(qname, "4.7.5", "TLSA lookup failed", err)
	}
	switch in.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return nil, in.AuthenticatedData, nil
	default:
		return nil, false, temporary(qname, "4.7.5", "TLSA lookup failed",
			&rcodeError{name: dns.Fqdn(qname), qtype: dns.TypeTLSA, rcode: in.Rcode})
	}
	var out []TLSA
	owner := dns.Fqdn(qname)
	for range maxCNAME + 1 {
		next := ""
		for _, rr := range in.Answer {
			if !strings.EqualFold(rr.Header().Name, owner) {
				continue
			}
			switch v := rr.(type) {
			case *dns.TLSA:
				data, err := hex.DecodeString(v.Certificate)
				if err != nil {
					return nil, false, temporary(qname, "4.7.5", "malformed TLSA record", err)
				}
				out = append(out, TLSA{Usage: v.Usage, Selector: v.Selector, MatchingType: v.MatchingType, Data: data, Base: name})
			case *dns.CNAME:
				next = v.Target
			}
		}
		if len(out) > 0 || next == "" {
			return out, in.AuthenticatedData, nil
		}
		owner = next
	}
	return nil, false, temporary(qname, "4.7.5", fmt.Sprintf("TLSA lookup: CNAME chain longer than %d hops", maxCNAME), nil)
}
