package mx_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mxflush/mxflush/mx"
)

// insecure renders which hosts of a route an insecure DNS answer named:
// "mx.a.test:secure mx2.a.test:insecure".
func insecure(r mx.Route) string {
	var out []string
	for _, h := range r.Hosts {
		s := "secure"
		if h.Insecure {
			s = "insecure"
		}
		out = append(out, h.Name+":"+s)
	}
	return strings.Join(out, " ")
}

// RFC 7672 §2.2.1: the hosts of an MX answer the resolver did not
// authenticate (no AD bit) are marked Insecure, and DANE does not apply to
// them; so are those of a domain whose CNAME was not authenticated, and
// the implicit MX of a domain whose MX denial or address answers were not
// (RFC 7672 §2.2.2). The MX hosts' own address answers do not count. The
// server sets AD only for queries that ask with AD or DO, as unbound does
// (RFC 6840 §5.8): the secure rows also prove that mx asks.
func TestLookupMarksInsecureAnswers(t *testing.T) {
	d := startDNS(t,
		"signed.test. MX 10 mx1.signed.test.",
		"signed.test. MX 20 mx2.signed.test.",
		"mx1.signed.test. A 127.0.0.2",
		"mx2.signed.test. A 127.0.0.3",
		"unsigned.test. MX 10 mx.signed.test.",
		"mx.signed.test. A 127.0.0.4",
		"alias.test. CNAME signed.test.",
		"insecurealias.test. CNAME signed.test.",
		"implicit.test. A 127.0.0.5",
		"insecureimplicit.test. A 127.0.0.6",
	)
	for _, name := range []string{"signed.test", "alias.test", "implicit.test"} {
		d.SetAD(name, true)
	}
	r := &mx.Resolver{Server: d.Addr(), Timeout: 2 * time.Second}
	for _, tt := range []struct{ domain, want string }{
		// The hosts' own A answers are not authenticated: they do not count.
		{"signed.test", "mx1.signed.test:secure mx2.signed.test:secure"},
		{"unsigned.test", "mx.signed.test:insecure"},
		// One answer holds the chain and the MX records: its AD bit.
		{"alias.test", "mx1.signed.test:secure mx2.signed.test:secure"},
		{"insecurealias.test", "mx1.signed.test:insecure mx2.signed.test:insecure"},
		{"implicit.test", "implicit.test:secure"},
		{"insecureimplicit.test", "insecureimplicit.test:insecure"},
		// No DNS at all: nothing says it is insecure.
		{"[127.0.0.1]", "[127.0.0.1]:secure"},
	} {
		t.Run(tt.domain, func(t *testing.T) {
			route, err := r.Lookup(context.Background(), tt.domain)
			if err != nil {
				t.Fatal(err)
			}
			if got := insecure(route); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// A CNAME chain answered in parts (the MX answer stops at the alias, the
// chain's end is asked for separately) is secure only when every part was
// authenticated; an implicit MX needs its MX denial and every address
// answer authenticated.
func TestLookupInsecureChainPart(t *testing.T) {
	ad := map[string]bool{}
	for _, q := range []string{
		"split.test. MX", "real.test. MX",
		"half.test. MX", // real2.test. MX is not
		"imp.test. MX", "imp.test. A", "imp.test. AAAA",
		"imp2.test. MX", "imp2.test. A", // imp2.test. AAAA is not
		"imp3.test. A", "imp3.test. AAAA", // imp3.test. MX is not
	} {
		ad[q] = true
	}
	addr := startNoChaseDNSAD(t, ad,
		"split.test. CNAME real.test.",
		"real.test. MX 10 mx.real.test.",
		"half.test. CNAME real2.test.",
		"real2.test. MX 10 mx.real.test.",
		"mx.real.test. A 127.0.0.2",
		"imp.test. A 127.0.0.3",
		"imp2.test. A 127.0.0.4",
		"imp3.test. A 127.0.0.5",
	)
	r := &mx.Resolver{Server: addr, Timeout: 2 * time.Second}
	for _, tt := range []struct{ domain, want string }{
		{"split.test", "mx.real.test:secure"},
		{"half.test", "mx.real.test:insecure"},
		{"imp.test", "imp.test:secure"},
		{"imp2.test", "imp2.test:insecure"},
		{"imp3.test", "imp3.test:insecure"},
	} {
		t.Run(tt.domain, func(t *testing.T) {
			route, err := r.Lookup(context.Background(), tt.domain)
			if err != nil {
				t.Fatal(err)
			}
			if got := insecure(route); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}
