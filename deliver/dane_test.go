package deliver

import (
	"context"
	"crypto/sha512"
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/mta"
)

// DANE (RFC 7672) with TLSA answers given directly: which records make TLS
// required, which certificates they accept, and when DANE falls back. The
// DNS side (the AD bit) is tested in mx and end to end.
func TestDANE(t *testing.T) {
	p := newPKI(t)
	ta := func(sel, mt uint8) TLSA {
		r := TLSA{Usage: 2, Selector: sel, MatchingType: mt}
		data := p.ca.Cert.Raw
		if sel == 1 {
			data = p.ca.Cert.RawSubjectPublicKeyInfo
		}
		switch mt {
		case 0:
			r.Data = data
		case 2:
			sum := sha512.Sum512(data)
			r.Data = sum[:]
		}
		return r
	}
	withBase := func(r TLSA, base string) TLSA { r.Base = base; return r }
	full := TLSA{Usage: 3, Selector: 0, MatchingType: 0, Data: p.wrongName.Leaf.Raw}
	tests := []struct {
		name   string
		rrs    []TLSA
		secure bool
		err    error
		cert   *tls.Certificate // nil: no STARTTLS
		want   string           // Token, or "error STATUS"
	}{
		{name: "DANE-EE matches, names not checked", rrs: []TLSA{eeRecord(p.wrongName)}, secure: true, cert: &p.wrongName, want: "TLSv1.3:dane"},
		{name: "DANE-EE whole certificate, exact", rrs: []TLSA{full}, secure: true, cert: &p.wrongName, want: "TLSv1.3:dane"},
		{name: "DANE-EE mismatch", rrs: []TLSA{eeRecord(p.untrusted)}, secure: true, cert: &p.good, want: "error 4.7.5"},
		{name: "DANE-TA matches the root", rrs: []TLSA{ta(0, 0)}, secure: true, cert: &p.good, want: "TLSv1.3:dane"},
		{name: "DANE-TA by SPKI SHA-512", rrs: []TLSA{ta(1, 2)}, secure: true, cert: &p.good, want: "TLSv1.3:dane"},
		{name: "DANE-TA, leaf for another name", rrs: []TLSA{ta(0, 0)}, secure: true, cert: &p.wrongName, want: "error 4.7.5"},
		{name: "DANE-TA, leaf for the name the host's CNAME led to", rrs: []TLSA{withBase(ta(0, 0), "other.b.test")}, secure: true, cert: &p.wrongName, want: "TLSv1.3:dane"},
		{name: "DANE-TA, leaf for neither the host nor the CNAME's target", rrs: []TLSA{withBase(ta(0, 0), "mx.provider.test")}, secure: true, cert: &p.wrongName, want: "error 4.7.5"},
		{name: "DANE-TA, expired leaf", rrs: []TLSA{ta(0, 0)}, secure: true, cert: &p.expired, want: "error 4.7.5"},
		{name: "one of two records matches", rrs: []TLSA{eeRecord(p.untrusted), eeRecord(p.good)}, secure: true, cert: &p.good, want: "TLSv1.3:dane"},
		{name: "usable record, no STARTTLS", rrs: []TLSA{eeRecord(p.good)}, secure: true, want: "error 4.7.4"},
		{name: "not authenticated: may, any certificate", rrs: []TLSA{eeRecord(p.untrusted)}, cert: &p.wrongName, want: "TLSv1.3:unverified"},
		{name: "not authenticated: may, cleartext", rrs: []TLSA{eeRecord(p.good)}, want: "none"},
		{name: "authenticated denial: may", secure: true, want: "none"},
		{name: "only unusable records: TLS required", rrs: []TLSA{{Usage: 1, Selector: 1, MatchingType: 1, Data: []byte{1}}}, secure: true, want: "error 4.7.4"},
		{name: "only unusable records: any certificate", rrs: []TLSA{{Usage: 3, Selector: 7, MatchingType: 1}}, secure: true, cert: &p.wrongName, want: "TLSv1.3:unverified"},
		{name: "lookup fails: host unusable", err: errors.New("SERVFAIL"), cert: &p.good, want: "error 4.7.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := freePort(t, "127.0.0.2")
			so := testnet.SMTPOptions{}
			if tt.cert != nil {
				so.TLS = testnet.ServerTLS(*tt.cert)
			}
			r := startReceiver(t, "127.0.0.2", port, so)
			o := tlsOpts(port, p, TLSDANE)
			var asked []string
			o.TLS.LookupTLSA = func(_ context.Context, h string, port int) ([]TLSA, bool, error) {
				asked = append(asked, addrOf(h, port))
				return tt.rrs, tt.secure, tt.err
			}
			s, err := Dial(context.Background(), []mta.Host{host("mx.b.test", "127.0.0.2")}, o)
			if want := addrOf("mx.b.test", port); len(asked) != 1 || asked[0] != want {
				t.Errorf("TLSA lookups %q, want one for %s", asked, want)
			}
			if code, ok := strings.CutPrefix(tt.want, "error "); ok {
				if err == nil {
					s.Close()
					t.Fatalf("Dial succeeded with TLS %s, want an error %s", s.TLS().Token(), code)
				}
				wantTemp(t, err, code)
				if tt.err != nil && r.Sessions() != 0 {
					t.Errorf("%d connections to a host whose TLSA lookup failed", r.Sessions())
				}
				return
			}
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer s.Close()
			if got := s.TLS().Token(); got != tt.want {
				t.Errorf("TLS %s, want %s", got, tt.want)
			}
			wantOutcomes(t, sendOne(t, s), map[string]string{"bob@b.test": "sent"})
		})
	}
}

// RFC 7672 §2.2.1: a host that an insecure DNS answer named (an MX answer
// without the AD bit) gets no DANE: its TLSA records, authenticated and
// not matching here, are not even looked up, and the policy is dane's
// fallback, may (TLS with any certificate, cleartext when not offered;
// implicit TLS stays TLS). Beside it a host from an authenticated answer
// still gets DANE.
func TestDANEInsecureHost(t *testing.T) {
	p := newPKI(t)
	tests := []struct {
		name     string
		cert     *tls.Certificate // nil: no STARTTLS
		implicit bool
		want     string // Token
	}{
		{name: "STARTTLS, any certificate", cert: &p.wrongName, want: "TLSv1.3:unverified"},
		{name: "no STARTTLS: cleartext", want: "none"},
		{name: "implicit TLS, any certificate", cert: &p.wrongName, implicit: true, want: "TLSv1.3:unverified"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := freePort(t, "127.0.0.2")
			so := testnet.SMTPOptions{ImplicitTLS: tt.implicit}
			if tt.cert != nil {
				so.TLS = testnet.ServerTLS(*tt.cert)
			}
			startReceiver(t, "127.0.0.2", port, so)
			o := tlsOpts(port, p, TLSDANE)
			o.TLS.Implicit = tt.implicit
			var asked []string
			o.TLS.LookupTLSA = func(_ context.Context, h string, port int) ([]TLSA, bool, error) {
				asked = append(asked, addrOf(h, port))
				return []TLSA{eeRecord(p.untrusted)}, true, nil
			}
			h := host("mx.b.test", "127.0.0.2")
			h.Insecure = true
			s, err := Dial(context.Background(), []mta.Host{h}, o)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer s.Close()
			if len(asked) != 0 {
				t.Errorf("TLSA lookups %q for a host from an insecure answer, want none", asked)
			}
			if got := s.TLS().Token(); got != tt.want {
				t.Errorf("TLS %s, want %s", got, tt.want)
			}
			wantOutcomes(t, sendOne(t, s), map[string]string{"bob@b.test": "sent"})
		})
	}

	// The same records for a host from an authenticated answer: DANE, and
	// they do not match.
	port := freePort(t, "127.0.0.2")
	startReceiver(t, "127.0.0.2", port, testnet.SMTPOptions{TLS: testnet.ServerTLS(p.wrongName)})
	o := tlsOpts(port, p, TLSDANE)
	o.TLS.LookupTLSA = func(context.Context, string, int) ([]TLSA, bool, error) {
		return []TLSA{eeRecord(p.untrusted)}, true, nil
	}
	if s, err := Dial(context.Background(), []mta.Host{host("mx.b.test", "127.0.0.2")}, o); err == nil {
		s.Close()
		t.Fatalf("Dial succeeded with TLS %s for a secure host whose TLSA records do not match", s.TLS().Token())
	} else {
		wantTemp(t, err, "4.7.5")
	}
}
