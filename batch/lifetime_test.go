package batch

import (
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mxflush/mxflush/spool"
)

// ago formats now-d as an envelope time.
func ago(d time.Duration) string {
	return time.Now().Add(-d).UTC().Format(time.RFC3339)
}

// A message past MaxAge gets one final try; a recipient still deferred
// fails with 4.4.7 and the last reply, and is bounced. A longer MaxAge
// keeps it queued.
func TestExpiryAfterFinalTry(t *testing.T) {
	state := envelope("<alice@example.test>", "busy@a.test", "bob@a.test") +
		"X-Envelope-Arrival: " + ago(6*24*time.Hour) + "\nX-Envelope-Attempts: 30\nX-Envelope-Next-Attempt: " + ago(time.Minute) + "\n"
	tests := []struct {
		name    string
		maxAge  time.Duration
		notDue  bool // the next attempt is an hour away
		expired bool
	}{
		{"default lifetime of 5 days", 0, false, true},
		{"MaxAge 200h", 200 * time.Hour, false, false},
		{"MaxAge 1h, next attempt not due: final try now", time.Hour, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := lifeWorld(t)
			st := state
			if tc.notDue {
				st = strings.Replace(st, ago(time.Minute), time.Now().Add(time.Hour).UTC().Format(time.RFC3339), 1)
			}
			w.put("cur", "1.P1R1.old", st+original)
			w.cfg.MaxAge = tc.maxAge
			sum := w.run()
			if c := w.rcptCount(); c["bob@a.test"] != 1 {
				t.Errorf("bob@ was not given the final try: %v", c)
			}
			if !tc.expired {
				if sum.Totals.Deferred != 1 || sum.Totals.Failed != 0 {
					t.Errorf("totals %+v, want busy@ deferred", sum.Totals)
				}
				if m := w.load("cur", "1.P1R1.old"); !slices.Equal(m.To, []string{"busy@a.test"}) || len(w.dsns()) != 0 {
					t.Errorf("not expired: pending %v, %d DSNs", m.To, len(w.dsns()))
				}
				return
			}
			if sum.Totals.Failed != 1 || sum.Totals.Deferred != 0 || sum.Bounces != 1 {
				t.Errorf("totals %+v, %d bounces: want busy@ expired and one DSN", sum.Totals, sum.Bounces)
			}
			if _, ok := rows(t, sum)["a.test"]; !ok {
				t.Errorf("no a.test row: %+v", sum.Domains)
			}
			// The final try's 451 makes one outcome: the expiry, at the
			// relay tried, quoting the 451.
			ev := w.outcomes("busy@a.test")
			relay := "mx.a.test[127.0.0.2]:" + strconv.Itoa(w.port)
			if len(ev) != 1 || ev[0].Relay != relay || ev[0].DSN != "4.4.7" || ev[0].Status != Bounced ||
				!strings.HasPrefix(ev[0].Reply, "4.4.7 delivery time expired") || !strings.HasSuffix(ev[0].Reply, "last reply: 451 4.7.1 Greylisted, try again later") {
				t.Errorf("busy@a.test's outcomes %+v, want one: bounced with 4.4.7 at mx.a.test, quoting the 451", ev)
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
// for longer than RetryMax, and a future arrival is not "expired" but is
// reset to now; a next attempt 20 minutes away waits, unless All.
func TestClockSkew(t *testing.T) {
	future := time.Now().Add(3 * 365 * 24 * time.Hour).UTC().Format(time.RFC3339)
	w := lifeWorld(t)
	w.put("cur", "1.P1R1.skewed", envelope("<alice@example.test>", "busy@a.test")+"X-Envelope-Arrival: "+future+
		"\nX-Envelope-Attempts: 1\nX-Envelope-Next-Attempt: "+future+"\n"+original)
	w.put("cur", "2.P1R1.soon", envelope("<alice@example.test>", "soon@a.test")+"X-Envelope-Arrival: "+ago(time.Hour)+
		"\nX-Envelope-Attempts: 1\nX-Envelope-Next-Attempt: "+time.Now().Add(20*time.Minute).UTC().Format(time.RFC3339)+"\n"+original)
	before := time.Now().Truncate(time.Second)
	if sum := w.run(); sum.Totals.Deferred != 1 || sum.NotDue != 1 {
		t.Fatalf("totals %+v, %d not due: want the skewed message tried and deferred, one not due", sum.Totals, sum.NotDue)
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
	w.cfg.All = true
	if sum := w.run(); sum.Totals.Deferred != 1 || w.rcptCount()["soon@a.test"] != 1 { // busy@ is still deferred
		t.Errorf("All: totals %+v, soon@ copies %d", sum.Totals, w.rcptCount()["soon@a.test"])
	}
}

// The retry schedule: the first retry after RetryMin, doubling, capped by
// RetryMax, each ±10%, stored in UTC; a run before the next attempt tries
// nothing.
func TestRetrySchedule(t *testing.T) {
	tests := []struct {
		name               string
		retryMin, retryMax time.Duration
		attempts           int // attempts already made
		lo, hi             time.Duration
	}{
		{"default first retry", 0, 0, 0, 270 * time.Second, 330 * time.Second},
		{"RetryMin 10m", 10 * time.Minute, 0, 0, 9 * time.Minute, 11 * time.Minute},
		{"third attempt doubles twice", 10 * time.Minute, 0, 2, 36 * time.Minute, 44 * time.Minute},
		{"capped by RetryMax", 10 * time.Minute, 15 * time.Minute, 5, 13*time.Minute + 30*time.Second, 15 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := lifeWorld(t)
			w.put("new", "1.P1R1.host", envelope("<alice@example.test>", "busy@a.test")+
				"X-Envelope-Attempts: "+strconv.Itoa(tc.attempts)+"\n"+original)
			w.cfg.RetryMin, w.cfg.RetryMax = tc.retryMin, tc.retryMax
			now := time.Now()
			if sum := w.run(); sum.Totals.Deferred != 1 {
				t.Fatalf("totals %+v, want busy@ deferred", sum.Totals)
			}
			raw, err := os.ReadFile(filepath.Join(w.sp.Dir(), "cur", "1.P1R1.host"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(raw), "Z\nX-Envelope-Reply") || !strings.Contains(string(raw), "X-Envelope-Next-Attempt: ") {
				t.Errorf("state is not in UTC:\n%s", raw)
			}
			m := w.load("cur", "1.P1R1.host")
			if d := m.NextAttempt.Sub(now); d < tc.lo-time.Second || d > tc.hi+time.Second || m.Attempts != tc.attempts+1 {
				t.Errorf("next attempt in %v after %d attempts, want %v..%v", d, m.Attempts, tc.lo, tc.hi)
			}
			if sum := w.run(); sum.NotDue != 1 || len(sum.Domains) != 0 {
				t.Errorf("a run before the next attempt: %d not due, rows %+v; want it not due, nothing tried", sum.NotDue, sum.Domains)
			}
		})
	}
}

// WarnAfter: one "delayed" DSN per message, for the recipient still
// pending, with the queue lifetime's end; never repeated.
func TestDelayWarningOnce(t *testing.T) {
	w := lifeWorld(t)
	arrival := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)
	w.put("new", "1.P1R1.slow", envelope("<alice@example.test>", "busy@a.test", "bob@a.test")+
		"X-Envelope-Arrival: "+arrival.Format(time.RFC3339)+"\n"+original)
	w.cfg.WarnAfter = time.Hour
	if sum := w.run(); sum.Totals.Deferred != 1 || sum.Bounces != 1 {
		t.Fatalf("run 1: totals %+v, %d DSNs enqueued; want busy@ deferred and one warning", sum.Totals, sum.Bounces)
	}
	d := w.dsns()
	if len(d) != 1 {
		t.Fatalf("%d DSNs after run 1, want one delay warning", len(d))
	}
	r := parseDSN(t, d[0].Data)
	h := r.rcptBlock(t, "busy@a.test")
	until, err := mail.ParseDate(h.Get("Will-Retry-Until"))
	if r.top.Get("Subject") != "Delayed Mail (still being retried)" || len(r.perRcpt) != 1 || h.Get("Action") != "delayed" ||
		h.Get("Status") != "4.7.1" || err != nil || !until.Equal(arrival.Add(DefaultMaxAge)) {
		t.Errorf("delay warning: subject %q, blocks %v (%v)", r.top.Get("Subject"), r.perRcpt, err)
	}
	if m := w.load("cur", "1.P1R1.slow"); m.Warned.IsZero() {
		t.Error("X-Envelope-Warned not recorded")
	}
	w.cfg.All = true
	for run := 2; run <= 3; run++ {
		if sum := w.run(); sum.Totals.Deferred != 1 || sum.Bounces != 0 || len(w.dsns()) != 1 {
			t.Errorf("run %d: totals %+v, %d DSNs; the warning must not be repeated", run, sum.Totals, len(w.dsns()))
		}
	}
}
