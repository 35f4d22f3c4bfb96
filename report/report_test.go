package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mxflush/mxflush/batch"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func sample() *batch.Summary {
	s := &batch.Summary{
		Started: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC),
		Seconds: 1.5,
		Domains: []batch.DomainStats{
			{Domain: "a.test", Site: "mx.a.test", MX: []string{"mx.a.test[127.0.0.2]"}, Relay: "mx.a.test[127.0.0.2]:25", Messages: 3, Recipients: 4, Delivered: 3, Deferred: 1, Connections: 1, Seconds: 0.25},
			{Domain: "b.test", Site: "mx.shared.test", MX: []string{"mx.shared.test[127.0.0.3]"}, Relay: "mx.shared.test[127.0.0.3]:25", Messages: 2, Recipients: 2, Delivered: 2, Seconds: 0.5},
			{Domain: "c.test", Site: "mx.shared.test", MX: []string{"mx.shared.test[127.0.0.3]"}, Relay: "mx.shared.test[127.0.0.3]:25", Messages: 1, Recipients: 1, Delivered: 1, Seconds: 0.5},
			{Domain: "d.test", Site: "mx.down.test", MX: []string{"mx.down.test[127.0.0.4]"}, Messages: 1, Recipients: 1, Deferred: 1, Error: "connect: 4.4.1 all MX hosts failed (last: mx.down.test[127.0.0.4]:25: connection refused)"},
			{Domain: "e.test", Site: "mx.down.test", MX: []string{"mx.down.test[127.0.0.4]"}, Messages: 1, Recipients: 1, Deferred: 1, Error: "connect: 4.4.1 all MX hosts failed (last: mx.down.test[127.0.0.4]:25: connection refused)"},
			{Domain: "nullmx.test", Messages: 1, Recipients: 1, Failed: 1, Error: "permanent: nullmx.test: DNS: 556 5.1.10 domain has a null MX (RFC 7505): it accepts no mail"},
		},
		Sites: []batch.SiteStats{
			{Name: "mx.a.test", Domains: []string{"a.test"}, MX: []string{"mx.a.test[127.0.0.2]"}, Messages: 3, Sessions: 1, Connections: 1, Seconds: 0.25},
			{Name: "mx.shared.test", Domains: []string{"b.test", "c.test"}, MX: []string{"mx.shared.test[127.0.0.3]"}, Messages: 2, Sessions: 1, Connections: 2, Seconds: 0.5, TLS: map[string]int{"TLSv1.3:unverified": 2}, CopiesSaved: 1},
			{Name: "mx.down.test", Domains: []string{"d.test", "e.test"}, MX: []string{"mx.down.test[127.0.0.4]"}, Messages: 2, Sessions: 1},
		},
		NotDue: 2,
	}
	s.Totals = batch.DomainStats{Domain: "total", Messages: 9, Recipients: 10, Delivered: 6, Deferred: 3, Failed: 1, Connections: 3}
	return s
}

// golden compares got with testdata/name, writing name.got beside it on a
// mismatch (and the file itself under -update).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		os.WriteFile(path, got, 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		os.WriteFile(path+".got", got, 0o644)
		t.Errorf("%s differs from the golden file; see %s.got\n%s", name, path, got)
	}
}

func TestText(t *testing.T) {
	var b bytes.Buffer
	if err := Text(&b, sample(), Of(sample())); err != nil {
		t.Fatal(err)
	}
	golden(t, "summary.txt", b.Bytes())

	dry := sample()
	dry.DryRun = true
	for i := range dry.Domains { // a dry run counts no outcomes
		dry.Domains[i].Delivered, dry.Domains[i].Deferred, dry.Domains[i].Failed = 0, 0, 0
	}
	dry.Totals.Delivered, dry.Totals.Deferred, dry.Totals.Failed = 0, 0, 0
	b.Reset()
	Text(&b, dry, Of(dry))
	golden(t, "dryrun.txt", b.Bytes())
}

func TestJSON(t *testing.T) {
	var b bytes.Buffer
	if err := JSON(&b, sample(), Of(sample())); err != nil {
		t.Fatal(err)
	}
	golden(t, "summary.json", b.Bytes())
	var back map[string]any
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || back["exit_code"] != float64(ExUnavailable) {
		t.Errorf("JSON does not parse back with exit_code 69: %v %v", err, back["exit_code"])
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		name             string
		deferred, failed int
		problems         []batch.Problem
		want             int
	}{
		{"nothing due", 0, 0, nil, ExOK},
		{"deferred", 2, 0, nil, ExTempFail},
		{"failed beats deferred", 2, 1, nil, ExUnavailable},
		{"invalid file beats failed", 2, 1, []batch.Problem{{ID: "x"}}, ExDataErr},
		{"I/O error beats all", 2, 1, []batch.Problem{{ID: "x"}, {ID: "y", IOError: true}}, ExIOErr},
	}
	for _, tc := range tests {
		s := &batch.Summary{Totals: batch.DomainStats{Deferred: tc.deferred, Failed: tc.failed}, Problems: tc.problems}
		if got := ExitCode(s); got != tc.want {
			t.Errorf("%s: ExitCode = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestLogLine(t *testing.T) {
	e := batch.Event{ID: "1732.M1P2.host", Rcpt: "bob@a.test", Relay: "mx.a.test[127.0.0.2]:25", Delay: 1234 * time.Millisecond,
		Status: batch.Deferred, DSN: "4.7.1", Reply: "451 4.7.1 Greylisted\nplease retry"}
	want := "mxflush[42]: 1732.M1P2.host: to=<bob@a.test>, relay=mx.a.test[127.0.0.2]:25, delay=1.23, dsn=4.7.1, status=deferred (451 4.7.1 Greylisted; please retry)"
	if got := LogLine(42, e); got != want {
		t.Errorf("LogLine =\n%s\nwant\n%s", got, want)
	}
}
