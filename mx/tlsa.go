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
}

// TLSA returns the TLSA records of _PORT._tcp.HOST (RFC 6698 §3, RFC 7672
// §2.2) and whether the server said it authenticated the answer: the AD
// bit (RFC 4035 §3.2.3), asked for with AD and DO set in the query (RFC
// 6840 §5.7). CNAMEs in the answer are followed. No such name or no
// records is (nil, AD, nil): an authenticated denial says "no DANE here".
//
// The AD bit is only as trustworthy as the path to Resolver.Server and the
// server itself: anyone on that path can set it. It means something only
// for a validating resolver the user named, on this host or over a trusted
// link; the caller decides whether that is the case.
//
// Errors are temporary *Error (4.7.5): SERVFAIL (which a validating
// resolver also answers for a bogus signature), timeouts, a malformed
// record. RFC 7672 §2.2 then treats the host as unusable.
func (r *Resolver) TLSA(ctx context.Context, host string, port int) ([]TLSA, bool, error) {
	name, err := idna.Lookup.ToASCII(strings.TrimSuffix(host, "."))
	if err != nil || name == "" {
		return nil, false, temporary(host, "4.7.5", "TLSA lookup: host is not a valid name", err)
	}
	qname := "_" + strconv.Itoa(port) + "._tcp." + strings.ToLower(name)
	if r.Server == "" {
		return nil, false, temporary(qname, "4.3.5", "no DNS server configured", nil)
	}
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
				out = append(out, TLSA{Usage: v.Usage, Selector: v.Selector, MatchingType: v.MatchingType, Data: data})
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
