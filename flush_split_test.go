package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mxflush/mxflush/batch"
)

// summaryRows decodes the --json summary into its rows by domain.
func summaryRows(t *testing.T, out string) map[string]batch.DomainStats {
	t.Helper()
	var sum struct {
		Domains []batch.DomainStats `json:"domains"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, out)
	}
	rows := map[string]batch.DomainStats{}
	for _, d := range sum.Domains {
		if _, dup := rows[d.Domain]; dup {
			t.Errorf("two summary rows for %s", d.Domain)
		}
		rows[d.Domain] = d
	}
	return rows
}

// --conns-per-site below 1 is a usage error (64), found before any work.
func TestFlushConnsPerSiteUsage(t *testing.T) {
	w := newWorld(t, nil, nil, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	spoolMany(t, w.spool, 1, []string{"a.test"})
	if code, _, errs := w.flush("--conns-per-site", "0"); code != 64 || !strings.Contains(errs, "--conns-per-site") {
		t.Errorf("exit %d, stderr %q; want 64 naming --conns-per-site", code, errs)
	}
	if got := w.files("new"); len(got) != 1 || w.recv["127.0.0.2"].Sessions() != 0 {
		t.Errorf("files in new/ %v, sessions %d: want the message untouched, no session", got, w.recv["127.0.0.2"].Sessions())
	}
}
