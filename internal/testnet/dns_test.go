package testnet

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func startTestDNS(t *testing.T, records ...string) *DNS {
	t.Helper()
	d, err := StartDNS(records...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// ask sends one query over network ("udp" or "tcp"), with EDNS0 4096 when
// edns is set.
func ask(t *testing.T, d *DNS, network, name string, qtype uint16, edns bool) *dns.Msg {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	if edns {
		q.SetEdns0(4096, false)
	}
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	in, _, err := c.Exchange(q, d.Addr())
	if err != nil {
		t.Fatalf("%s %s over %s: %v", name, dns.TypeToString[qtype], network, err)
	}
	return in
}

// rrs renders a section as "type:data" strings, e.g. "MX:10 mx.a.test.".
func rrs(section []dns.RR) string {
	var out []string
	for _, rr := range section {
		h := rr.Header()
		out = append(out, dns.TypeToString[h.Rrtype]+":"+strings.TrimPrefix(rr.String(), h.String()))
	}
	return strings.Join(out, " ")
}

func TestDNSAnswers(t *testing.T) {
	d := startTestDNS(t,
		"a.test. 300 IN MX 10 mx.a.test.",
		"a.test. MX 20 mx2.a.test.",
		"mx.a.test. A 127.0.0.2",
		"alias.test. CNAME mid.test.",
		"mid.test. CNAME mx.a.test.",
		"dangling.test. CNAME nowhere.test.",
		"fail.test. A 127.0.0.3",
	)
	d.SetRcode("FAIL.test", dns.RcodeServerFailure)
	tests := []struct {
		name   string
		qtype  uint16
		rcode  int
		answer string
		soa    bool // SOA in the authority section
	}{
		{"a.test", dns.TypeMX, dns.RcodeSuccess, "MX:10 mx.a.test. MX:20 mx2.a.test.", false},
		{"A.Test", dns.TypeMX, dns.RcodeSuccess, "MX:10 mx.a.test. MX:20 mx2.a.test.", false},
		{"a.test", dns.TypeA, dns.RcodeSuccess, "", true},
		{"missing.test", dns.TypeMX, dns.RcodeNameError, "", true},
		{"alias.test", dns.TypeA, dns.RcodeSuccess, "CNAME:mid.test. CNAME:mx.a.test. A:127.0.0.2", false},
		{"alias.test", dns.TypeMX, dns.RcodeSuccess, "CNAME:mid.test. CNAME:mx.a.test.", true},
		{"alias.test", dns.TypeCNAME, dns.RcodeSuccess, "CNAME:mid.test.", false},
		{"dangling.test", dns.TypeA, dns.RcodeNameError, "CNAME:nowhere.test.", true},
		{"fail.test", dns.TypeA, dns.RcodeServerFailure, "", false},
	}
	for _, tt := range tests {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(fmt.Sprintf("%s/%s/%s", tt.name, dns.TypeToString[tt.qtype], network), func(t *testing.T) {
				in := ask(t, d, network, tt.name, tt.qtype, true)
				if in.Rcode != tt.rcode {
					t.Errorf("rcode %s, want %s", dns.RcodeToString[in.Rcode], dns.RcodeToString[tt.rcode])
				}
				if got := rrs(in.Answer); got != tt.answer {
					t.Errorf("answer %q, want %q", got, tt.answer)
				}
				hasSOA := len(in.Ns) == 1 && in.Ns[0].Header().Rrtype == dns.TypeSOA && in.Ns[0].Header().Name == "test."
				if hasSOA != tt.soa {
					t.Errorf("authority %v, want SOA: %v", in.Ns, tt.soa)
				}
				if !in.RecursionAvailable || in.Truncated {
					t.Errorf("RA %v TC %v, want RA and no TC", in.RecursionAvailable, in.Truncated)
				}
			})
		}
	}
	if got := d.Queries("ALIAS.test.", dns.TypeA); got != 2 {
		t.Errorf("Queries(alias.test, A) = %d, want 2", got)
	}
	if got := d.TCPQueries("alias.test", dns.TypeA); got != 1 {
		t.Errorf("TCPQueries(alias.test, A) = %d, want 1", got)
	}
	if got := d.Queries("mx.a.test", dns.TypeA); got != 0 {
		t.Errorf("Queries(mx.a.test, A) = %d, want 0: chains are followed inside the server", got)
	}
}

func TestDNSTruncate(t *testing.T) {
	d := startTestDNS(t, "big.test. MX 10 mx.big.test.", "small.test. MX 10 mx.small.test.")
	d.Truncate("big.test")
	udp := ask(t, d, "udp", "big.test", dns.TypeMX, true)
	if !udp.Truncated || len(udp.Answer) != 0 {
		t.Errorf("UDP: TC %v, %d answers; want TC and none", udp.Truncated, len(udp.Answer))
	}
	tcp := ask(t, d, "tcp", "big.test", dns.TypeMX, true)
	if tcp.Truncated || len(tcp.Answer) != 1 {
		t.Errorf("TCP: TC %v, %d answers; want no TC and 1", tcp.Truncated, len(tcp.Answer))
	}
	if small := ask(t, d, "udp", "small.test", dns.TypeMX, true); small.Truncated {
		t.Error("UDP answer for another name truncated")
	}
	if q, tq := d.Queries("big.test", dns.TypeMX), d.TCPQueries("big.test", dns.TypeMX); q != 2 || tq != 1 {
		t.Errorf("Queries %d, TCPQueries %d; want 2 and 1", q, tq)
	}
}

// An answer larger than the client's UDP size is truncated (RFC 1035
// §4.2.1: 512 octets without EDNS0), and complete over TCP or with EDNS0.
func TestDNSLargeAnswer(t *testing.T) {
	var zone []string
	for i := range 60 {
		zone = append(zone, fmt.Sprintf("many.test. A 127.0.1.%d", i))
	}
	d := startTestDNS(t, zone...)
	tests := []struct {
		network string
		edns    bool
		tc      bool
	}{{"udp", false, true}, {"udp", true, false}, {"tcp", false, false}}
	for _, tt := range tests {
		in := ask(t, d, tt.network, "many.test", dns.TypeA, tt.edns)
		if in.Truncated != tt.tc || (!tt.tc && len(in.Answer) != 60) || (tt.tc && len(in.Answer) >= 60) {
			t.Errorf("%s edns=%v: TC %v with %d answers; want TC %v", tt.network, tt.edns, in.Truncated, len(in.Answer), tt.tc)
		}
	}
}

func TestDNSAdd(t *testing.T) {
	d := startTestDNS(t)
	if got := ask(t, d, "udp", "late.test", dns.TypeA, false); got.Rcode != dns.RcodeNameError {
		t.Fatalf("before Add: rcode %s, want NXDOMAIN", dns.RcodeToString[got.Rcode])
	}
	if err := d.Add("late.test. A 127.0.0.9", "", "; comment"); err != nil {
		t.Fatal(err)
	}
	if got := rrs(ask(t, d, "udp", "late.test", dns.TypeA, false).Answer); got != "A:127.0.0.9" {
		t.Errorf("after Add: answer %q", got)
	}
	for _, bad := range []string{"a.invalid. A 127.0.0.1", "a.test. A not-an-ip", "a.test. BOGUS 1"} {
		if err := d.Add(bad, "ok.test. A 127.0.0.1"); err == nil {
			t.Errorf("Add(%q): want an error", bad)
		}
	}
	if got := ask(t, d, "udp", "ok.test", dns.TypeA, false); got.Rcode != dns.RcodeNameError {
		t.Error("a failed Add added some records")
	}
	if _, err := StartDNS("example.invalid. A 127.0.0.1"); err == nil {
		t.Error("StartDNS with a name outside .test: want an error")
	}
}

func TestDNSDelayAndClose(t *testing.T) {
	d, err := StartDNS("slow.test. A 127.0.0.2", "fast.test. A 127.0.0.3")
	if err != nil {
		t.Fatal(err)
	}
	d.Delay("slow.test", 10*time.Second)
	q := new(dns.Msg).SetQuestion("slow.test.", dns.TypeA)
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	if _, _, err := c.Exchange(q, d.Addr()); err == nil {
		t.Error("delayed query answered within 200ms")
	}
	if got := ask(t, d, "udp", "fast.test", dns.TypeA, false); len(got.Answer) != 1 {
		t.Errorf("undelayed name: %d answers", len(got.Answer))
	}
	start := time.Now()
	if err := d.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("Close waited %v for a delayed answer", el)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, _, err := (&dns.Client{Net: "tcp", Timeout: 200 * time.Millisecond}).Exchange(q, d.Addr()); err == nil {
		t.Error("TCP query answered after Close")
	}
}
