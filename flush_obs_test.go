package main

import (
	"bufio"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/mxflush/mxflush/report"
)

// gauge is the value of name's series with the given labels ("k", "v"
// pairs, all of the series' labels); ok false when there is none.
func gauge(mfs map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	for _, m := range mfs[name].GetMetric() {
		if len(m.GetLabel())*2 != len(labels) {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			found := false
			for i := 0; i+1 < len(labels); i += 2 {
				found = found || labels[i] == l.GetName() && labels[i+1] == l.GetValue()
			}
			match = match && found
		}
		if match {
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

type metricCheck struct {
	name   string
	labels []string // "k", "v" pairs
	want   float64
}

// A real loopback flush with --log-format json and --metrics-file: one
// JSON record a recipient on stderr, no progress line (stderr is no
// terminal), and a metrics file that expfmt parses back with the run's
// counts. A second run that defers (its receiver gone) keeps the first
// run's last success time and says exit 75.
func TestFlushMetricsFileAndJSONLog(t *testing.T) {
	w := newWorld(t, []string{"127.0.0.2"}, nil,
		"a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2",
		"down.test. A 127.0.0.9") // nothing listens there: deferred
	for _, r := range []string{"u1@a.test", "u2@a.test"} {
		w.enqueue("alice@example.test", msg("m-"+r), r)
	}
	w.enqueue("alice@example.test", msg("both"), "u3@a.test", "u4@a.test")
	prom := filepath.Join(t.TempDir(), "mxflush.prom")
	before := time.Now()

	code, out, errs := w.flush("--log-format", "json", "--metrics-file", prom)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	if strings.Contains(errs, "\r") {
		t.Errorf("progress line drawn on a non-terminal stderr: %q", errs)
	}
	var recs []report.LogRecord
	sc := bufio.NewScanner(strings.NewReader(errs))
	for sc.Scan() {
		var r report.LogRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("stderr line is not a JSON record: %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	if len(recs) != 4 {
		t.Fatalf("%d JSON records, want 4:\n%s", len(recs), errs)
	}
	for _, r := range recs {
		if r.Status != "sent" || r.Domain != "a.test" || r.DSN != "2.0.0" || !strings.HasPrefix(r.Relay, "mx.a.test[127.0.0.2]:") || r.ID == "" || r.Time == "" {
			t.Errorf("record %+v", r)
		}
	}

	mfs, err := report.ParseMetricsFile(prom)
	if err != nil {
		t.Fatal(err)
	}
	checks := []metricCheck{
		{report.MetricRecipients, []string{"status", "sent", "domain", "a.test"}, 4},
		{report.MetricMessages, []string{"domain", "a.test"}, 3},
		{report.MetricConnections, []string{"site", "mx.a.test"}, 1},
		{report.MetricQueue, []string{"queue", "new"}, 0},
		{report.MetricQueue, []string{"queue", "cur"}, 0},
		{report.MetricExitCode, nil, 0},
	}
	for _, c := range checks {
		if got, ok := gauge(mfs, c.name, c.labels...); !ok || got != c.want {
			t.Errorf("run 1: %s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	success, ok := gauge(mfs, report.MetricLastSuccess)
	if !ok || success < float64(before.Unix()) {
		t.Errorf("run 1: last success = %v (present %v), want at least %d", success, ok, before.Unix())
	}
	if last, _ := gauge(mfs, report.MetricLastRun); last != success {
		t.Errorf("run 1 exited 0: last run %v != last success %v", last, success)
	}

	w.enqueue("alice@example.test", msg("deferred"), "x@down.test")
	code, out, errs = w.flush("--metrics-file", prom)
	if code != 75 {
		t.Fatalf("run 2: exit %d, want 75\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(errs, "x@down.test>, relay=") {
		t.Errorf("run 2: default --log-format is not the text line:\n%s", errs)
	}
	if mfs, err = report.ParseMetricsFile(prom); err != nil {
		t.Fatal(err)
	}
	checks = []metricCheck{
		{report.MetricRecipients, []string{"status", "deferred", "domain", "down.test"}, 1},
		{report.MetricQueue, []string{"queue", "cur"}, 1},
		{report.MetricExitCode, nil, 75},
		{report.MetricLastSuccess, nil, success},
	}
	for _, c := range checks {
		if got, ok := gauge(mfs, c.name, c.labels...); !ok || got != c.want {
			t.Errorf("run 2: %s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if _, ok := gauge(mfs, report.MetricRecipients, "status", "sent", "domain", "a.test"); ok {
		t.Error("run 2 still reports run 1's recipients")
	}
}
