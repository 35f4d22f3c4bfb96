package mx_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"

	"github.com/miekg/dns"

	"github.com/mxflush/mxflush/mta"
	"github.com/mxflush/mxflush/mx"
)

// TLSA lookups (RFC 7672 §2.2): the records of _PORT._tcp.HOST, and the AD
// bit of the answer as "secure". Denials carry the bit too; SERVFAIL is a
// temporary error.
func TestTLSA(t *testing.T) {
	const sha = "8cb0fc6c527506a053f4f14c8464bebbd6dede2738d11468dd953d7d6a3021f1"
	d := startDNS(t,
		"_25._tcp.mx.signed.test. TLSA 3 1 1 "+sha,
		"_25._tcp.mx.signed.test. TLSA 2 0 1 "+sha,
		"_25._tcp.mx.plain.test. TLSA 3 1 1 "+sha,
		"_465._tcp.mx.alias.test. CNAME _25._tcp.mx.signed.test.",
		"_25._tcp.mx.broken.test. TLSA 3 1 1 "+sha,
		"mx.nodata.test. A 127.0.0.2",
		"_25._tcp.mx.nodata.test. A 127.0.0.2",
	)
	for _, name := range []string{"_25._tcp.mx.signed.test", "_465._tcp.mx.alias.test", "_25._tcp.mx.nodata.test", "_25._tcp.mx.none.test"} {
		d.SetAD(name, true)
	}
	d.SetRcode("_25._tcp.mx.broken.test", dns.RcodeServerFailure)
	r := &mx.Resolver{Server: d.Addr()}
	tests := []struct {
		host   string
		port   int
		want   string // records as "usage selector type hex", or "error"
		secure bool
	}{
		{"mx.signed.test", 25, "[3 1 1 " + sha + " 2 0 1 " + sha + "]", true},
		{"MX.Signed.Test.", 25, "[3 1 1 " + sha + " 2 0 1 " + sha + "]", true},
		{"mx.plain.test", 25, "[3 1 1 " + sha + "]", false},
		{"mx.alias.test", 465, "[3 1 1 " + sha + " 2 0 1 " + sha + "]", true},
		{"mx.nodata.test", 25, "[]", true},
		{"mx.none.test", 25, "[]", true},
		{"mx.signed.test", 587, "[]", false},
		{"mx.broken.test", 25, "error", false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s:%d", tt.host, tt.port), func(t *testing.T) {
			rrs, secure, err := r.TLSA(context.Background(), tt.host, tt.port)
			if tt.want == "error" {
				var me *mta.Error
				if !errors.As(err, &me) || me.Permanent {
					t.Fatalf("err = %v, want a temporary *mta.Error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := renderTLSA(rrs)
			if got != tt.want || secure != tt.secure {
				t.Errorf("TLSA = %s secure %v, want %s secure %v", got, secure, tt.want, tt.secure)
			}
		})
	}
}

// renderTLSA writes records as "[usage selector type hex ...]".
func renderTLSA(rrs []mx.TLSA) string {
	got := "["
	for i, rr := range rrs {
		if i > 0 {
			got += " "
		}
		got += fmt.Sprintf("%d %d %d %s", rr.Usage, rr.Selector, rr.MatchingType, hex.EncodeToString(rr.Data))
	}
	return got + "]"
}

// An MX host name that is a CNAME (RFC 7672 §2.2.2): when the expansion is
// secure (the AD bit on the answer that holds the chain), the TLSA records
// of the expanded name come first, and the original name's only when the
// expanded name has no authenticated ones; when it is not secure, only the
// original name's count, and the expanded name is not even asked.
func TestTLSACNAMEHost(t *testing.T) {
	const (
		provider = "1111111111111111111111111111111111111111111111111111111111111111"
		own      = "2222222222222222222222222222222222222222222222222222222222222222"
	)
	d := startDNS(t,
		// The provider's host, with its own signed TLSA records.
		"mx.provider.test. A 127.0.0.2",
		"_25._tcp.mx.provider.test. TLSA 3 1 1 "+provider,
		"mx.v6.provider.test. AAAA ::1",
		"_25._tcp.mx.v6.provider.test. TLSA 3 1 1 "+provider,
		"mx.bare.provider.test. A 127.0.0.2", // no TLSA records
		"mx.unsigned.provider.test. A 127.0.0.2",
		"_25._tcp.mx.unsigned.provider.test. TLSA 3 1 1 "+provider, // not authenticated
		"mx.other.provider.test. A 127.0.0.2",
		"_25._tcp.mx.other.provider.test. TLSA 3 1 1 "+provider,
		// Customers' MX host names pointing there, each with records of its own.
		"mx.secure.test. CNAME mx.provider.test.",
		"_25._tcp.mx.secure.test. TLSA 3 1 1 "+own,
		"mx.hops.test. CNAME mx.hop.test.",
		"mx.hop.test. CNAME mx.provider.test.",
		"mx.v6.test. CNAME mx.v6.provider.test.",
		"mx.bare.test. CNAME mx.bare.provider.test.",
		"_25._tcp.mx.bare.test. TLSA 3 1 1 "+own,
		"mx.unsigned.test. CNAME mx.unsigned.provider.test.",
		"_25._tcp.mx.unsigned.test. TLSA 3 1 1 "+own,
		"mx.insecure.test. CNAME mx.other.provider.test.",
		"_25._tcp.mx.insecure.test. TLSA 3 1 1 "+own,
		"mx.broken.test. CNAME mx.provider.test.",
	)
	for _, name := range []string{
		"mx.secure.test", "mx.hops.test", "mx.v6.test", "mx.bare.test", "mx.unsigned.test",
		"_25._tcp.mx.provider.test", "_25._tcp.mx.v6.provider.test", "_25._tcp.mx.bare.provider.test",
		"_25._tcp.mx.other.provider.test", "_25._tcp.mx.secure.test", "_25._tcp.mx.bare.test",
		"_25._tcp.mx.unsigned.test", "_25._tcp.mx.insecure.test",
	} {
		d.SetAD(name, true)
	}
	d.SetRcode("mx.broken.test", dns.RcodeServerFailure)
	r := &mx.Resolver{Server: d.Addr()}
	tests := []struct {
		name, host string
		want       string // records, or "error"
		secure     bool
		base       string // the records' TLSA base domain
		notAsked   string // a TLSA name that must not be queried
	}{
		{"secure expansion: the expanded name's records", "mx.secure.test", "[3 1 1 " + provider + "]", true, "mx.provider.test", ""},
		{"a chain of two CNAMEs", "mx.hops.test", "[3 1 1 " + provider + "]", true, "mx.provider.test", ""},
		{"the expanded name has only AAAA", "mx.v6.test", "[3 1 1 " + provider + "]", true, "mx.v6.provider.test", ""},
		{"the expanded name has no records: the original's", "mx.bare.test", "[3 1 1 " + own + "]", true, "mx.bare.test", ""},
		{"the expanded name's records are not authenticated: the original's", "mx.unsigned.test", "[3 1 1 " + own + "]", true, "mx.unsigned.test", ""},
		{"insecure expansion: only the original's", "MX.Insecure.Test.", "[3 1 1 " + own + "]", true, "mx.insecure.test", "_25._tcp.mx.other.provider.test"},
		{"the expansion fails", "mx.broken.test", "error", false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rrs, secure, err := r.TLSA(context.Background(), tt.host, 25)
			if tt.want == "error" {
				var me *mta.Error
				if !errors.As(err, &me) || me.Permanent {
					t.Fatalf("err = %v, want a temporary *mta.Error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := renderTLSA(rrs); got != tt.want || secure != tt.secure {
				t.Errorf("TLSA = %s secure %v, want %s secure %v", got, secure, tt.want, tt.secure)
			}
			for _, rr := range rrs {
				if rr.Base != tt.base {
					t.Errorf("TLSA base domain %q, want %q", rr.Base, tt.base)
				}
			}
			if tt.notAsked != "" && d.Queries(tt.notAsked, dns.TypeTLSA) != 0 {
				t.Errorf("%s TLSA was asked after an insecure expansion", tt.notAsked)
			}
		})
	}
}
