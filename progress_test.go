package main

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mxflush/mxflush/batch"
)

func TestRenderProgress(t *testing.T) {
	tests := []struct {
		c       progressCounts
		elapsed time.Duration
		width   int
		want    string
	}{
		{progressCounts{}, 0, 0, "mxflush: 0 recipients (0 sent, 0 deferred, 0 bounced), 0/s, 0s"},
		{progressCounts{Sent: 1190, Deferred: 8, Bounced: 2, Total: 3000}, 5*time.Second + 300*time.Millisecond, 0,
			"mxflush: 1,200/3,000 recipients (1,190 sent, 8 deferred, 2 bounced), 226/s, 5s, ETA 8s"},
		// Done: no ETA.
		{progressCounts{Sent: 3000, Total: 3000}, 10 * time.Second, 0,
			"mxflush: 3,000/3,000 recipients (3,000 sent, 0 deferred, 0 bounced), 300/s, 10s"},
		// A 60-column terminal: cut to 59 columns, so the line never wraps
		// and one erase clears all of it.
		{progressCounts{Sent: 1190, Deferred: 8, Bounced: 2, Total: 3000}, 5*time.Second + 300*time.Millisecond, 60,
			"mxflush: 1,200/3,000 recipients (1,190 sent, 8 deferred, 2 "},
	}
	for _, tt := range tests {
		if got := renderProgress(tt.c, tt.elapsed, tt.width); got != tt.want {
			t.Errorf("renderProgress(%+v, %v, %d) = %q, want %q", tt.c, tt.elapsed, tt.width, got, tt.want)
		}
	}
}

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// On a terminal (forced here): nothing is drawn before progressDelay; then
// each tick redraws the line in place, a log line clears it first and
// starts at column 0, and clear leaves no line behind.
func TestProgressLineOnTerminal(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	var b bytes.Buffer
	o := newFlushOutput(&b, false, clk.now)
	o.tty = true
	sent := batch.Event{ID: "1.M1.h", Rcpt: "bob@a.test", Relay: "none", Status: batch.Sent, DSN: "2.0.0", Reply: "250 ok"}
	o.planned(2)

	o.result(sent)
	clk.t = clk.t.Add(500 * time.Millisecond)
	o.tick()
	if strings.Contains(b.String(), "\r") {
		t.Fatalf("progress drawn before %v: %q", progressDelay, b.String())
	}
	b.Reset()
	clk.t = clk.t.Add(1500 * time.Millisecond)
	o.tick()
	if want := clearLine + "mxflush: 1/2 recipients (1 sent, 0 deferred, 0 bounced), 1/s, 2s, ETA 2s"; b.String() != want {
		t.Fatalf("tick wrote %q, want %q", b.String(), want)
	}
	b.Reset()
	o.result(batch.Event{ID: "1.M1.h", Rcpt: "x@b.test", Relay: "none", Status: batch.Deferred, DSN: "4.4.1", Reply: "no"})
	if got := b.String(); !strings.HasPrefix(got, clearLine+"mxflush[") || !strings.HasSuffix(got, "\n") || strings.Count(got, "\r") != 1 {
		t.Fatalf("log line with progress shown = %q, want the line cleared, then the log line", got)
	}
	b.Reset()
	o.result(sent) // the progress line is not shown now: no clearing
	if strings.Contains(b.String(), "\r") {
		t.Errorf("cleared a progress line that was not shown: %q", b.String())
	}
	o.tick()
	b.Reset()
	o.clear()
	if b.String() != clearLine {
		t.Errorf("clear wrote %q, want %q", b.String(), clearLine)
	}
	b.Reset()
	o.clear()
	if b.Len() != 0 {
		t.Errorf("second clear wrote %q", b.String())
	}
}

// Not a terminal (a buffer, a pipe, a file): progress never draws,
// however long the run has gone on.
func TestProgressNotTerminal(t *testing.T) {
	file, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	for _, w := range []io.Writer{&bytes.Buffer{}, file} {
		clk := &fakeClock{t: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
		o := newFlushOutput(w, false, clk.now)
		if o.tty {
			t.Fatalf("%T taken for a terminal", w)
		}
		clk.t = clk.t.Add(time.Hour)
		stop := o.progress()
		time.Sleep(3 * progressEvery) // ticks would have drawn by now
		stop()
	}
	if b, _ := os.ReadFile(file.Name()); len(b) != 0 {
		t.Errorf("wrote %q to a file", b)
	}
}

// A pseudo-terminal is one: /dev/ptmx answers tcgetattr.
func TestIsTerminalPTY(t *testing.T) {
	f, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pty here: %v", err)
	}
	defer f.Close()
	if !isTerminal(f) {
		t.Error("/dev/ptmx not taken for a terminal")
	}
}

// Text log lines written to a file start with the time (RFC 3339 UTC):
// a log file of undated lines tells nothing of when. The journal stamps
// lines itself: on the stream JOURNAL_STREAM names, lines go unstamped.
func TestLogLineTimeStamp(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 11, 29, 12, 0, 5, 0, time.UTC)}
	e := batch.Event{ID: "1.M1.h", Rcpt: "bob@a.test", Relay: "none", Status: batch.Sent, DSN: "2.0.0", Reply: "250 ok"}
	file, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	newFlushOutput(file, false, clk.now).result(e)
	b, _ := os.ReadFile(file.Name())
	if !strings.HasPrefix(string(b), "2026-11-29T12:00:05Z mxflush[") {
		t.Errorf("log line in a file = %q, want it to start with the time", b)
	}

	fi, err := file.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	t.Setenv("JOURNAL_STREAM", strconv.FormatUint(uint64(st.Dev), 10)+":"+strconv.FormatUint(st.Ino, 10))
	file.Truncate(0)
	file.Seek(0, 0)
	newFlushOutput(file, false, clk.now).result(e)
	b, _ = os.ReadFile(file.Name())
	if !strings.HasPrefix(string(b), "mxflush[") {
		t.Errorf("log line on the journal's stream = %q, want no time stamp", b)
	}
}
