package batch

import (
	"crypto/tls"
	"slices"
	"strings"
	"testing"

	"github.com/mxflush/mxflush/deliver"
	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/spool"
)

// Each session's security reaches the run's report: the summary row counts
// sessions by it, and each recipient's event carries it. A verified
// session is "TLSv1.3:verified"; when STARTTLS is offered but no handshake
// can succeed, the default policy (may) sends in cleartext in the same run
// and says why, and the encrypt policy defers, never sending in cleartext.
func TestRunReportsTLS(t *testing.T) {
	ca, err := testnet.NewCA("batch test root")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("mx.a.test")
	if err != nil {
		t.Fatal(err)
	}
	broken := testnet.ServerTLS(cert)
	broken.MaxVersion = tls.VersionTLS11 // deliver wants TLS 1.2 at least: every handshake fails
	for _, tc := range []struct {
		name   string
		server *tls.Config
		mode   string
		sent   bool
		label  string // the row's TLS key
	}{
		{"verified", testnet.ServerTLS(cert), "verify", true, "TLSv1.3:verified"},
		{"handshake fails, may", broken, "may", true, "none (TLS failed, sent without TLS)"},
		{"handshake fails, encrypt", broken, "encrypt", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, []string{"127.0.0.2"}, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
			r := w.receive("127.0.0.2", testnet.SMTPOptions{TLS: tc.server})
			mode, err := deliver.ParseTLSMode(tc.mode)
			if err != nil {
				t.Fatal(err)
			}
			w.cfg.Deliver.TLS = deliver.TLSPolicy{Mode: mode, Roots: ca.Pool()}
			w.putMsg("1.tls", "alice@example.test", "tls", "bob@a.test")
			sum := w.run()
			ev := w.outcomes("bob@a.test")
			if len(ev) != 1 {
				t.Fatalf("events %+v, want one for bob@a.test", ev)
			}
			if !tc.sent {
				if got := r.Messages(); len(got) != 0 || ev[0].Status != Deferred || !slices.Equal(w.files(spool.QueueCur), []string{"1.tls"}) {
					t.Errorf("received %d, event %+v, cur/ %v: want the message deferred, never sent in cleartext", len(got), ev[0], w.files(spool.QueueCur))
				}
				return
			}
			got := r.Messages()
			if len(got) != 1 || got[0].TLS != (tc.mode == "verify") || ev[0].Status != Sent {
				t.Fatalf("received %+v, event %+v: want the message once, over TLS only when verified", got, ev[0])
			}
			if row := rows(t, sum)["a.test"]; row.TLS[tc.label] != 1 || len(row.TLS) != 1 {
				t.Errorf("row TLS %v, want %q x1", row.TLS, tc.label)
			}
			switch tc.mode {
			case "verify":
				if ev[0].TLS != "TLSv1.3:verified" || ev[0].TLSNote != "" {
					t.Errorf("event TLS %q, note %q; want TLSv1.3:verified and no note", ev[0].TLS, ev[0].TLSNote)
				}
			case "may":
				if ev[0].TLS != "none" || !strings.HasPrefix(ev[0].TLSNote, "TLS failed, sent without TLS: ") {
					t.Errorf("event TLS %q, note %q; want none, with why TLS failed", ev[0].TLS, ev[0].TLSNote)
				}
			}
		})
	}
}

// A server that refuses the credentials is a configuration fault, not the
// mail's: the recipients are deferred (never bounced), and the row says
// why, so that flush exits 78 (EX_CONFIG).
func TestRunCredentialsRefusedIsConfigError(t *testing.T) {
	w := newWorld(t, []string{"127.0.0.2"}, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	r := w.receive("127.0.0.2", testnet.SMTPOptions{AuthUsers: map[string]string{"ci-robot": "right"}, InsecureAuth: true, AuthRequired: true})
	w.cfg.Deliver.Auth = func(string, int) *deliver.Auth {
		return &deliver.Auth{Username: "ci-robot", Password: "wrong", AllowInsecure: true}
	}
	w.putMsg("1.auth", "alice@example.test", "auth", "bob@a.test", "carol@a.test")
	sum := w.run()
	row := rows(t, sum)["a.test"]
	if row.Deferred != 2 || row.Failed != 0 || !strings.Contains(row.ConfigError, "refused the credentials") {
		t.Errorf("row %+v: want 2 deferred, none failed, and the configuration error", row)
	}
	if len(r.Messages()) != 0 || !slices.Equal(w.files(spool.QueueCur), []string{"1.auth"}) || len(w.files("failed")) != 0 {
		t.Errorf("received %d, cur/ %v, failed/ %v: want the message deferred", len(r.Messages()), w.files(spool.QueueCur), w.files("failed"))
	}
	for _, e := range w.outcomes("bob@a.test") {
		if strings.Contains(e.Reply, "wrong") {
			t.Errorf("the password is in the event: %+v", e)
		}
	}
}
