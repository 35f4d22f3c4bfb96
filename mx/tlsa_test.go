package mx_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"

	"github.com/miekg/dns"

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
				var me *mx.Error
				if !errors.As(err, &me) || me.Permanent {
					t.Fatalf("err = %v, want a temporary *mx.Error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := "["
			for i, rr := range rrs {
				if i > 0 {
					got += " "
				}
				got += fmt.Sprintf("%d %d %d %s", rr.Usage, rr.Selector, rr.MatchingType, hex.EncodeToString(rr.Data))
			}
			got += "]"
			if got != tt.want || secure != tt.secure {
				t.Errorf("TLSA = %s secure %v, want %s secure %v", got, secure, tt.want, tt.secure)
			}
		})
	}
}
