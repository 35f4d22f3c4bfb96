package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/mxflush/mxflush/batch"
	"github.com/mxflush/mxflush/report"
)

// Progress line timing: it first shows once the run has gone on for
// progressDelay (a short flush never shows it), then is redrawn at most
// every progressEvery.
const (
	progressDelay = time.Second
	progressEvery = 250 * time.Millisecond
	clearLine     = "\r\x1b[K" // carriage return, then erase to the end of the line (ECMA-48 EL)
)

// progressCounts are the recipient outcomes seen so far, and how many
// recipients the run has planned (its passes so far: the bounce pass adds
// its own when it is planned).
type progressCounts struct {
	Sent, Deferred, Bounced int
	Total                   int
}

// renderProgress is the progress line for counts c after elapsed, without
// clearLine or a newline, at most width columns (0: no limit), for example
//
//	mxflush: 1,200/3,000 recipients (1,190 sent, 8 deferred, 2 bounced), 226/s, 5s, ETA 8s
//
// The rate is recipients per second over the whole run so far, and the
// ETA is what is left at that rate. A line wider than the terminal would
// wrap, and erasing it would then leave the wrapped part behind: it is cut
// to width-1 columns (the last column is left free so the cursor never
// wraps).
func renderProgress(c progressCounts, elapsed time.Duration, width int) string {
	n := c.Sent + c.Deferred + c.Bounced
	rate := 0.0
	if elapsed > 0 {
		rate = float64(n) / elapsed.Seconds()
	}
	done := thousands(n)
	if c.Total > 0 {
		done += "/" + thousands(c.Total)
	}
	line := fmt.Sprintf("mxflush: %s recipients (%s sent, %s deferred, %s bounced), %s/s, %s",
		done, thousands(c.Sent), thousands(c.Deferred), thousands(c.Bounced), thousands(int(rate+0.5)), elapsed.Truncate(time.Second))
	if left := c.Total - n; left > 0 && rate > 0 {
		eta := time.Duration(float64(left) / rate * float64(time.Second))
		line += ", ETA " + eta.Round(time.Second).String()
	}
	if width > 1 && len(line) > width-1 { // the line is ASCII: one octet, one column
		line = line[:width-1]
	}
	return line
}

// thousands writes n with a comma between groups of three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// flushOutput owns flush's stderr while the run goes: it writes each
// recipient's log line (text or JSON) and, when stderr is a terminal, keeps a
// progress line below them. Its methods are safe for concurrent use
// (batch calls result from worker goroutines).
type flushOutput struct {
	w       io.Writer
	json    bool
	pid     int
	now     func() time.Time
	tty     bool // draw the progress line
	start   time.Time
	mu      sync.Mutex
	counts  progressCounts
	shown   bool // the progress line is on the screen
	quiet   bool // --quiet: no line for a delivered recipient, no progress line
	journal bool // w is systemd's journal stream: text lines go unstamped

	// closed, when set, is called once when a write to w fails (stderr
	// closed: its reader, a pipe, went away); later lines are dropped.
	// The run then stops as for SIGTERM: a log nobody reads is no reason
	// to die with SIGPIPE halfway, journal and all.
	closed   func()
	isClosed bool
}

// onClosed sets what to do when stderr turns out to be closed.
func (o *flushOutput) onClosed(fn func()) {
	o.mu.Lock()
	o.closed = fn
	o.mu.Unlock()
}

// write writes b to stderr, unless it is known to be closed; the first
// failure calls closed. The caller holds o.mu.
func (o *flushOutput) write(b []byte) {
	if o.isClosed {
		return
	}
	if _, err := o.w.Write(b); err != nil {
		o.isClosed = true
		if o.closed != nil {
			go o.closed() // not under o.mu: stopping may log
		}
	}
}

func newFlushOutput(w io.Writer, json bool, now func() time.Time) *flushOutput {
	return &flushOutput{w: w, json: json, pid: os.Getpid(), now: now, tty: isTerminal(w), start: now(),
		journal: isJournal(w, os.Getenv("JOURNAL_STREAM"))}
}

// isJournal reports whether w is the stream systemd connected to the
// journal: it sets JOURNAL_STREAM to that stream's "DEVICE:INODE", and the
// journal time-stamps each line itself (systemd.exec(5)).
func isJournal(w io.Writer, stream string) bool {
	f, ok := w.(*os.File)
	if !ok || stream == "" {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && stream == strconv.FormatUint(uint64(st.Dev), 10)+":"+strconv.FormatUint(st.Ino, 10)
}

// result logs one recipient outcome: it clears the progress line first, so
// the log line starts at column 0 and the line is redrawn below it on the
// next tick.
func (o *flushOutput) result(e batch.Event) {
	var line []byte
	if o.json {
		b, err := report.JSONLogLine(o.now(), e)
		if err != nil {
			b = []byte(report.LogLine(o.pid, e)) // unreachable for plain strings; never lose the line
		}
		line = b
	} else {
		line = []byte(report.LogLine(o.pid, e))
		// A log file needs the time of each line; a terminal and the
		// journal (which stamps lines itself) do not.
		if !o.tty && !o.journal {
			line = append([]byte(o.now().UTC().Format(time.RFC3339)+" "), line...)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	switch e.Status {
	case batch.Sent:
		o.counts.Sent++
		if o.quiet {
			return
		}
	case batch.Deferred:
		o.counts.Deferred++
	case batch.Bounced:
		o.counts.Bounced++
	}
	if o.shown {
		o.write([]byte(clearLine))
		o.shown = false
	}
	o.write(append(line, '\n'))
}

// planned adds a pass's recipients to the progress line's total.
func (o *flushOutput) planned(recipients int) {
	o.mu.Lock()
	o.counts.Total += recipients
	o.mu.Unlock()
}

// tick redraws the progress line, once the run is older than progressDelay.
func (o *flushOutput) tick() {
	o.mu.Lock()
	defer o.mu.Unlock()
	elapsed := o.now().Sub(o.start)
	if elapsed < progressDelay {
		return
	}
	o.write([]byte(clearLine + renderProgress(o.counts, elapsed, terminalWidth(o.w))))
	o.shown = true
}

// clear erases the progress line if it is shown.
func (o *flushOutput) clear() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.shown {
		o.write([]byte(clearLine))
		o.shown = false
	}
}

// progress starts redrawing the progress line every progressEvery when
// stderr is a terminal, and returns the function that stops it and clears
// the line; call it before printing the summary. Not a terminal: nothing
// is drawn, ever.
func (o *flushOutput) progress() (stop func()) {
	if !o.tty || o.quiet {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				o.tick()
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		o.clear()
	}
}
