package report

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mxflush/mxflush/batch"
)

// Metric names of flush --metrics-file. The *_total ones are gauges holding
// this run's counts (the file describes one run), not counters.
const (
	MetricRecipients  = "mxflush_recipients_total"               // {status="sent|deferred|bounced", domain}
	MetricMessages    = "mxflush_messages_total"                 // {domain}
	MetricConnections = "mxflush_connections_total"              // {site}
	MetricDuration    = "mxflush_run_duration_seconds"           // wall-clock seconds of the run
	MetricQueue       = "mxflush_queue_messages"                 // {queue="new|cur|failed|hold"} left after the run
	MetricLastRun     = "mxflush_last_run_timestamp_seconds"     // Unix time the run ended
	MetricLastSuccess = "mxflush_last_success_timestamp_seconds" // Unix time of the last run that exited 0
	MetricExitCode    = "mxflush_exit_code"                      // the run's exit code
)

// RunMetrics is what one flush's metrics file says.
type RunMetrics struct {
	// Summary is the run's; nil when it stopped before delivering (a usage
	// error, the spool lock held): then only the run-wide metrics are set.
	Summary  *batch.Summary
	Queues   map[string]int // messages per queue directory after the run; a missing key is left out
	Duration time.Duration
	Finished time.Time
	ExitCode int
	// LastSuccess is the end of the last run that exited 0, as read from
	// the previous file (see LastSuccess); zero when unknown. A run that
	// exits 0 sets it to Finished itself (see Registry).
	LastSuccess time.Time
}

// Registry builds a registry holding m's metrics. Recipients are counted per
// domain and status, summed over the passes of the run (a domain's bounces
// pass adds to its row); domains with no recipients of a status have no
// series for it. mxflush_last_success_timestamp_seconds is Finished when
// ExitCode is 0, else LastSuccess, and absent when that is zero.
func Registry(m RunMetrics) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		reg.MustRegister(g)
		return g
	}
	vec := func(name, help string, labels ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
		reg.MustRegister(g)
		return g
	}
	rcpts := vec(MetricRecipients, "Recipient outcomes of the last run, by status (sent, deferred, bounced) and recipient domain.", "status", "domain")
	msgs := vec(MetricMessages, "Messages handled by the last run, by recipient domain (a message to three domains counts in each).", "domain")
	// Connections are the sites': the domains of a site share its sessions,
	// so a count per domain would count them several times or arbitrarily.
	conns := vec(MetricConnections, "SMTP sessions opened by the last run, by destination site (its first MX host, or the relay of a route).", "site")
	queue := vec(MetricQueue, "Messages left in each spool queue after the last run.", "queue")
	gauge(MetricDuration, "Wall-clock seconds of the last run.").Set(m.Duration.Seconds())
	gauge(MetricLastRun, "Unix time the last run ended.").Set(unix(m.Finished))
	gauge(MetricExitCode, "Exit code of the last run (0 success, 75 deferred, 69 failed, ...).").Set(float64(m.ExitCode))
	last := m.LastSuccess
	if m.ExitCode == ExOK {
		last = m.Finished
	}
	if !last.IsZero() {
		gauge(MetricLastSuccess, "Unix time of the last run that exited 0.").Set(unix(last))
	}
	for q, n := range m.Queues {
		queue.WithLabelValues(q).Set(float64(n))
	}
	if s := m.Summary; s != nil && !s.DryRun {
		for _, d := range s.Domains {
			for status, n := range map[batch.Status]int{batch.Sent: d.Delivered, batch.Deferred: d.Deferred, batch.Bounced: d.Failed} {
				if n > 0 {
					rcpts.WithLabelValues(string(status), d.Domain).Add(float64(n))
				}
			}
			msgs.WithLabelValues(d.Domain).Add(float64(d.Messages))
		}
		for _, site := range s.Sites {
			conns.WithLabelValues(site.Name).Add(float64(site.Connections))
		}
	}
	return reg
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// WriteMetricsFile encodes g in the Prometheus text format (expfmt) and
// puts it at path atomically for node_exporter's textfile collector: it
// writes a new temporary file in the same directory, named
// "NAME.RANDOM.tmp" and created with O_EXCL (os.CreateTemp), so a symbolic
// link or file planted under a predictable name by whoever can write that
// directory is never opened, let alone followed or truncated; then it makes
// it mode 0644, fsyncs it and renames it over path, so a scrape never reads
// half a file (the collector reads only *.prom names, never a .tmp). On
// error the temporary file is removed and path is left as it was.
func WriteMetricsFile(path string, g prometheus.Gatherer) (err error) {
	mfs, err := g.Gather()
	if err != nil {
		return fmt.Errorf("gathering metrics: %w", err)
	}
	var buf bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			return fmt.Errorf("encoding %s: %w", mf.GetName(), err)
		}
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("metrics file: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	// CreateTemp makes it 0600; the collector may run as another user.
	if err = f.Chmod(0o644); err == nil {
		if _, err = f.Write(buf.Bytes()); err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("metrics file %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("metrics file: %w", err)
	}
	if d, derr := os.Open(filepath.Dir(path)); derr == nil {
		d.Sync() // best effort: the metrics are rewritten by the next run anyway
		d.Close()
	}
	return nil
}

// ParseMetricsFile reads a metrics file with expfmt's text parser. A
// missing file is fs.ErrNotExist (wrapped).
func ParseMetricsFile(path string) (map[string]*dto.MetricFamily, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("metrics file: %w", err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("metrics file %s: %w", path, err)
	}
	return mfs, nil
}

// LastSuccess is the mxflush_last_success_timestamp_seconds of the file at
// path, written by an earlier run. ok is false when the file is missing,
// cannot be parsed or has no such value (a run that never succeeded); a
// read error other than a missing file is returned so the caller can warn.
func LastSuccess(path string) (t time.Time, ok bool, err error) {
	mfs, err := ParseMetricsFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	mf := mfs[MetricLastSuccess]
	if mf == nil || len(mf.GetMetric()) == 0 || mf.GetMetric()[0].GetGauge() == nil {
		return time.Time{}, false, nil
	}
	v := mf.GetMetric()[0].GetGauge().GetValue()
	if v <= 0 {
		return time.Time{}, false, nil
	}
	sec := int64(v)
	return time.Unix(sec, int64((v-float64(sec))*1e9)).UTC(), true, nil
}
