package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// --max-age reaches the run (batch's TestExpiryAfterFinalTry checks the
// expiry itself): a message queued six days ago expires under the default
// lifetime of 5 days (exit 69, the 4.4.7 in the log, a DSN in the
// summary), and stays queued under --max-age 200h (exit 75).
func TestFlushMaxAge(t *testing.T) {
	state := "X-Envelope-From: <alice@example.test>\nX-Envelope-To: <busy@a.test>\n" +
		"X-Envelope-Arrival: " + ago(6*24*time.Hour) + "\nX-Envelope-Attempts: 30\nX-Envelope-Next-Attempt: " + ago(time.Minute) + "\n"
	for _, tc := range []struct {
		flags []string
		code  int
	}{{nil, 69}, {[]string{"--max-age", "200h"}, 75}} {
		t.Run(strings.Join(append([]string{"max-age"}, tc.flags...), " "), func(t *testing.T) {
			w := lifeWorld(t)
			w.put("cur", "1.P1R1.old", state+original)
			code, out, errs := w.flush(tc.flags...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, tc.code, out, errs)
			}
			if tc.code == 75 {
				return
			}
			if !strings.Contains(errs, "to=<busy@a.test>, relay=mx.a.test[127.0.0.2]") || !strings.Contains(errs, "dsn=4.4.7, status=bounced (4.4.7 delivery time expired") {
				t.Errorf("log lacks the expiry:\n%s", errs)
			}
			if !strings.Contains(out, "a.test") || !strings.Contains(out, "1 delivery status notification(s)") {
				t.Errorf("summary:\n%s", out)
			}
		})
	}
}

// --retry-min and --retry-max reach the run (batch's TestRetrySchedule
// checks the schedule): after five attempts, 10m doubled five times is
// capped at 15m, less 10% at most; a run before then exits 0 and says the
// message is not due.
func TestFlushRetryFlags(t *testing.T) {
	w := lifeWorld(t)
	w.put("new", "1.P1R1.host", "X-Envelope-From: <alice@example.test>\nX-Envelope-To: <busy@a.test>\nX-Envelope-Attempts: 5\n"+original)
	flags := []string{"--retry-min", "10m", "--retry-max", "15m"}
	now := time.Now()
	if code, out, errs := w.flush(flags...); code != 75 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	m := w.load("cur", "1.P1R1.host")
	if d := m.NextAttempt.Sub(now); d < 13*time.Minute+29*time.Second || d > 15*time.Minute+time.Second {
		t.Errorf("next attempt in %v, want 13m30s..15m", d)
	}
	if code, out, _ := w.flush(flags...); code != 0 || !strings.Contains(out, "1 message(s) not due") {
		t.Errorf("a run before the next attempt: exit %d\n%s", code, out)
	}
}

// --warn-after reaches the run (batch's TestDelayWarningOnce checks the
// warning): a message two hours old gets a "delayed" DSN.
func TestFlushWarnAfter(t *testing.T) {
	w := lifeWorld(t)
	w.put("new", "1.P1R1.slow", "X-Envelope-From: <alice@example.test>\nX-Envelope-To: <busy@a.test>\n"+
		"X-Envelope-Arrival: "+ago(2*time.Hour)+"\n"+original)
	if code, _, errs := w.flush("--warn-after", "1h"); code != 75 {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	if d := w.dsns(); len(d) != 1 || !strings.Contains(string(d[0].Data), "Subject: Delayed Mail (still being retried)") {
		t.Errorf("%d DSNs, want one delay warning", len(d))
	}
}

// A crash journal left by a killed run: the summary says how many
// recipients the replay took off the queue (batch's TestJournalReplay
// checks the replay).
func TestFlushJournalReplaySummary(t *testing.T) {
	w := lifeWorld(t)
	w.put("new", "1.P1R1.host", "X-Envelope-From: <alice@example.test>\nX-Envelope-To: <x@a.test>\nX-Envelope-To: <y@b.test>\nX-Envelope-To: <z@a.test>\n"+original)
	w.put("", "journal", "1.P1R1.host\tx@a.test\n1.P1R1.host\ty@b.test\n")
	code, out, errs := w.flush()
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "2 recipient(s) delivered by an earlier run that could not record it") {
		t.Errorf("summary lacks the replay:\n%s", out)
	}
	if c := w.rcptCount(); c["x@a.test"]+c["y@b.test"] != 0 || c["z@a.test"] != 1 {
		t.Errorf("copies %v: want only z@a.test", c)
	}
	if j := readFile(t, filepath.Join(w.spool, "journal")); j != "" {
		t.Errorf("journal not emptied: %q", j)
	}
}
