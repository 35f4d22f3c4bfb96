package testnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// DNS is a miekg/dns server on 127.0.0.1 answering from an in-memory zone,
// over UDP and TCP on the same port. It answers like a recursive resolver
// that knows only the zone: RA set, CNAME chains inside the zone followed
// for any query type, unknown names NXDOMAIN with a synthetic "test." SOA in
// the authority section, known names without the asked type NOERROR with an
// empty answer (NODATA). A name exists only if it owns records: there are no
// empty non-terminals. Switches per name (SetRcode, Truncate, Delay) stage
// failures, SetAD marks answers as DNSSEC-validated; counters record every
// query. All methods are safe for
// concurrent use.
type DNS struct {
	udp, tcp *dns.Server
	addr     string
	done     chan struct{} // closed by Close: aborts pending Delay sleeps
	once     sync.Once
	closeErr error

	mu      sync.Mutex
	zone    map[string][]dns.RR // lower-case FQDN -> records in the order added
	rcode   map[string]int
	trunc   map[string]bool
	delay   map[string]time.Duration
	ad      map[string]bool
	queries map[queryKey]int // UDP + TCP
	tcpQ    map[queryKey]int // TCP only
	udpFrom map[string]bool  // client addresses ("ip:port") UDP queries came from
	maxLive int              // most queries being answered at once
	live    int
}

type queryKey struct {
	name  string // lower case, no trailing dot ("." for the root)
	qtype uint16
}

// syntheticSOA goes into the authority section of negative answers
// (RFC 2308 §3).
const syntheticSOA = "test. 60 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60"

// StartDNS starts a server on 127.0.0.1:PORT (UDP and TCP, same port) with
// the given zone-file lines, e.g. "a.test. 300 IN MX 10 mx.a.test." or
// "mx.a.test. A 127.0.0.2" (class IN and TTL 3600 by default; relative names
// are taken relative to the root). Every owner name must be "test." or end
// in ".test.". The caller must Close it.
func StartDNS(records ...string) (*DNS, error) {
	d := &DNS{
		done:    make(chan struct{}),
		zone:    make(map[string][]dns.RR),
		rcode:   make(map[string]int),
		trunc:   make(map[string]bool),
		delay:   make(map[string]time.Duration),
		ad:      make(map[string]bool),
		queries: make(map[queryKey]int),
		tcpQ:    make(map[queryKey]int),
	}
	if err := d.Add(records...); err != nil {
		return nil, err
	}
	pc, l, err := listenSamePort()
	if err != nil {
		return nil, err
	}
	d.addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(d.serve)
	d.udp = &dns.Server{PacketConn: pc, Handler: h}
	d.tcp = &dns.Server{Listener: l, Handler: h}
	for _, srv := range []*dns.Server{d.udp, d.tcp} {
		if err := activate(srv); err != nil {
			d.Close()
			l.Close()
			pc.Close()
			return nil, err
		}
	}
	return d, nil
}

// listenSamePort binds UDP on 127.0.0.1:0, then TCP on the port UDP got,
// retrying with a new UDP port when something else holds that TCP port.
func listenSamePort() (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range 10 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, fmt.Errorf("testnet: dns: listen udp: %w", err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, l, nil
		}
		pc.Close()
		lastErr = err
	}
	return nil, nil, fmt.Errorf("testnet: dns: no port free for both udp and tcp: %w", lastErr)
}

// activate runs srv in a goroutine and waits until it serves.
func activate(srv *dns.Server) error {
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	errc := make(chan error, 1)
	go func() { errc <- srv.ActivateAndServe() }()
	select {
	case <-started:
		return nil
	case err := <-errc:
		return fmt.Errorf("testnet: dns: serve: %w", err)
	case <-time.After(5 * time.Second):
		return errors.New("testnet: dns: server did not start within 5s")
	}
}

// Addr returns "127.0.0.1:PORT", the UDP and TCP address of the server.
func (d *DNS) Addr() string { return d.addr }

// Add parses zone-file lines (see StartDNS) and adds the records. Blank and
// comment-only lines are skipped. On error nothing is added.
func (d *DNS) Add(records ...string) error {
	var rrs []dns.RR
	for _, line := range records {
		rr, err := dns.NewRR(line)
		if err != nil {
			return fmt.Errorf("testnet: dns: record %q: %w", line, err)
		}
		if rr == nil {
			continue
		}
		name := strings.ToLower(rr.Header().Name)
		if name != "test." && !strings.HasSuffix(name, ".test.") {
			return fmt.Errorf("testnet: dns: record %q: owner name must end in .test", line)
		}
		rrs = append(rrs, rr)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, rr := range rrs {
		name := strings.ToLower(rr.Header().Name)
		d.zone[name] = append(d.zone[name], rr)
	}
	return nil
}

// SetRcode makes every query for name (any type, UDP and TCP) answer with
// rcode and no records, e.g. dns.RcodeServerFailure or dns.RcodeRefused.
func (d *DNS) SetRcode(name string, rcode int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rcode[fqdnKey(name)] = rcode
}

// Truncate makes UDP answers for name carry the TC bit and no records
// (RFC 1035 §4.1.1); TCP answers stay complete.
func (d *DNS) Truncate(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.trunc[fqdnKey(name)] = true
}

// Delay makes the server wait dur before answering any query for name
// (for timeout tests). Close cuts pending waits short without answering.
func (d *DNS) Delay(name string, dur time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.delay[fqdnKey(name)] = dur
}

// SetAD sets or clears the AD bit (RFC 4035 §3.2.3, "authenticated
// data") on every answer for name, as a validating resolver would after a
// successful DNSSEC check. Nothing is signed: it is a switch for DANE tests.
// As a validating resolver, the server sets the bit only in answers to
// queries that set AD or DO (RFC 6840 §5.7, §5.8), so a client that
// forgets to ask never sees it.
func (d *DNS) SetAD(name string, ad bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ad[fqdnKey(name)] = ad
}

// Queries returns how many queries for (name, qtype) arrived, UDP and TCP
// together. name is case-insensitive, with or without the trailing dot.
func (d *DNS) Queries(name string, qtype uint16) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queries[queryKey{countKey(name), qtype}]
}

// TCPQueries is like Queries but counts only queries over TCP.
func (d *DNS) TCPQueries(name string, qtype uint16) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.tcpQ[queryKey{countKey(name), qtype}]
}

// UDPClients returns how many distinct client sockets (address and port)
// sent UDP queries: a resolver that reuses its sockets shows few.
func (d *DNS) UDPClients() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.udpFrom)
}

// MaxInFlight returns the most queries the server was answering at once
// (a Delay counts as answering): how many a client had in flight.
func (d *DNS) MaxInFlight() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.maxLive
}

// Close stops both servers and waits for their handlers; pending Delay
// waits end without an answer. Safe to call more than once.
func (d *DNS) Close() error {
	d.once.Do(func() {
		close(d.done)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var errs []error
		for _, srv := range []*dns.Server{d.udp, d.tcp} {
			if srv == nil {
				continue
			}
			if err := srv.ShutdownContext(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			d.closeErr = fmt.Errorf("testnet: dns: close: %w", err)
		}
	})
	return d.closeErr
}

func fqdnKey(name string) string { return strings.ToLower(dns.Fqdn(name)) }

func countKey(name string) string {
	k := strings.TrimSuffix(fqdnKey(name), ".")
	if k == "" {
		return "."
	}
	return k
}

func (d *DNS) serve(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	if len(r.Question) != 1 {
		m.SetRcodeFormatError(r)
		w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	_, isTCP := w.RemoteAddr().(*net.TCPAddr)
	key := fqdnKey(q.Name)

	d.mu.Lock()
	d.queries[queryKey{countKey(q.Name), q.Qtype}]++
	if isTCP {
		d.tcpQ[queryKey{countKey(q.Name), q.Qtype}]++
	} else {
		if d.udpFrom == nil {
			d.udpFrom = map[string]bool{}
		}
		d.udpFrom[w.RemoteAddr().String()] = true
	}
	d.live++
	d.maxLive = max(d.maxLive, d.live)
	delay := d.delay[key]
	rcode, forced := d.rcode[key]
	truncated := d.trunc[key] && !isTCP
	ad := d.ad[key] && (r.AuthenticatedData || (r.IsEdns0() != nil && r.IsEdns0().Do()))
	var answer []dns.RR
	if !forced && !truncated {
		answer, rcode = d.resolveLocked(key, q.Qtype)
	}
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.live--
		d.mu.Unlock()
	}()

	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-d.done:
			t.Stop()
			return
		}
	}

	m.SetReply(r)
	m.RecursionAvailable = true
	m.AuthenticatedData = ad
	m.Rcode = rcode
	switch {
	case forced:
	case truncated:
		m.Rcode = dns.RcodeSuccess
		m.Truncated = true
	default:
		m.Authoritative = true
		m.Answer = answer
		if rcode == dns.RcodeNameError || (rcode == dns.RcodeSuccess && !hasType(answer, q.Qtype)) {
			soa, _ := dns.NewRR(syntheticSOA)
			m.Ns = []dns.RR{soa}
		}
	}
	size := dns.MinMsgSize
	if opt := r.IsEdns0(); opt != nil {
		size = max(size, int(opt.UDPSize()))
		m.SetEdns0(uint16(size), false)
	}
	if !isTCP {
		m.Truncate(size) // RFC 1035 §4.2.1: UDP answers that do not fit get TC
	}
	w.WriteMsg(m)
}

// hasType reports whether rrs hold a record of qtype; if not, a NOERROR
// answer is NODATA and gets the SOA (RFC 2308 §2.2).
func hasType(rrs []dns.RR, qtype uint16) bool {
	for _, rr := range rrs {
		if rr.Header().Rrtype == qtype {
			return true
		}
	}
	return false
}

// resolveLocked answers name/qtype from the zone, following CNAMEs inside
// the zone; the answer holds the chain. d.mu must be held. Records are
// copied because packing a message writes into them.
func (d *DNS) resolveLocked(name string, qtype uint16) ([]dns.RR, int) {
	var answer []dns.RR
	for range 16 {
		rrs, ok := d.zone[name]
		if !ok {
			return answer, dns.RcodeNameError
		}
		var cname *dns.CNAME
		matched := false
		for _, rr := range rrs {
			if rr.Header().Rrtype == qtype {
				answer = append(answer, dns.Copy(rr))
				matched = true
			}
			if c, ok := rr.(*dns.CNAME); ok {
				cname = c
			}
		}
		if matched || cname == nil {
			return answer, dns.RcodeSuccess
		}
		answer = append(answer, dns.Copy(cname))
		name = strings.ToLower(cname.Target)
	}
	return answer, dns.RcodeServerFailure // CNAME loop
}
