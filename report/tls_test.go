package report

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mxflush/mxflush/batch"
)

// The log line and the summary say how each session was secured, and a
// configuration error (credentials refused) exits 78 even beside deferrals
// and failures.
func TestTLSReport(t *testing.T) {
	e := batch.Event{ID: "1", Rcpt: "bob@a.test", Relay: "mx.a.test[127.0.0.2]:25", Status: batch.Sent, DSN: "2.0.0",
		Reply: "250 2.0.0 Ok", TLS: "none", TLSNote: "TLS failed, sent without TLS: TLS handshake failed: EOF"}
	want := "mxflush[7]: 1: to=<bob@a.test>, relay=mx.a.test[127.0.0.2]:25, tls=none, delay=0.00, dsn=2.0.0, status=sent (250 2.0.0 Ok; TLS failed, sent without TLS: TLS handshake failed: EOF)"
	if got := LogLine(7, e); got != want {
		t.Errorf("LogLine =\n%s\nwant\n%s", got, want)
	}

	s := sample()
	s.Domains[0].TLS = map[string]int{"TLSv1.3:verified": 2, "none (TLS failed, sent without TLS)": 1}
	s.Domains = append(s.Domains, batch.DomainStats{Domain: "smtp:[relay.test]:587", Messages: 1, Recipients: 1, Deferred: 1,
		Error:       "temporary: AUTH: 4.7.8 relay.test[127.0.0.5]:587: relay.test[127.0.0.5]:587 refused the credentials",
		ConfigError: "relay.test[127.0.0.5]:587 refused the credentials"})
	var b bytes.Buffer
	if err := Text(&b, s, Of(s)); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"a.test: tls: TLSv1.3:verified x2, none (TLS failed, sent without TLS) x1\n",
		"exit 78: the configuration is wrong",
	} {
		if !strings.Contains(b.String(), line) {
			t.Errorf("summary lacks %q:\n%s", line, b.String())
		}
	}
	if ExitCode(s) != ExConfig {
		t.Errorf("ExitCode = %d, want 78", ExitCode(s))
	}
	s.Problems = []batch.Problem{{ID: "x", IOError: true}}
	if ExitCode(s) != ExIOErr {
		t.Errorf("with an I/O problem: ExitCode = %d, want 74", ExitCode(s))
	}
}
