package deliver

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/mta"
)

// A failed STARTTLS, in every form: every way a TLS step can fail, under each
// policy. Under may the message is sent in cleartext in the same Dial: on the
// same connection after a refused STARTTLS, on a new one (without STARTTLS)
// after a failure during or after the handshake. Under encrypt and verify
// nothing goes in cleartext and the error is temporary.
func TestSTARTTLSFailures(t *testing.T) {
	p := newPKI(t)
	reply220 := "220 2.0.0 ready to start TLS\r\n"
	kinds := []struct {
		name  string
		setup func(f *fake)
		// under may: the note on the session, and the connections used
		note  string
		conns int
		// under the other policies: the status of the temporary error
		status string
		detail string // under may: in TLSState.Detail
	}{
		{name: "STARTTLS not offered", setup: func(f *fake) {}, conns: 1, status: "4.7.4"},
		{name: "454 to STARTTLS", setup: func(f *fake) {
			f.ehlo = []string{"250-fake.b.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n"}
			f.reply = func(cmd string) string {
				if cmd == "STARTTLS" {
					return "454 4.7.0 TLS not available due to temporary reason"
				}
				return ""
			}
		}, note: "STARTTLS refused, sent without TLS", conns: 1, status: "4.7.0", detail: "454 4.7.0"},
		{name: "502 to STARTTLS", setup: func(f *fake) {
			f.ehlo = []string{"250-fake.b.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n"}
			f.reply = func(cmd string) string {
				if cmd == "STARTTLS" {
					return "502 5.5.1 not implemented after all"
				}
				return ""
			}
		}, note: "STARTTLS refused, sent without TLS", conns: 1, status: "4.5.1"},
		{name: "close instead of a reply to STARTTLS", setup: func(f *fake) {
			f.tls = testnet.ServerTLS(p.good)
			f.starttls = func(net.Conn, *bufio.Reader) {}
		}, note: "TLS failed, sent without TLS", conns: 2, status: "4.4.2"},
		{name: "220 then close mid-handshake", setup: func(f *fake) {
			f.tls = testnet.ServerTLS(p.good)
			f.starttls = func(c net.Conn, br *bufio.Reader) {
				io.WriteString(c, reply220)
				br.Peek(5) // the start of the ClientHello
			}
		}, note: "TLS failed, sent without TLS", conns: 2, status: "4.7.5", detail: "connection closed by the server"},
		{name: "220 then plaintext garbage", setup: func(f *fake) {
			f.tls = testnet.ServerTLS(p.good)
			f.starttls = func(c net.Conn, br *bufio.Reader) {
				io.WriteString(c, reply220)
				time.Sleep(20 * time.Millisecond)
				io.WriteString(c, "500 5.5.1 this is not TLS at all\r\n")
				io.Copy(io.Discard, br)
			}
		}, note: "TLS failed, sent without TLS", conns: 2, status: "4.7.5", detail: "first record does not look like a TLS handshake"},
		{name: "data pipelined after 220 (response injection)", setup: func(f *fake) {
			f.tls = testnet.ServerTLS(p.good)
			f.starttls = func(c net.Conn, br *bufio.Reader) {
				io.WriteString(c, reply220+"250-injected\r\n250 AUTH PLAIN\r\n")
				io.Copy(io.Discard, br)
			}
		}, note: "TLS failed, sent without TLS", conns: 2, status: "4.7.5", detail: "sent data after its 220"},
		{name: "no common protocol version", setup: func(f *fake) {
			cfg := testnet.ServerTLS(p.good)
			cfg.MaxVersion = tls.VersionTLS11
			f.tls = cfg
		}, note: "TLS failed, sent without TLS", conns: 2, status: "4.7.5", detail: "protocol version"},
		{name: "TLS up, then the connection drops at EHLO", setup: func(f *fake) {
			f.tls = testnet.ServerTLS(p.good)
			f.ehloTLS = []string{"<close>"}
		}, note: "TLS failed, sent without TLS", conns: 2, status: "4.4.2"},
	}
	for _, k := range kinds {
		for _, mode := range []TLSMode{TLSMay, TLSEncrypt, TLSVerify, TLSDANE} {
			t.Run(k.name+"/"+mode.String(), func(t *testing.T) {
				port := freePort(t, "127.0.0.2")
				f := &fake{}
				k.setup(f)
				sc := startFake(t, "127.0.0.2", port, f)
				o := tlsOpts(port, p, mode)
				// DANE with a usable record that would match: the failure
				// is in TLS itself, before any certificate.
				o.TLS.LookupTLSA = staticTLSA([]TLSA{eeRecord(p.good)}, true, nil)
				s, err := Dial(context.Background(), []mta.Host{host("mx.b.test", "127.0.0.2")}, o)
				if mode != TLSMay {
					if err == nil {
						s.Close()
						t.Fatalf("Dial succeeded (TLS %s); want a temporary error", s.TLS().Token())
					}
					wantTemp(t, err, k.status)
					if cmds := f.commands(); slices.ContainsFunc(cmds, func(c string) bool { return strings.HasPrefix(c, "MAIL") }) {
						t.Errorf("MAIL sent without TLS: %q", cmds)
					}
					if n := sc.Sessions(); n != 1 {
						t.Errorf("%d connections, want 1 (no cleartext retry)", n)
					}
					return
				}
				if err != nil {
					t.Fatalf("Dial: %v; want delivery in cleartext", err)
				}
				defer s.Close()
				st := s.TLS()
				if st.Token() != "none" || st.Note != k.note {
					t.Errorf("TLS %s, note %q; want none, %q", st.Token(), st.Note, k.note)
				}
				if k.note != "" && (st.Detail == "" || !strings.Contains(st.Detail, k.detail)) {
					t.Errorf("detail %q, want one with %q", st.Detail, k.detail)
				}
				wantOutcomes(t, sendOne(t, s), map[string]string{"bob@b.test": "sent"})
				if n := sc.Sessions(); n != k.conns {
					t.Errorf("%d connections, want %d", n, k.conns)
				}
				// The mail went in cleartext: after the last EHLO before MAIL
				// there is no handshake, and on a new connection no STARTTLS.
				cmds := f.commands()
				mail := slices.IndexFunc(cmds, func(c string) bool { return strings.HasPrefix(c, "MAIL") })
				ehlo := -1
				for i, c := range cmds[:max(mail, 0)] {
					if strings.HasPrefix(c, "EHLO ") {
						ehlo = i
					}
				}
				if ehlo < 0 {
					t.Fatalf("commands %q: no EHLO before MAIL", cmds)
				}
				between := cmds[ehlo:mail]
				if slices.Contains(between, "<tls>") || (k.conns == 2 && slices.Contains(between, "STARTTLS")) {
					t.Errorf("commands %q: the mail did not go in cleartext on a plain session", cmds)
				}
			})
		}
	}
}

// staticTLSA is a LookupTLSA that always answers the same.
func staticTLSA(rrs []TLSA, secure bool, err error) func(context.Context, string, int) ([]TLSA, bool, error) {
	return func(context.Context, string, int) ([]TLSA, bool, error) { return rrs, secure, err }
}

// eeRecord is the DANE-EE SPKI SHA-256 record (3 1 1) of a certificate.
func eeRecord(c tls.Certificate) TLSA {
	sum := sha256.Sum256(c.Leaf.RawSubjectPublicKeyInfo)
	return TLSA{Usage: 3, Selector: 1, MatchingType: 1, Data: sum[:]}
}
