package mx_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/mta"
	"github.com/mxflush/mxflush/mx"
)

// startDNS starts a loopback DNS server for one test; every name is under .test.
func startDNS(t testing.TB, records ...string) *testnet.DNS {
	t.Helper()
	d, err := testnet.StartDNS(records...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// render writes a route as "I name/pref[addr addr] name/pref[addr]" (I only
// when implicit, L when literal) so a table can state it in one string.
func render(r mx.Route) string {
	var b strings.Builder
	if r.Implicit {
		b.WriteString("I ")
	}
	if r.Literal {
		b.WriteString("L ")
	}
	for i, h := range r.Hosts {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s/%d%v", h.Name, h.Pref, h.Addrs)
	}
	return b.String()
}

func TestLookupRoutes(t *testing.T) {
	d := startDNS(t,
		// MX order: answer order is not preference order.
		"sorted.test. MX 20 mx-b.sorted.test.",
		"sorted.test. MX 5 mx-c.sorted.test.",
		"sorted.test. MX 10 mx-a.sorted.test.",
		"mx-a.sorted.test. A 127.0.0.2",
		"mx-b.sorted.test. A 127.0.0.3",
		"mx-c.sorted.test. AAAA ::1", // AAAA added first: A must still come first
		"mx-c.sorted.test. A 127.0.0.4",
		// Implicit MX (RFC 5321 §5.1).
		"plain.test. A 127.0.0.10",
		"v6only.test. AAAA ::1",
		// CNAME: the domain is an alias; the target's own A is a trap.
		"alias.test. CNAME real.test.",
		"real.test. MX 10 mx.real.test.",
		"real.test. A 127.0.0.99",
		"mx.real.test. A 127.0.0.20",
		// CNAME: the MX target is an alias (RFC 2181 §10.3 violation, tolerated).
		"cn.test. MX 10 mail.cn.test.",
		"mail.cn.test. CNAME host.cn.test.",
		"host.cn.test. A 127.0.0.21",
		// Two-hop alias chain.
		"hop.test. CNAME alias.test.",
		// RFC 7505 §3: "." next to a real MX is ignored.
		"mixed.test. MX 0 .",
		"mixed.test. MX 10 mx.mixed.test.",
		"mx.mixed.test. A 127.0.0.40",
		// Hosts without addresses are dropped.
		"partial.test. MX 10 gone.partial.test.",
		"partial.test. MX 15 txt.partial.test.",
		"partial.test. MX 20 mx.partial.test.",
		"txt.partial.test. TXT \"no address here\"",
		"mx.partial.test. A 127.0.0.50",
		// Duplicate targets (case differs) keep the lowest preference.
		"dup.test. MX 20 MX.DUP.TEST.",
		"dup.test. MX 10 mx.dup.test.",
		"mx.dup.test. A 127.0.0.60",
		"mx.dup.test. A 127.0.0.60",
		// IDN: U-label asked, A-label in DNS.
		"xn--bcher-kva.test. MX 10 mx.xn--bcher-kva.test.",
		"mx.xn--bcher-kva.test. A 127.0.0.70",
	)
	r := &mx.Resolver{Server: d.Addr(), Timeout: 2 * time.Second}
	tests := []struct {
		domain, wantDomain, want string
	}{
		{"sorted.test", "sorted.test", "mx-c.sorted.test/5[127.0.0.4 ::1] mx-a.sorted.test/10[127.0.0.2] mx-b.sorted.test/20[127.0.0.3]"},
		{"SORTED.Test.", "sorted.test", "mx-c.sorted.test/5[127.0.0.4 ::1] mx-a.sorted.test/10[127.0.0.2] mx-b.sorted.test/20[127.0.0.3]"},
		{"plain.test", "plain.test", "I plain.test/0[127.0.0.10]"},
		{"v6only.test", "v6only.test", "I v6only.test/0[::1]"},
		{"alias.test", "alias.test", "mx.real.test/10[127.0.0.20]"},
		{"hop.test", "hop.test", "mx.real.test/10[127.0.0.20]"},
		{"cn.test", "cn.test", "mail.cn.test/10[127.0.0.21]"},
		{"mixed.test", "mixed.test", "mx.mixed.test/10[127.0.0.40]"},
		{"partial.test", "partial.test", "mx.partial.test/20[127.0.0.50]"},
		{"dup.test", "dup.test", "mx.dup.test/10[127.0.0.60]"},
		{"bücher.test", "xn--bcher-kva.test", "mx.xn--bcher-kva.test/10[127.0.0.70]"},
		{"[127.0.0.1]", "[127.0.0.1]", "L [127.0.0.1]/0[127.0.0.1]"},
		{"[IPv6:::1]", "[IPv6:::1]", "L [IPv6:::1]/0[::1]"},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			route, err := r.Lookup(context.Background(), tt.domain)
			if err != nil {
				t.Fatalf("Lookup(%q): %v", tt.domain, err)
			}
			if got := render(route); got != tt.want {
				t.Errorf("Lookup(%q) route\n got %s\nwant %s", tt.domain, got, tt.want)
			}
			if route.Domain != tt.wantDomain {
				t.Errorf("Lookup(%q).Domain = %q, want %q", tt.domain, route.Domain, tt.wantDomain)
			}
		})
	}
	if n := d.Queries("xn--bcher-kva.test", dns.TypeMX); n != 1 {
		t.Errorf("MX queries for xn--bcher-kva.test = %d, want 1 (U-label converted before querying)", n)
	}
	if n := d.Queries(".", dns.TypeA) + d.Queries(".", dns.TypeAAAA); n != 0 {
		t.Errorf("address queries for \".\" = %d, want 0 (RFC 7505 §3: \".\" is no host)", n)
	}
	if n := d.Queries("real.test", dns.TypeA); n != 0 {
		t.Errorf("A queries for real.test = %d, want 0: an alias domain with MX must not use the target's A", n)
	}
}

func TestLookupErrors(t *testing.T) {
	d := startDNS(t,
		"nomail.test. MX 0 .", // null MX (RFC 7505) beside a web server's A
		"nomail.test. A 127.0.0.80",
		"nomail.test. AAAA ::1",
		"empty.test. TXT \"v=spf1 -all\"", // exists, no MX/A/AAAA
		"servfail.test. A 127.0.0.81",
		"refused.test. A 127.0.0.82",
		"noaddr.test. MX 10 gone.noaddr.test.",
		"noaddr.test. MX 20 txt.noaddr.test.",
		"txt.noaddr.test. TXT \"nothing\"",
		"loop1.test. CNAME loop2.test.",
		"loop2.test. CNAME loop1.test.",
		"dangling.test. CNAME nowhere.test.",
		"hostfail.test. MX 10 mx.hostfail.test.",
		"mx.hostfail.test. A 127.0.0.83",
	)
	d.SetRcode("servfail.test", dns.RcodeServerFailure)
	d.SetRcode("refused.test", dns.RcodeRefused)
	d.SetRcode("mx.hostfail.test", dns.RcodeServerFailure)
	r := &mx.Resolver{Server: d.Addr(), Timeout: 2 * time.Second}
	tests := []struct {
		domain    string
		permanent bool
		code      int
		status    string
		msg       string // substring of Error()
	}{
		{"missing.test", true, 550, "5.1.2", "NXDOMAIN"},
		{"dangling.test", true, 550, "5.1.2", "nowhere.test"},
		{"empty.test", true, 550, "5.1.2", "no MX, A or AAAA"},
		{"nomail.test", true, 556, "5.1.10", "null MX"},
		{"servfail.test", false, 451, "4.4.3", "SERVFAIL"},
		{"refused.test", false, 451, "4.4.3", "REFUSED"},
		{"loop1.test", false, 451, "4.4.3", "MX lookup failed"},
		{"noaddr.test", false, 451, "4.4.4", "gone.noaddr.test (gone.noaddr.test: name does not exist (NXDOMAIN)), txt.noaddr.test (no A or AAAA records)"},
		{"hostfail.test", false, 451, "4.4.4", "mx.hostfail.test (mx.hostfail.test A: server answered SERVFAIL)"},
		{"[999.1.1.1]", true, 550, "5.1.3", "malformed address literal"},
		{"[IPv6:127.0.0.1]", true, 550, "5.1.3", "malformed address literal"},
		{"[127.0.0.1", true, 550, "5.1.3", "malformed address literal"},
		{"bad_\x00.test", true, 550, "5.1.3", "not a valid host name"},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			route, err := r.Lookup(context.Background(), tt.domain)
			var me *mta.Error
			if !errors.As(err, &me) {
				t.Fatalf("Lookup(%q) = %+v, %v; want *mta.Error", tt.domain, route, err)
			}
			if me.Permanent != tt.permanent || me.Code != tt.code || me.Status != tt.status {
				t.Errorf("Lookup(%q) = permanent %v, %d %s; want %v, %d %s (%v)",
					tt.domain, me.Permanent, me.Code, me.Status, tt.permanent, tt.code, tt.status, err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Lookup(%q) error %q does not contain %q", tt.domain, err, tt.msg)
			}
		})
	}
	// RFC 7505 §4.1, §4.2: a null MX means no address lookup at all.
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"nomail.test", dns.TypeA}, {"nomail.test", dns.TypeAAAA}, {".", dns.TypeA}, {".", dns.TypeAAAA}} {
		if n := d.Queries(q.name, q.qtype); n != 0 {
			t.Errorf("%s %s queries after a null MX = %d, want 0", q.name, dns.TypeToString[q.qtype], n)
		}
	}
}
