package deliver

import (
	"context"
	"crypto/tls"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/mta"
)

// pki holds the certificates of the TLS tests: ca is trusted (Roots),
// other is not.
type pki struct {
	ca, other                           *testnet.CA
	good, wrongName, expired, untrusted tls.Certificate
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	p := &pki{}
	var err error
	must := func(e error) {
		if e != nil {
			t.Fatal(e)
		}
	}
	p.ca, err = testnet.NewCA("mxflush test root")
	must(err)
	p.other, err = testnet.NewCA("someone else's root")
	must(err)
	p.good, err = p.ca.Issue("mx.b.test", "127.0.0.2")
	must(err)
	p.wrongName, err = p.ca.Issue("other.b.test")
	must(err)
	p.expired, err = p.ca.IssueExpired("mx.b.test", "127.0.0.2")
	must(err)
	p.untrusted, err = p.other.Issue("mx.b.test", "127.0.0.2")
	must(err)
	return p
}

// tlsOpts is opts with a TLS policy that trusts p.ca.
func tlsOpts(port int, p *pki, mode TLSMode) Options {
	o := opts(port)
	o.TLS = TLSPolicy{Mode: mode, Roots: p.ca.Pool()}
	return o
}

func sendOne(t testing.TB, s *Session) []Result {
	t.Helper()
	rs, err := s.Send(context.Background(), message("alice@a.test", []string{"bob@b.test"}, text("Subject: t\n\nhi\n"), 20))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	return rs
}

// wantTemp checks that err is a temporary *mta.Error whose Status starts with
// prefix: a TLS failure under a required policy defers, never bounces.
func wantTemp(t testing.TB, err error, prefix string) *mta.Error {
	t.Helper()
	var e *mta.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v, want *mta.Error", err)
	}
	if e.Permanent || !strings.HasPrefix(e.Status, prefix) {
		t.Errorf("err = %v (status %s, permanent %v), want temporary %s", e, e.Status, e.Permanent, prefix)
	}
	return e
}

// Each policy against go-smtp receivers with and without STARTTLS and
// with good and bad certificates: what is accepted, what the session
// reports, and the EHLO name before and after TLS.
func TestTLSPolicy(t *testing.T) {
	p := newPKI(t)
	tests := []struct {
		name     string
		mode     TLSMode
		implicit bool
		cert     *tls.Certificate // nil: no TLS offered
		srvTLS   bool             // receiver on implicit TLS
		host     string
		want     string // Token, or "error 4.7.x"
	}{
		{name: "none ignores STARTTLS", mode: TLSNone, cert: &p.good, want: "none"},
		{name: "may without STARTTLS", mode: TLSMay, want: "none"},
		{name: "may verified", mode: TLSMay, cert: &p.good, want: "TLSv1.3:verified"},
		{name: "may wrong name", mode: TLSMay, cert: &p.wrongName, want: "TLSv1.3:unverified"},
		{name: "may expired", mode: TLSMay, cert: &p.expired, want: "TLSv1.3:unverified"},
		{name: "encrypt without STARTTLS", mode: TLSEncrypt, want: "error 4.7.4"},
		{name: "encrypt untrusted", mode: TLSEncrypt, cert: &p.untrusted, want: "TLSv1.3:unverified"},
		{name: "verify good", mode: TLSVerify, cert: &p.good, want: "TLSv1.3:verified"},
		{name: "verify without STARTTLS", mode: TLSVerify, want: "error 4.7.4"},
		{name: "verify wrong name", mode: TLSVerify, cert: &p.wrongName, want: "error 4.7.5"},
		{name: "verify expired", mode: TLSVerify, cert: &p.expired, want: "error 4.7.5"},
		{name: "verify untrusted root", mode: TLSVerify, cert: &p.untrusted, want: "error 4.7.5"},
		{name: "verify address literal by IP SAN", mode: TLSVerify, cert: &p.good, host: "[127.0.0.2]", want: "TLSv1.3:verified"},
		{name: "implicit verify", mode: TLSVerify, implicit: true, cert: &p.good, srvTLS: true, want: "TLSv1.3:verified"},
		{name: "implicit may is still TLS", mode: TLSMay, implicit: true, cert: &p.wrongName, srvTLS: true, want: "TLSv1.3:unverified"},
		{name: "implicit against cleartext", mode: TLSMay, implicit: true, want: "error 4.7.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := freePort(t, "127.0.0.2")
			so := testnet.SMTPOptions{ImplicitTLS: tt.srvTLS}
			if tt.cert != nil {
				so.TLS = testnet.ServerTLS(*tt.cert)
			}
			r := startReceiver(t, "127.0.0.2", port, so)
			o := tlsOpts(port, p, tt.mode)
			o.TLS.Implicit = tt.implicit
			name := tt.host
			if name == "" {
				name = "mx.b.test"
			}
			s, err := Dial(context.Background(), []mta.Host{host(name, "127.0.0.2")}, o)
			if code, ok := strings.CutPrefix(tt.want, "error "); ok {
				if err == nil {
					s.Close()
					t.Fatalf("Dial succeeded with TLS %s, want an error %s", s.TLS().Token(), code)
				}
				wantTemp(t, err, code)
				if cmds := r.Commands(); slices.ContainsFunc(cmds, func(c string) bool { return strings.HasPrefix(c, "MAIL") }) {
					t.Errorf("MAIL sent in cleartext: %q", cmds)
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
			msgs := r.Messages()
			if len(msgs) != 1 || msgs[0].TLS != (tt.want != "none") {
				t.Fatalf("received %d messages (TLS %v), want 1 with TLS %v", len(msgs), len(msgs) > 0 && msgs[0].TLS, tt.want != "none")
			}
			// The --helo name, and only it, before and after TLS.
			for _, h := range r.Hellos() {
				if h.Name != "relay.a.test" {
					t.Errorf("EHLO %q (TLS %v), want relay.a.test", h.Name, h.TLS)
				}
			}
			cmds := r.Commands()
			switch {
			case tt.srvTLS:
				if len(cmds) != 0 {
					t.Errorf("cleartext commands on an implicit TLS port: %q", cmds)
				}
			case tt.want != "none":
				if want := []string{"EHLO relay.a.test", "STARTTLS"}; !slices.Equal(cmds, want) {
					t.Errorf("cleartext commands %q, want %q and then nothing", cmds, want)
				}
			default:
				if n := countPrefix(cmds, "EHLO"); n != 1 || slices.Contains(cmds, "STARTTLS") {
					t.Errorf("cleartext commands %q: want one EHLO and no STARTTLS", cmds)
				}
			}
		})
	}
}

func countPrefix(list []string, prefix string) int {
	n := 0
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

// The exact transcript of a STARTTLS session: EHLO with the --helo name,
// STARTTLS, the handshake, a fresh EHLO with the same name (RFC 3207
// §4.2), then the transaction.
func TestSTARTTLSTranscript(t *testing.T) {
	p := newPKI(t)
	port := freePort(t, "127.0.0.2")
	f := &fake{tls: testnet.ServerTLS(p.good)}
	startFake(t, "127.0.0.2", port, f)
	s := dial(t, tlsOpts(port, p, TLSVerify), host("mx.b.test", "127.0.0.2"))
	wantOutcomes(t, sendOne(t, s), map[string]string{"bob@b.test": "sent"})
	got := f.commands()
	want := []string{"EHLO relay.a.test", "STARTTLS", "<tls>", "EHLO relay.a.test", "MAIL FROM:<alice@a.test> BODY=8BITMIME SIZE=18", "RCPT TO:<bob@b.test>", "DATA"}
	if !slices.Equal(got, want) {
		t.Errorf("transcript\n got %q\nwant %q", got, want)
	}
}
