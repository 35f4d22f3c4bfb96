package main

import (
	"net/mail"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mxflush/mxflush/spool"
)

// A message past --max-age gets one final try; a recipient still deferred
// fails with 4.4.7 and the last reply, and is bounced. A longer --max-age
// keeps it queued.
func TestExpiry(t *testing.T) {
	state := "X-Envelope-From: <alice@example.test>\nX-Envelope-To: <busy@a.test>\nX-Envelope-To: <bob@a.test>\n" +
		"X-Envelope-Arrival: " + ago(6*24*time.Hour) + "\nX-Envelope-Attempts: 30\nX-Envelope-Next-Attempt: " + ago(time.Minute) + "\n"
	tests := []struct {
		name    string
		flags   []string
		code    int
		expired bool
	}{
		{"default lifetime of 5 days", nil, 69, true},
		{"--max-age 200h", []string{"--max-age", "200h"}, 75, false},
		{"--max-age 1h, next attempt not due: final try now", []string{"--max-age", "1h"}, 69, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := lifeWorld(t)
			st := state
			if strings.Contains(tc.name, "not due") {
				st = strings.Replace(st, ago(time.Minute), time.Now().Add(time.Hour).UTC().Format(time.RFC3339), 1)
			}
			w.put("cur", "1.P1R1.old", st+original)
			code, out, errs := w.flush(tc.flags...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, tc.code, out, errs)
			}
			if c := w.rcptCount(); c["bob@a.test"] != 1 {
				t.Errorf("bob@ was not given the final try: %v", c)
			}
			if !tc.expired {
				if m := w.load("cur", "1.P1R1.old"); !slices.Equal(m.To, []string{"busy@a.test"}) || len(w.dsns()) != 0 {
					t.Errorf("not expired: pending %v, %d DSNs", m.To, len(w.dsns()))
				}
				return
			}
			if !strings.Contains(errs, "to=<busy@a.test>, relay=mx.a.test[127.0.0.2]") || !strings.Contains(errs, "dsn=4.4.7, status=bounced (4.4.7 delivery time expired") {
				t.Errorf("log lacks the expiry:\n%s", errs)
			}
			if !strings.Contains(out, "a.test") || !strings.Contains(out, "1 delivery status notification(s)") {
				t.Errorf("summary:\n%s", out)
			}
			f := w.load("failed", "1.P1R1.old")
			if len(f.Failed) != 1 || !strings.HasPrefix(f.Failed[0].Reply, "4.4.7 delivery time expired") ||
				!strings.HasSuffix(f.Failed[0].Reply, "last reply: 451 4.7.1 Greylisted, try again later") || f.Failed[0].Notice != spool.NoticeBounced {
				t.Errorf("failed/ record %+v", f.Failed)
			}
			d := w.dsns()
			if len(d) != 1 {
				t.Fatalf("%d DSNs, want 1", len(d))
			}
			h := parseDSN(t, d[0].Data).rcptBlock(t, "busy@a.test")
			if h.Get("Action") != "failed" || h.Get("Status") != "4.4.7" || h.Get("Diagnostic-Code") != "smtp; 451 4.7.1 Greylisted, try again later" {
				t.Errorf("expired recipient block %v", h)
			}
		})
	}
}

// Clock skew: times written by a wrong clock never leave a message stuck
// for longer than --retry-max, and a future arrival is not "expired" but is
// reset to now; a next attempt 20 minutes away waits, unless --all.
func TestClockSkew(t *testing.T) {
	future := time.Now().Add(3 * 365 * 24 * time.Hour).UTC().Format(time.RFC3339)
	w := lifeWorld(t)
	w.put("cur", "1.P1R1.skewed", "X-Envelope-From: <alice@example.test>\nX-Envelope-To: <busy@a.test>\nX-Envelope-Arrival: "+future+
		"\nX-Envelope-Attempts: 1\nX-Envelope-Next-Attempt: "+future+"\n"+original)
	w.put("cur", "2.P1R1.soon", "X-Envelope-From: <alice@example.test>\nX-Envelope-To: <soon@a.test>\nX-Envelope-Arrival: "+ago(time.Hour)+
		"\nX-Envelope-Attempts: 1\nX-Envelope-Next-Attempt: "+time.Now().Add(20*time.Minute).UTC().Format(time.RFC3339)+"\n"+original)
	before := time.Now().Truncate(time.Second)
	code, out, errs := w.flush()
	if code != 75 || !strings.Contains(out, "1 message(s) not due") {
		t.Fatalf("exit %d, want 75 with one message not due\n%s\n%s", code, out, errs)
	}
	m := w.load("cur", "1.P1R1.skewed")
	if m.Arrival.Before(before) || m.Arrival.After(time.Now()) || m.Attempts != 2 || len(w.dsns()) != 0 {
		t.Errorf("skewed message: arrival %v (want reset to now), attempts %d, %d DSNs", m.Arrival, m.Attempts, len(w.dsns()))
	}
	if d := time.Until(m.NextAttempt); d > 12*time.Minute || d < 8*time.Minute {
		t.Errorf("next attempt in %v, want the second backoff (10m ±10%%)", d)
	}
	if w.rcptCount()["soon@a.test"] != 0 || w.load("cur", "2.P1R1.soon").Attempts != 1 {
		t.Error("a message due in 20 minutes was tried")
	}
	if code, _, _ := w.flush("--all"); code != 75 || w.rcptCount()["soon@a.test"] != 1 { // busy@ is still deferred
		t.Errorf("--all: exit %d, soon@ copies %d", code, w.rcptCount()["soon@a.test"])
	}
}

// The retry schedule: the first retry after --retry-min, doubling, capped
// by --retry-max, each ±10%, stored in UTC.
func TestRetrySchedule(t *testing.T) {
	tests := []struct {
		name     string
		flags    []string
		attempts int // attempts already made
		lo, hi   time.Duration
	}{
		{"default first retry", nil, 0, 270 * time.Second, 330 * time.Second},
		{"--retry-min 10m", []string{"--retry-min", "10m"}, 0, 9 * time.Minute, 11 * time.Minute},
		{"third attempt doubles twice", []string{"--retry-min", "10m"}, 2, 36 * time.Minute, 44 * time.Minute},
		{"capped by --retry-max", []string{"--retry-min", "10m", "--retry-max", "15m"}, 5, 13*time.Minute + 30*time.Second, 15 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := lifeWorld(t)
			w.put("new", "1.P1R1.host", "X-Envelope-From: <alice@example.test>\nX-Envelope-To: <busy@a.test>\n"+
				"X-Envelope-Attempts: "+string(rune('0'+tc.attempts))+"\n"+original)
			now := time.Now()
			if code, out, errs := w.flush(tc.flags...); code != 75 {
				t.Fatalf("exit %d\n%s\n%s", code, out, errs)
			}
			raw := readFile(t, filepath.Join(w.spool, "cur", "1.P1R1.host"))
			if !strings.Contains(raw, "Z\nX-Envelope-Reply") || !strings.Contains(raw, "X-Envelope-Next-Attempt: ") {
				t.Errorf("state is not in UTC:\n%s", raw)
			}
			m := w.load("cur", "1.P1R1.host")
			if d := m.NextAttempt.Sub(now); d < tc.lo-time.Second || d > tc.hi+time.Second || m.Attempts != tc.attempts+1 {
				t.Errorf("next attempt in %v after %d attempts, want %v..%v", d, m.Attempts, tc.lo, tc.hi)
			}
			if code, out, _ := w.flush(tc.flags...); code != 0 || !strings.Contains(out, "not due") {
				t.Errorf("a run before the next attempt: exit %d\n%s", code, out)
			}
		})
	}
}

// --warn-after: one "delayed" DSN per message, never repeated, and none
// once the message is delivered.
func TestDelayWarningOnce(t *testing.T) {
	w := lifeWorld(t)
	arrival := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)
	w.put("new", "1.P1R1.slow", "X-Envelope-From: <alice@example.test>\nX-Envelope-To: <busy@a.test>\nX-Envelope-To: <bob@a.test>\n"+
		"X-Envelope-Arrival: "+arrival.Format(time.RFC3339)+"\n"+original)
	if code, _, errs := w.flush("--warn-after", "1h"); code != 75 {
		t.Fatalf("run 1: exit %d\n%s", code, errs)
	}
	d := w.dsns()
	if len(d) != 1 {
		t.Fatalf("%d DSNs after run 1, want one delay warning", len(d))
	}
	r := parseDSN(t, d[0].Data)
	h := r.rcptBlock(t, "busy@a.test")
	until, err := mail.ParseDate(h.Get("Will-Retry-Until"))
	if r.top.Get("Subject") != "Delayed Mail (still being retried)" || len(r.perRcpt) != 1 || h.Get("Action") != "delayed" ||
		h.Get("Status") != "4.7.1" || err != nil || !until.Equal(arrival.Add(5*24*time.Hour)) {
		t.Errorf("delay warning: subject %q, blocks %v (%v)", r.top.Get("Subject"), r.perRcpt, err)
	}
	if m := w.load("cur", "1.P1R1.slow"); m.Warned.IsZero() {
		t.Error("X-Envelope-Warned not recorded")
	}
	for run := 2; run <= 3; run++ {
		if code, _, _ := w.flush("--warn-after", "1h", "--all"); code != 75 || len(w.dsns()) != 1 {
			t.Errorf("run %d: exit %d, %d DSNs; the warning must not be repeated", run, code, len(w.dsns()))
		}
	}
}

// A crash journal left by a killed run: its recipients are taken off the
// message before anything is sent, and it is emptied after the run.
func TestJournalReplay(t *testing.T) {
	w := lifeWorld(t)
	w.put("new", "1.P1R1.host", "X-Envelope-From: <alice@example.test>\nX-Envelope-To: <x@a.test>\nX-Envelope-To: <y@b.test>\nX-Envelope-To: <z@a.test>\n"+original)
	w.put("", "journal", "1.P1R1.host\tx@a.test\n1.P1R1.host\ty@b.test\n2.P1R1.gone\tq@a.test\n1.P1R1.host\tz@a.te") // the last line torn
	// A dry run reads the journal and changes nothing.
	code, out, _ := w.flush("--dry-run", "--json")
	rows := summaryRows(t, out)
	if code != 0 || len(rows) != 1 || rows["a.test"].Recipients != 1 || len(w.rcptCount()) != 0 {
		t.Errorf("dry run: exit %d, rows %+v: want a.test with z@ alone", code, rows)
	}
	if j := readFile(t, filepath.Join(w.spool, "journal")); !strings.HasPrefix(j, "1.P1R1.host\tx@a.test\n") {
		t.Errorf("dry run changed the journal: %q", j)
	}

	code, out, errs := w.flush()
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	if c := w.rcptCount(); c["x@a.test"] != 0 || c["y@b.test"] != 0 || c["z@a.test"] != 1 {
		t.Errorf("copies %v: want only z@a.test, the one the journal does not list", c)
	}
	if !strings.Contains(out, "2 recipient(s) delivered by an earlier run that could not record it") {
		t.Errorf("summary lacks the replay:\n%s", out)
	}
	if j := readFile(t, filepath.Join(w.spool, "journal")); j != "" {
		t.Errorf("journal not emptied: %q", j)
	}
}
