package report

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/mxflush/mxflush/batch"
)

// value is the gauge value of name's series whose labels include labels
// ("k", "v" pairs); ok false when there is none.
func value(mfs map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		return m.GetGauge().GetValue(), true
	}
	return 0, false
}

// The file parses back with expfmt, sums a domain's passes, carries the
// last success time over a failed run and sets it on a successful one, and
// leaves no temporary file behind.
func TestMetricsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mxflush.prom")
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	sum := &batch.Summary{Domains: []batch.DomainStats{
		{Domain: "a.test", Site: "mx.a.test", Messages: 3, Recipients: 4, Delivered: 3, Deferred: 1, Connections: 1},
		{Domain: "b.test", Site: "mx.a.test", Messages: 1, Recipients: 1, Delivered: 1},
		{Domain: "a.test", Site: "mx.a.test", Pass: "bounces", Messages: 1, Recipients: 1, Delivered: 1, Connections: 1},
	}, Sites: []batch.SiteStats{
		{Name: "mx.a.test", Domains: []string{"a.test", "b.test"}, Connections: 1},
		{Name: "mx.a.test", Domains: []string{"a.test"}, Pass: "bounces", Connections: 1},
	}}
	steps := []struct {
		name     string
		code     int
		finished time.Time
		wantLast float64 // 0: absent
	}{
		{"first run fails: no success known", ExTempFail, t0, 0},
		{"success sets it", ExOK, t0.Add(time.Minute), float64(t0.Add(time.Minute).Unix())},
		{"failure carries it over", ExUnavailable, t0.Add(2 * time.Minute), float64(t0.Add(time.Minute).Unix())},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			m := RunMetrics{Summary: sum, Queues: map[string]int{"new": 0, "cur": 2, "failed": 1, "hold": 0},
				Duration: 1500 * time.Millisecond, Finished: st.finished, ExitCode: st.code}
			last, ok, err := LastSuccess(path)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				m.LastSuccess = last
			}
			if err := WriteMetricsFile(path, Registry(m)); err != nil {
				t.Fatal(err)
			}
			if left, _ := filepath.Glob(path + ".*"); len(left) > 0 {
				t.Errorf("temporary files left behind: %q", left)
			}
			mfs, err := ParseMetricsFile(path)
			if err != nil {
				t.Fatal(err)
			}
			checks := []struct {
				name   string
				labels []string
				want   float64
			}{
				{MetricRecipients, []string{"status", "sent", "domain", "a.test"}, 4},
				{MetricRecipients, []string{"status", "sent", "domain", "b.test"}, 1},
				{MetricRecipients, []string{"status", "deferred", "domain", "a.test"}, 1},
				{MetricMessages, []string{"domain", "a.test"}, 4},
				{MetricConnections, []string{"site", "mx.a.test"}, 2}, // the site's, once, over both passes
				{MetricQueue, []string{"queue", "cur"}, 2},
				{MetricQueue, []string{"queue", "failed"}, 1},
				{MetricQueue, []string{"queue", "new"}, 0},
				{MetricDuration, nil, 1.5},
				{MetricExitCode, nil, float64(st.code)},
				{MetricLastRun, nil, float64(st.finished.Unix())},
			}
			for _, c := range checks {
				if got, ok := value(mfs, c.name, c.labels...); !ok || got != c.want {
					t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
				}
			}
			if _, ok := value(mfs, MetricRecipients, "status", "bounced"); ok {
				t.Errorf("a bounced series with no bounced recipient")
			}
			got, ok := value(mfs, MetricLastSuccess)
			if st.wantLast == 0 && ok || st.wantLast != 0 && got != st.wantLast {
				t.Errorf("%s = %v (present %v), want %v", MetricLastSuccess, got, ok, st.wantLast)
			}
		})
	}
}

// A file that cannot be written leaves the old one as it was.
func TestMetricsFileUnwritable(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "missing", "mxflush.prom")
	if err := WriteMetricsFile(path, Registry(RunMetrics{})); err == nil {
		t.Fatal("no error writing into a missing directory")
	}
	// The rename fails: a non-empty directory holds the name.
	path = filepath.Join(dir, "mxflush.prom")
	os.MkdirAll(filepath.Join(path, "x"), 0o755)
	if err := WriteMetricsFile(path, Registry(RunMetrics{})); err == nil {
		t.Fatal("no error when the file cannot be renamed into place")
	}
	if left, _ := filepath.Glob(path + ".*"); len(left) > 0 {
		t.Errorf("temporary files left behind: %q", left)
	}
}

// Whoever can write the metrics directory plants symbolic links at the
// names a writer might use for its temporary file: the file they point to
// is never opened, truncated or written, and the metrics still land.
func TestMetricsFileSymlinkPlanted(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "mxflush.prom")
	for _, name := range []string{path + ".tmp", path + ".new", filepath.Join(dir, ".mxflush.prom.tmp")} {
		if err := os.Symlink(victim, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := WriteMetricsFile(path, Registry(RunMetrics{})); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "precious\n" {
		t.Errorf("victim file now %q (%v), want it untouched", b, err)
	}
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 {
		t.Errorf("metrics file: %v %v, want a regular file of mode 0644", fi.Mode(), err)
	}
	if _, err := ParseMetricsFile(path); err != nil {
		t.Error(err)
	}
}
