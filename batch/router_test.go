package batch

import (
	"slices"
	"testing"

	"github.com/mxflush/mxflush/deliver"
	"github.com/mxflush/mxflush/internal/testnet"
)

// hopRouter sends x.test and y.test to the next hop "hop.test" (resolved
// in DNS as any domain), with its own EHLO name; other domains go to
// their own MX.
type hopRouter struct {
	Resolver
}

func (hopRouter) Hop(domain string) string {
	if domain == "x.test" || domain == "y.test" {
		return "hop.test"
	}
	return domain
}

func (hopRouter) Relay(key string) bool { return key == "hop.test" }

func (hopRouter) Conns(string) int { return 0 }

func (hopRouter) Options(hop string, base deliver.Options) deliver.Options {
	if hop == "hop.test" {
		base.Helo = "via-hop.test"
	}
	return base
}

// With a Router, domains that share a next hop share one batch and one
// session, dialled with the hop's options; a message to two of them is one
// transaction; the summary row is the hop's. A domain with its own hop
// keeps its own row and the default options.
func TestRunRouterSharesHop(t *testing.T) {
	w := newWorld(t, []string{"127.0.0.2", "127.0.0.3"},
		"hop.test. MX 10 mx.hop.test.", "mx.hop.test. A 127.0.0.2",
		"z.test. MX 10 mx.z.test.", "mx.z.test. A 127.0.0.3")
	hop := w.receive("127.0.0.2", testnet.SMTPOptions{})
	own := w.receive("127.0.0.3", testnet.SMTPOptions{})
	w.cfg.Resolver = hopRouter{w.cfg.Resolver}
	w.putMsg("1.both", "alice@example.test", "both", "a@x.test", "b@y.test", "c@z.test")
	w.putMsg("2.x", "alice@example.test", "x", "d@x.test")
	sum := w.run()
	if sum.Totals.Delivered != 4 || sum.Totals.Deferred+sum.Totals.Failed != 0 {
		t.Fatalf("totals %+v, want all 4 delivered", sum.Totals)
	}
	got := hop.Messages()
	if hop.Sessions() != 1 || len(got) != 2 || !slices.Equal(got[0].To, []string{"a@x.test", "b@y.test"}) || !slices.Equal(got[1].To, []string{"d@x.test"}) {
		t.Errorf("the hop got %+v over %d sessions, want the message to x.test and y.test as one transaction, then 2.x, over one session", got, hop.Sessions())
	}
	for _, m := range got {
		if m.Helo != "via-hop.test" {
			t.Errorf("EHLO %q to the hop, want the hop's via-hop.test", m.Helo)
		}
	}
	if m := own.Messages(); len(m) != 1 || m[0].Helo != "relay.test" || !slices.Equal(m[0].To, []string{"c@z.test"}) {
		t.Errorf("z.test got %+v, want c@z.test with the default EHLO name", m)
	}
	rs := rows(t, sum)
	if r := rs["hop.test"]; len(rs) != 2 || r.Messages != 2 || r.Recipients != 3 || r.Connections != 1 {
		t.Errorf("rows %+v, want hop.test with 2 messages, 3 recipients over 1 connection, and z.test", rs)
	}
	for _, e := range w.events {
		if want := map[string]string{"a@x.test": "hop.test", "b@y.test": "hop.test", "d@x.test": "hop.test", "c@z.test": "z.test"}[e.Rcpt]; e.Domain != want {
			t.Errorf("%s reported in batch %q, want %q", e.Rcpt, e.Domain, want)
		}
	}
}
