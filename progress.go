package main

import (
	"fmt"
	"io"
	"os"
	"sync"
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

// progressCounts are the recipient outcomes seen so far.
type progressCounts struct {
	Sent, Deferred, Bounced int
}

// renderProgress is the progress line for counts c after elapsed, without
// clearLine or a newline, for example
//
//	mxflush: 1200 recipients done (1190 sent, 8 deferred, 2 bounced), 240.0/s, 5s
//
// The rate is recipients per second over the whole run so far.
func renderProgress(c progressCounts, elapsed time.Duration) string {
	n := c.Sent + c.Deferred + c.Bounced
	rate := 0.0
	if elapsed > 0 {
		rate = float64(n) / elapsed.Seconds()
	}
	return fmt.Sprintf("mxflush: %d recipients done (%d sent, %d deferred, %d bounced), %.1f/s, %s",
		n, c.Sent, c.Deferred, c.Bounced, rate, elapsed.Truncate(time.Second))
}

// flushOutput owns flush's stderr while the run goes: it writes each
// recipient's log line (text or JSON) and, when stderr is a terminal, keeps a
// progress line below them. Its methods are safe for concurrent use
// (batch calls result from worker goroutines).
type flushOutput struct {
	w      io.Writer
	json   bool
	pid    int
	now    func() time.Time
	tty    bool // draw the progress line
	start  time.Time
	mu     sync.Mutex
	counts progressCounts
	shown  bool // the progress line is on the screen
}

func newFlushOutput(w io.Writer, json bool, now func() time.Time) *flushOutput {
	return &flushOutput{w: w, json: json, pid: os.Getpid(), now: now, tty: isTerminal(w), start: now()}
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
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	switch e.Status {
	case batch.Sent:
		o.counts.Sent++
	case batch.Deferred:
		o.counts.Deferred++
	case batch.Bounced:
		o.counts.Bounced++
	}
	if o.shown {
		io.WriteString(o.w, clearLine)
		o.shown = false
	}
	o.w.Write(append(line, '\n'))
}

// tick redraws the progress line, once the run is older than progressDelay.
func (o *flushOutput) tick() {
	o.mu.Lock()
	defer o.mu.Unlock()
	elapsed := o.now().Sub(o.start)
	if elapsed < progressDelay {
		return
	}
	io.WriteString(o.w, clearLine+renderProgress(o.counts, elapsed))
	o.shown = true
}

// clear erases the progress line if it is shown.
func (o *flushOutput) clear() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.shown {
		io.WriteString(o.w, clearLine)
		o.shown = false
	}
}

// progress starts redrawing the progress line every progressEvery when
// stderr is a terminal, and returns the function that stops it and clears
// the line; call it before printing the summary. Not a terminal: nothing
// is drawn, ever.
func (o *flushOutput) progress() (stop func()) {
	if !o.tty {
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
