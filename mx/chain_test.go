package mx_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mxflush/mxflush/mta"
	"github.com/mxflush/mxflush/mx"
)

// startNoChaseDNS starts a loopback UDP server that, unlike testnet.DNS,
// does not follow CNAMEs: the answer for an alias holds only its CNAME, as
// an authoritative server for another zone would give. The resolver must
// then ask for the chain's end itself.
func startNoChaseDNS(t *testing.T, records ...string) string {
	t.Helper()
	return startNoChaseDNSAD(t, nil, records...)
}

// startNoChaseDNSAD is startNoChaseDNS whose answers carry the AD bit for
// the questions in ad ("name. TYPE", lower case) when the query asks for
// it with AD (RFC 6840 §5.7): a chain split over several answers can then
// be authenticated in part.
func startNoChaseDNSAD(t *testing.T, ad map[string]bool, records ...string) string {
	t.Helper()
	zone := map[string][]dns.RR{}
	for _, s := range records {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		zone[strings.ToLower(rr.Header().Name)] = append(zone[strings.ToLower(rr.Header().Name)], rr)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) },
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(r)
			q := r.Question[0]
			m.AuthenticatedData = r.AuthenticatedData && ad[strings.ToLower(q.Name)+" "+dns.TypeToString[q.Qtype]]
			rrs, ok := zone[strings.ToLower(q.Name)]
			if !ok {
				m.Rcode = dns.RcodeNameError
			}
			for _, rr := range rrs {
				if rr.Header().Rrtype == q.Qtype || rr.Header().Rrtype == dns.TypeCNAME {
					m.Answer = append(m.Answer, dns.Copy(rr))
				}
			}
			w.WriteMsg(m)
		})}
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

func TestLookupAsksForCNAMEChainEnd(t *testing.T) {
	var long []string
	for i := range 10 {
		long = append(long, fmt.Sprintf("long%d.test. CNAME long%d.test.", i, i+1))
	}
	long = append(long, "long10.test. MX 10 mx.real.test.")
	addr := startNoChaseDNS(t, append(long,
		"split.test. CNAME real.test.",
		"real.test. MX 10 mx.real.test.",
		"mx.real.test. CNAME host.real.test.",
		"host.real.test. A 127.0.0.2",
		"loopa.test. CNAME loopb.test.",
		"loopb.test. CNAME loopa.test.",
	)...)
	r := &mx.Resolver{Server: addr, Timeout: 2 * time.Second}

	route, err := r.Lookup(context.Background(), "split.test")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := render(route), "mx.real.test/10[127.0.0.2]"; got != want {
		t.Errorf("split.test route %s, want %s", got, want)
	}
	for _, domain := range []string{"loopa.test", "long0.test"} {
		_, err := r.Lookup(context.Background(), domain)
		var me *mta.Error
		if !errors.As(err, &me) || me.Permanent || !strings.Contains(err.Error(), "CNAME chain longer than") {
			t.Errorf("Lookup(%s) = %v; want a temporary CNAME chain error", domain, err)
		}
	}
}
