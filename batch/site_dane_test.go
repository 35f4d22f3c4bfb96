package batch

import (
	"fmt"
	"testing"

	"github.com/mxflush/mxflush/deliver"
	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/mx"
	"github.com/mxflush/mxflush/route"
)

// Two domains with the same MX host, one whose MX answer the resolver
// authenticated and one whose answer it did not, are two sites under
// --tls dane: DANE applies to the first only (RFC 7672 §2.2.1). The MX
// host's authenticated TLSA record does not match its certificate, so the
// first domain's mail is deferred, and the second's goes with
// opportunistic TLS; sharing sessions would give both the same fate.
func TestRunSitesSplitByMXAuthentication(t *testing.T) {
	ca, err := testnet.NewCA("batch dane root")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("mx.a.test")
	if err != nil {
		t.Fatal(err)
	}
	other, err := ca.Issue("mx.a.test")
	if err != nil {
		t.Fatal(err)
	}
	w := newTestWorld(t, testnet.SMTPOptions{TLS: testnet.ServerTLS(cert)},
		"secure.test. MX 10 mx.a.test.", "insecure.test. MX 10 mx.a.test.")
	owner := fmt.Sprintf("_%d._tcp.mx.a.test", w.cfg.Deliver.Port)
	line, err := testnet.TLSALine(owner, 3, 1, 1, other.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.dns.Add(line); err != nil {
		t.Fatal(err)
	}
	w.dns.SetAD(owner, true)
	w.dns.SetAD("secure.test", true)
	tab, err := route.New(route.Config{Resolver: w.cfg.Resolver.(*mx.Resolver), Port: w.cfg.Deliver.Port,
		TLS: deliver.TLSPolicy{Mode: deliver.TLSDANE}, TrustAD: true})
	if err != nil {
		t.Fatal(err)
	}
	w.cfg.Resolver = tab
	for i, d := range []string{"secure.test", "insecure.test"} {
		w.put(t, "new", fmt.Sprintf("m%d", i), fmt.Sprintf("X-Envelope-From: <alice@a.test>\nX-Envelope-To: <bob@%s>\nSubject: x\n\nhi\n", d))
	}
	sum := runLive(t, w.sp, w.cfg)
	if len(sum.Sites) != 2 {
		t.Errorf("sites %+v, want two", sum.Sites)
	}
	for _, row := range sum.Domains {
		switch row.Domain {
		case "secure.test":
			if row.Delivered != 0 || row.Deferred != 1 {
				t.Errorf("secure.test: delivered %d, deferred %d; want the message deferred (DANE, no matching record)", row.Delivered, row.Deferred)
			}
		case "insecure.test":
			if row.Delivered != 1 || row.TLS["TLSv1.3:unverified"] != 1 {
				t.Errorf("insecure.test: delivered %d, TLS %v; want the message sent with TLSv1.3:unverified (no DANE)", row.Delivered, row.TLS)
			}
		}
	}
	if got := w.recv.Messages(); len(got) != 1 || got[0].To[0] != "bob@insecure.test" {
		t.Errorf("received %+v, want insecure.test's message only", got)
	}
}
