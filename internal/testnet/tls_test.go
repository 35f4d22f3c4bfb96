package testnet

import (
	"crypto/tls"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"
)

func testCert(t *testing.T) (*CA, tls.Certificate) {
	t.Helper()
	ca, err := NewCA("testnet root")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("mx.test", "127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	return ca, cert
}

// A STARTTLS receiver: commands are recorded until STARTTLS, sessions
// before and after it are told apart, AUTH is checked and recorded without
// the password, and MAIL before AUTH gets 530.
func TestReceiverSTARTTLSAuth(t *testing.T) {
	ca, cert := testCert(t)
	r := startSMTP(t, "127.0.0.2:0", SMTPOptions{TLS: ServerTLS(cert), AuthUsers: map[string]string{"u": "pw"}, AuthRequired: true})
	conn, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c, err := smtp.NewClientStartTLS(conn, &tls.Config{RootCAs: ca.Pool(), ServerName: "mx.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("a@a.test", nil); err == nil || !strings.Contains(err.Error(), "Authentication required") {
		t.Errorf("MAIL before AUTH: %v, want 530", err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "u", "wrong")); err == nil {
		t.Error("wrong password accepted")
	}
	if err := c.Auth(sasl.NewPlainClient("", "u", "pw")); err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("a@a.test", []string{"b@b.test"}, strings.NewReader("Subject: x\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	if got := r.Commands(); !slices.Equal(got, []string{"EHLO localhost", "STARTTLS"}) {
		t.Errorf("Commands %q: want the cleartext ones only", got)
	}
	if h := r.Hellos(); len(h) != 2 || h[0].TLS || !h[1].TLS || h[1].Version != tls.VersionTLS13 || h[1].Session != 1 {
		t.Errorf("Hellos %+v", h)
	}
	want := []AuthAttempt{{Session: 1, Mech: "PLAIN", User: "u", TLS: true}, {Session: 1, Mech: "PLAIN", User: "u", OK: true, TLS: true}}
	if got := r.Auths(); !slices.Equal(got, want) {
		t.Errorf("Auths %+v, want %+v", got, want)
	}
	if m := r.Messages(); len(m) != 1 || !m[0].TLS || m[0].Session != 1 {
		t.Errorf("Messages %+v", m)
	}
}

// An implicit TLS receiver speaks TLS from the first byte and records no
// cleartext command; AUTH is not offered in cleartext without InsecureAuth.
func TestReceiverImplicitTLS(t *testing.T) {
	ca, cert := testCert(t)
	r := startSMTP(t, "127.0.0.2:0", SMTPOptions{TLS: ServerTLS(cert), ImplicitTLS: true})
	c, err := smtp.DialTLS(r.Addr(), &tls.Config{RootCAs: ca.Pool(), ServerName: "mx.test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("a@a.test", []string{"b@b.test"}, strings.NewReader("x\r\n")); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	if got := r.Commands(); len(got) != 0 {
		t.Errorf("Commands %q, want none", got)
	}
	if m := r.Messages(); len(m) != 1 || !m[0].TLS {
		t.Errorf("Messages %+v", m)
	}
	plain := startSMTP(t, "127.0.0.2:0", SMTPOptions{AuthUsers: map[string]string{"u": "pw"}})
	pc, err := smtp.Dial(plain.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := pc.Hello("relay.test"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := pc.Extension("AUTH"); ok {
		t.Error("AUTH offered in cleartext without InsecureAuth")
	}
}

// SetAD marks a name's answers as authenticated, but only for a query
// that asks with AD or DO, as a validating resolver answers (RFC 6840
// §5.7, §5.8).
func TestDNSSetAD(t *testing.T) {
	d := startTestDNS(t, "_25._tcp.mx.a.test. TLSA 3 1 1 00", "mx.a.test. A 127.0.0.2")
	d.SetAD("_25._tcp.mx.a.test", true)
	askAD := func(network, name string, qtype uint16, ad, do bool) *dns.Msg {
		t.Helper()
		q := new(dns.Msg)
		q.SetQuestion(dns.Fqdn(name), qtype)
		q.AuthenticatedData = ad
		q.SetEdns0(4096, do)
		in, _, err := (&dns.Client{Net: network, Timeout: 2 * time.Second}).Exchange(q, d.Addr())
		if err != nil {
			t.Fatalf("%s %s over %s: %v", name, dns.TypeToString[qtype], network, err)
		}
		return in
	}
	for _, q := range []struct{ ad, do bool }{{true, false}, {false, true}, {true, true}} {
		if in := askAD("udp", "_25._tcp.mx.a.test", dns.TypeTLSA, q.ad, q.do); !in.AuthenticatedData || len(in.Answer) != 1 {
			t.Errorf("query AD %v DO %v: answer AD %v, %d answers; want AD and the record", q.ad, q.do, in.AuthenticatedData, len(in.Answer))
		}
	}
	if in := askAD("udp", "_25._tcp.mx.a.test", dns.TypeTLSA, false, false); in.AuthenticatedData || len(in.Answer) != 1 {
		t.Errorf("query without AD or DO: answer AD %v, %d answers; want the record without AD", in.AuthenticatedData, len(in.Answer))
	}
	if in := askAD("tcp", "mx.a.test", dns.TypeA, true, true); in.AuthenticatedData {
		t.Error("AD set on a name without SetAD")
	}
	d.SetAD("_25._tcp.mx.a.test", false)
	if in := askAD("udp", "_25._tcp.mx.a.test", dns.TypeTLSA, true, true); in.AuthenticatedData {
		t.Error("AD still set after SetAD(false)")
	}
}
