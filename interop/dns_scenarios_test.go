//go:build linux

package interop

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// Each row sends one message to ok1@DOMAIN through unbound and nsd with
// --tls dane, and checks the run's exit code, the recipient's log line and
// its mailbox.
func TestDNS(t *testing.T) {
	chain, pf := needDNS(t)
	port := fmt.Sprint(pf.port)
	normal := "[" + ipNormal + "]:" + port
	for _, tc := range []struct {
		name, domain string
		exit         int
		status, dsn  string
		relay        string // the log line's relay=; "" for any of many.test's hosts
		tls          string // the log line's tls=
		reply        string // the start of the reply
	}{
		// RFC 5321 §5.1: the most preferred host is unreachable, the next
		// one gets the mail.
		{"unreachable preferred MX", "pref.test", 0, "sent", "2.0.0", "mx.pref.test" + normal, "TLSv1.3:unverified", "250 "},
		// RFC 7505: no connection, a permanent failure.
		{"null MX", "nullmx.test", 69, "bounced", "5.1.10", "none", "", "556 5.1.10 domain has a null MX"},
		// An MX host that is a CNAME is followed.
		{"MX host a CNAME", "cname.test", 0, "sent", "2.0.0", "alias.cname.test" + normal, "TLSv1.3:unverified", "250 "},
		// RFC 5321 §5.1: no MX, the domain's own address.
		{"implicit MX", "implicit.test", 0, "sent", "2.0.0", "implicit.test" + normal, "TLSv1.3:unverified", "250 "},
		// 40 MX records: the UDP answer is truncated, TCP gets it.
		{"MX answer over TCP", "many.test", 0, "sent", "2.0.0", "", "TLSv1.3:unverified", "250 "},
		// RFC 7672 §3.1.1: DANE-EE matches the server's key.
		{"DANE match", "dane.test", 0, "sent", "2.0.0", "mx.dane.test" + normal, "TLSv1.3:dane", "250 "},
		// RFC 7672 §2.2: no record matches: the host is not used.
		{"DANE mismatch", "danebad.test", 75, "deferred", "4.7.5", "none", "", "4.7.5 all MX hosts failed (last: mx.danebad.test" + normal + ": TLS handshake failed: DANE: no TLSA record matches"},
		// RFC 7672 §2.2.2: the TLSA records at the end of the CNAME chain
		// (those of the alias do not match).
		{"DANE at the CNAME target", "danecname.test", 0, "sent", "2.0.0", "mx.danecname.test" + normal, "TLSv1.3:dane", "250 "},
		// RFC 7672 §3.2.2: DANE-TA matches the issuer, and the certificate
		// names the MX host (*.pf.test).
		{"DANE-TA match", "danetaok.test", 0, "sent", "2.0.0", "ta.pf.test" + normal, "TLSv1.3:dane", "250 "},
		// ... but not when it does not name the MX host.
		{"DANE-TA, another name", "danetabad.test", 75, "deferred", "4.7.5", "none", "", "4.7.5 all MX hosts failed (last: mx.danetabad.test" + normal + ": TLS handshake failed: DANE: a trust anchor matched"},
		// RFC 7672 §2.1.1: TLSA records the resolver finds bogus (expired
		// signatures, SERVFAIL) make the host unusable: deferred.
		{"DANE bogus (expired signatures)", "expired.test", 75, "deferred", "4.7.5", "none", "", "4.7.5 all MX hosts failed (last: mx.expired.test: TLSA lookup failed"},
		// RFC 7672 §2.1.1: the preferred MX host's TLSA records are bogus,
		// so it is passed over for the next, whose records match.
		{"DANE bogus, then a match", "danefallback.test", 0, "sent", "2.0.0", "mx.dane.test" + normal, "TLSv1.3:dane", "250 "},
		// RFC 7672 §2.2.1: an MX answer that is not authenticated (an
		// unsigned zone) makes its hosts' TLSA records count for nothing,
		// even in a signed zone: opportunistic TLS.
		{"insecure MX answer, TLSA that does not match", "insecuremx.unsigned.test", 0, "sent", "2.0.0", "mx.danebad.test" + normal, "TLSv1.3:unverified", "250 "},
		// ... and so does an insecure CNAME leading to an authenticated MX
		// answer.
		{"insecure CNAME to a signed MX answer", "insecurecname.unsigned.test", 0, "sent", "2.0.0", "mx.danebad.test" + normal, "TLSv1.3:unverified", "250 "},
		// An authenticated CNAME to a signed MX answer: DANE applies.
		{"DANE through an authenticated CNAME", "cnamedane.test", 0, "sent", "2.0.0", "mx.dane.test" + normal, "TLSv1.3:dane", "250 "},
		// RFC 7672 §2.2.2: an implicit MX is its own TLSA base domain when
		// the MX denial and its addresses are authenticated ...
		{"DANE for an implicit MX", "implicitdane.test", 0, "sent", "2.0.0", "implicitdane.test" + normal, "TLSv1.3:dane", "250 "},
		// ... and gets no DANE when they are not (an alias into an
		// unsigned zone), whatever TLSA records it has.
		{"insecure implicit MX, TLSA that does not match", "implicitinsecure.test", 0, "sent", "2.0.0", "implicitinsecure.test" + normal, "TLSv1.3:unverified", "250 "},
		// RFC 4035 §5.5: a bogus MX answer is a SERVFAIL, which defers.
		{"bogus MX answer (expired signatures)", "bogus.test", 75, "deferred", "4.4.3", "none", "", "451 4.4.3 MX lookup failed"},
		// An authenticated NXDOMAIN fails the recipient with 5.1.2.
		{"NXDOMAIN", "nosuch.test", 69, "bounced", "5.1.2", "none", "", "550 5.1.2 domain does not exist"},
		// RFC 7672 §2.2: an insecure zone has no usable TLSA records, even
		// wrong ones: opportunistic TLS.
		{"DANE in an unsigned zone", "unsigned.test", 0, "sent", "2.0.0", "mx.unsigned.test" + normal, "TLSv1.3:unverified", "250 "},
		// An MX host with only an IPv6 address.
		{"AAAA-only MX host", "v6.test", 0, "sent", "2.0.0", "mx.v6.test[::1]:" + port, "TLSv1.3:unverified", "250 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.domain == "v6.test" && !pf.ipv6 {
				t.Skip("no IPv6 MX host: ::1 does not work on this host, or Postfix would not listen on it")
			}
			rcpt := "ok1@" + tc.domain
			spool := newSpool(t)
			m := message("dns "+tc.domain, rcpt, "Through nsd and unbound to "+tc.domain+".\r\n")
			enqueue(t, spool, m, rcpt)
			r := flush(t, spool, chain.addr, pf.port, "--tls", "dane")
			wantExit(t, r, tc.exit)
			o := wantOutcome(t, r, rcpt, tc.status, tc.dsn, tc.reply)
			if tc.relay == "" && (!strings.HasPrefix(o.relay, "mail-exchanger-number-") || !strings.HasSuffix(o.relay, normal)) {
				t.Errorf("relay=%s, want one of many.test's hosts at %s", o.relay, normal)
			} else if tc.relay != "" && o.relay != tc.relay {
				t.Errorf("relay=%s, want %s", o.relay, tc.relay)
			}
			if o.tls != tc.tls {
				t.Errorf("tls=%s, want %q", o.tls, tc.tls)
			}
			pf.idle(t)
			if tc.status == "sent" {
				pf.wantMailbox(t, rcpt, m)
			} else {
				pf.wantMailbox(t, rcpt)
			}
		})
	}
}

// The chain itself gives the answers TestDNS relies on: test. is
// validated, unsigned.test is not, the TLSA records under expired.test
// and bogus.test's records are bogus (SERVFAIL), nosuch.test is an
// authenticated NXDOMAIN, and many.test's MX answer does not fit in UDP.
func TestDNSChain(t *testing.T) {
	chain, pf := needDNS(t)
	t.Parallel()
	ask := func(name string, qtype uint16, tcp bool) *dns.Msg {
		t.Helper()
		m, err := query(chain.addr, name, qtype, tcp)
		if err != nil {
			t.Fatalf("%s %s: %v", name, dns.TypeToString[qtype], err)
		}
		return m
	}
	tlsa := fmt.Sprintf("_%d._tcp.mx.", pf.port)
	if m := ask(tlsa+"dane.test", dns.TypeTLSA, false); !m.AuthenticatedData || len(m.Answer) == 0 {
		t.Errorf("dane.test's TLSA records not authenticated:\n%v", m)
	}
	if m := ask(tlsa+"unsigned.test", dns.TypeTLSA, false); m.AuthenticatedData || len(m.Answer) == 0 {
		t.Errorf("unsigned.test's TLSA records: want an answer without AD:\n%v", m)
	}
	for _, name := range []string{"insecuremx.unsigned.test", "insecurecname.unsigned.test", "implicitinsecure.test"} {
		if m := ask(name, dns.TypeMX, false); m.AuthenticatedData || m.Rcode != dns.RcodeSuccess {
			t.Errorf("%s's MX answer: want one without AD:\n%v", name, m)
		}
	}
	if m := ask(fmt.Sprintf("_%d._tcp.implicitinsecure.test", pf.port), dns.TypeTLSA, false); !m.AuthenticatedData || len(m.Answer) == 0 {
		t.Errorf("implicitinsecure.test's TLSA records not authenticated:\n%v", m)
	}
	for _, name := range []string{"cnamedane.test", "implicitdane.test"} {
		if m := ask(name, dns.TypeMX, false); !m.AuthenticatedData || m.Rcode != dns.RcodeSuccess {
			t.Errorf("%s's MX answer: want one with AD:\n%v", name, m)
		}
	}
	if m := ask(tlsa+"danebad.test", dns.TypeTLSA, false); !m.AuthenticatedData || len(m.Answer) == 0 {
		t.Errorf("danebad.test's TLSA records not authenticated:\n%v", m)
	}
	if m := ask(tlsa+"expired.test", dns.TypeTLSA, false); m.Rcode != dns.RcodeServerFailure {
		t.Errorf("expired.test's TLSA records: want SERVFAIL (bogus):\n%v", m)
	}
	if m := ask("many.test", dns.TypeMX, false); !m.Truncated || len(m.Answer) >= manyMX {
		t.Errorf("many.test's MX answer over UDP has %d records, truncated %v: the TCP case is not tested", len(m.Answer), m.Truncated)
	}
	if m := ask("mx.bogus.test", dns.TypeA, false); m.Rcode != dns.RcodeServerFailure {
		t.Errorf("bogus.test: want SERVFAIL (bogus):\n%v", m)
	}
	if m := ask("nosuch.test", dns.TypeMX, false); m.Rcode != dns.RcodeNameError || !m.AuthenticatedData {
		t.Errorf("nosuch.test: want an authenticated NXDOMAIN:\n%v", m)
	}
	if m := ask("many.test", dns.TypeMX, true); len(m.Answer) < manyMX || !m.AuthenticatedData {
		t.Errorf("many.test's MX answer over TCP: %d records (AD %v), want %d authenticated", len(m.Answer), m.AuthenticatedData, manyMX)
	}
	m := ask("nullmx.test", dns.TypeMX, false)
	var mx []string
	for _, rr := range m.Answer {
		if rr, ok := rr.(*dns.MX); ok {
			mx = append(mx, fmt.Sprint(rr.Preference, " ", rr.Mx))
		}
	}
	if !m.AuthenticatedData || !slices.Equal(mx, []string{"0 ."}) {
		t.Errorf("nullmx.test's MX answer, want MX 0 . authenticated:\n%v", m)
	}
}
