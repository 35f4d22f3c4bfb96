package mx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

const (
	defaultTimeout = 5 * time.Second
	ednsSize       = 4096 // advertised UDP payload size (RFC 6891 §6.2.5)
	maxCNAME       = 8    // CNAME hops followed per lookup
)

// nxDomainError is an NXDOMAIN answer (RFC 1035 §4.1.1 RCODE 3): the name
// does not exist. Permanent when it is the recipient domain.
type nxDomainError struct{ name string }

func (e *nxDomainError) Error() string {
	return strings.TrimSuffix(e.name, ".") + ": name does not exist (NXDOMAIN)"
}

func isNXDomain(err error) bool {
	var nx *nxDomainError
	return errors.As(err, &nx)
}

// rcodeError is any other failure RCODE (SERVFAIL, REFUSED, ...): temporary.
type rcodeError struct {
	name  string
	qtype uint16
	rcode int
}

func (e *rcodeError) Error() string {
	return fmt.Sprintf("%s %s: server answered %s", strings.TrimSuffix(e.name, "."),
		dns.TypeToString[e.qtype], dns.RcodeToString[e.rcode])
}

// resolve returns the records of type qtype for name, following CNAME chains
// (RFC 1034 §3.6.2): in the answer first, then by asking for the chain's end
// if the answer stops there, at most maxCNAME hops. No records (NODATA) is
// (nil, ad, nil); NXDOMAIN is *nxDomainError; other RCODEs are *rcodeError;
// transport failures and timeouts are wrapped errors.
//
// ad says that the server set the AD bit on every answer read (RFC 4035
// §3.2.3: all of an answer's records, the CNAMEs of the chain included,
// were authenticated). It is only as good as the server and the path to
// it: see TLSA.
func (r *Resolver) resolve(ctx context.Context, name string, qtype uint16) ([]dns.RR, bool, error) {
	target := dns.Fqdn(name)
	hops := 0
	ad := true
	for {
		in, err := r.exchange(ctx, target, qtype)
		if err != nil {
			return nil, false, err
		}
		if in.Rcode != dns.RcodeSuccess && in.Rcode != dns.RcodeNameError {
			return nil, false, &rcodeError{name: target, qtype: qtype, rcode: in.Rcode}
		}
		ad = ad && in.AuthenticatedData
		owner := target
		for {
			var found []dns.RR
			next := ""
			for _, rr := range in.Answer {
				h := rr.Header()
				if !strings.EqualFold(h.Name, owner) || h.Class != dns.ClassINET {
					continue
				}
				if h.Rrtype == qtype {
					found = append(found, rr)
				} else if c, ok := rr.(*dns.CNAME); ok {
					next = c.Target
				}
			}
			if len(found) > 0 {
				return found, ad, nil
			}
			if next == "" {
				break
			}
			if hops++; hops > maxCNAME {
				return nil, false, fmt.Errorf("%s: CNAME chain longer than %d hops", strings.TrimSuffix(name, "."), maxCNAME)
			}
			owner = next
		}
		switch {
		case in.Rcode == dns.RcodeNameError:
			// RFC 6604 §3: the RCODE is about the last name of the chain.
			return nil, false, &nxDomainError{name: owner}
		case strings.EqualFold(owner, target):
			return nil, ad, nil // NODATA
		}
		target = owner // the chain ends without the wanted type: ask its end
	}
}

// exchange sends one query with RD and AD set and EDNS0 (UDP size 4096)
// over UDP, and repeats it over TCP to the same server when the UDP answer
// is truncated (RFC 1035 §4.2.1, RFC 7766 §5): miekg/dns does not fall
// back by itself. AD in the query asks a validating resolver to say in its
// answer whether it authenticated it (RFC 6840 §5.7), without the
// signatures that DO would bring.
func (r *Resolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype) // sets RD
	q.AuthenticatedData = true
	q.SetEdns0(ednsSize, false)
	return r.exchangeMsg(ctx, q)
}

// exchangeMsg sends q over UDP, then over TCP when the answer is truncated.
func (r *Resolver) exchangeMsg(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
	in, err := r.exchangeOver(ctx, "udp", q)
	if err == nil && in.Truncated {
		in, err = r.exchangeOver(ctx, "tcp", q)
	}
	return in, err
}

// exchangeOver runs one exchange on network ("udp" or "tcp") within the
// per-query timeout and checks that the answer is for our question. UDP
// queries reuse the sockets of finished ones (see udpPool); a TCP
// connection serves one exchange, the rare truncated answer.
func (r *Resolver) exchangeOver(ctx context.Context, network string, q *dns.Msg) (*dns.Msg, error) {
	qq := q.Question[0]
	what := fmt.Sprintf("%s %s over %s to %s", strings.TrimSuffix(qq.Name, "."), dns.TypeToString[qq.Qtype], network, r.Server)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &dns.Client{Net: network, UDPSize: ednsSize, Timeout: timeout}
	var in *dns.Msg
	var err error
	if network == "udp" {
		in, err = r.udp.exchange(ctx, c, q, r.Server)
	} else {
		in, _, err = c.ExchangeContext(ctx, q, r.Server)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if len(in.Question) != 1 || in.Question[0].Qtype != qq.Qtype || !strings.EqualFold(in.Question[0].Name, qq.Name) {
		return nil, fmt.Errorf("%s: answer does not match the question", what)
	}
	return in, nil
}

// maxIdleUDP is how many idle UDP sockets a Resolver keeps between
// queries: enough for the lookups batch runs at once to find one (each
// lookup asks one question at a time per MX host), few enough that the
// open files of a run stay near its connection limit.
const maxIdleUDP = 16

// udpPool keeps the UDP sockets of finished queries for the next ones, so
// that resolving thousands of domains does not open and close a socket per
// query. A socket whose exchange failed is closed, not kept: a late answer
// to a timed-out query could otherwise wait in it (miekg/dns skips answers
// whose ID does not match, so even that could not be taken for another
// query's). The zero value is an empty pool.
type udpPool struct {
	mu   sync.Mutex
	idle []*dns.Conn
}

func (p *udpPool) exchange(ctx context.Context, c *dns.Client, q *dns.Msg, server string) (*dns.Msg, error) {
	p.mu.Lock()
	var co *dns.Conn
	if n := len(p.idle); n > 0 {
		co, p.idle = p.idle[n-1], p.idle[:n-1]
	}
	p.mu.Unlock()
	if co == nil {
		var err error
		if co, err = c.DialContext(ctx, server); err != nil {
			return nil, err
		}
	}
	in, _, err := c.ExchangeWithConnContext(ctx, q, co)
	if err != nil {
		co.Close()
		return nil, err
	}
	p.mu.Lock()
	if len(p.idle) < maxIdleUDP {
		p.idle, co = append(p.idle, co), nil
	}
	p.mu.Unlock()
	if co != nil {
		co.Close()
	}
	return in, nil
}

// close closes the idle sockets.
func (p *udpPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, co := range p.idle {
		co.Close()
	}
	p.idle = nil
}

// ServerFromResolvConf returns the first "nameserver" of a resolv.conf(5)
// file as "ip:53" ("[ip6]:53" for IPv6), for Resolver.Server. It is an
// error if the file cannot be read, has no nameserver line, or the first
// one is not an IP address.
func ServerFromResolvConf(path string) (string, error) {
	conf, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return "", fmt.Errorf("read resolver configuration: %w", err)
	}
	if len(conf.Servers) == 0 {
		return "", fmt.Errorf("resolver configuration %s: no nameserver line", path)
	}
	ip, err := netip.ParseAddr(conf.Servers[0])
	if err != nil {
		return "", fmt.Errorf("resolver configuration %s: nameserver %q is not an IP address: %w", path, conf.Servers[0], err)
	}
	return net.JoinHostPort(ip.String(), conf.Port), nil
}
