package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mxflush/mxflush/batch"
	"github.com/mxflush/mxflush/report"
	"github.com/mxflush/mxflush/spool"
)

// ObsFlags are flush's flags for what it tells operators and monitoring:
// the log line format and the Prometheus metrics file.
type ObsFlags struct {
	LogFormat   string `help:"Per-recipient log lines on stderr: text (Postfix's shape) or json (one object a line)." default:"text" enum:"text,json"`
	MetricsFile string `help:"At exit, write the run's metrics here in Prometheus text format, atomically (for node_exporter's textfile collector)." placeholder:"PATH"`
}

// observer collects what the metrics file needs over one flush, and owns
// its stderr output (log lines and progress line).
type observer struct {
	flags   ObsFlags
	g       *Globals
	started time.Time
	out     *flushOutput
	summary *batch.Summary // set once batch.Run returned; nil if the run stopped earlier
}

// observe starts observing a flush; quiet leaves out the log lines of
// delivered recipients and the progress line (--quiet).
func (f ObsFlags) observe(g *Globals, quiet bool) *observer {
	out := newFlushOutput(g.stderr, f.LogFormat == "json", g.now)
	out.quiet = quiet
	return &observer{flags: f, g: g, started: g.now(), out: out}
}

// finish writes the metrics file, when asked for, for a run that ends with
// *errp (nil: exit 0). A dry run writes none. A failure to write it is said
// on stderr and turns exit 0 into 74 (EX_IOERR), so that monitoring that
// would go stale does not pass unnoticed; a run already failing keeps its
// own code.
func (o *observer) finish(errp *error) {
	if o.flags.MetricsFile == "" || (o.summary != nil && o.summary.DryRun) {
		return
	}
	code := exitCodeOf(*errp)
	end := o.g.now()
	m := report.RunMetrics{Summary: o.summary, Queues: queueCounts(o.g.Spool), Duration: end.Sub(o.started),
		Finished: end, ExitCode: code}
	last, ok, err := report.LastSuccess(o.flags.MetricsFile)
	if err != nil {
		fmt.Fprintf(o.g.stderr, "mxflush: warning: reading the previous last success time: %v\n", err)
	}
	if ok {
		m.LastSuccess = last
	}
	if err := report.WriteMetricsFile(o.flags.MetricsFile, report.Registry(m)); err != nil {
		if code == report.ExOK {
			*errp = exitf(report.ExIOErr, "--metrics-file: %v", err)
			return
		}
		fmt.Fprintf(o.g.stderr, "mxflush: --metrics-file: %v\n", err)
	}
}

// exitCodeOf is the process exit code runGlobals makes of a command's error.
func exitCodeOf(err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return report.ExOK
	case errors.As(err, &ee):
		return ee.code
	}
	return report.ExSoftware
}

// queueCounts counts the message files in each queue directory of the
// spool: new, cur, failed and hold (dot files are not messages). A queue
// that cannot be read is left out rather than reported as empty.
func queueCounts(dir string) map[string]int {
	counts := map[string]int{}
	for _, q := range []string{spool.QueueNew, spool.QueueCur, spool.QueueFailed, spool.QueueHold} {
		ents, err := os.ReadDir(filepath.Join(dir, q))
		if err != nil {
			continue
		}
		n := 0
		for _, e := range ents {
			if e.Type().IsRegular() && e.Name()[0] != '.' {
				n++
			}
		}
		counts[q] = n
	}
	return counts
}
