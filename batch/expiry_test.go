package batch

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/spool"
)

// A message whose arrival is long past (a producer's file copied with
// cp -p, untarred, or written before the clock jumped forward) is not
// expired on its first try: one greylisting 451 defers it, and its
// lifetime counts from that first try. A run past --max-age counted from
// then does expire it.
func TestFirstTryNeverExpires(t *testing.T) {
	for _, tc := range []struct{ name, content string }{
		{"mtime only", "From: a@src.test\nTo: bob@a.test\nSubject: old\n\nbody\n"},
		{"arrival line", "X-Envelope-From: <a@src.test>\nX-Envelope-To: <bob@a.test>\nX-Envelope-Arrival: 2026-11-19T12:00:00Z\n\nSubject: old\n\nbody\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newTestWorld(t, testnet.SMTPOptions{Rcpt: func(string) error {
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "Greylisted"}
			}})
			now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
			p := w.put(t, "new", "1.old", tc.content)
			tenDays := now.Add(-10 * 24 * time.Hour)
			if err := os.Chtimes(p, tenDays, tenDays); err != nil {
				t.Fatal(err)
			}
			w.cfg.Now = func() time.Time { return now }
			sum := runLive(t, w.sp, w.cfg)
			if sum.Totals.Deferred != 1 || sum.Totals.Failed != 0 || sum.Bounces != 0 {
				t.Fatalf("first try: totals %+v, bounces %d; want it deferred, not bounced", sum.Totals, sum.Bounces)
			}
			m, err := w.sp.Load(spool.QueueCur, "1.old")
			if err != nil {
				t.Fatal(err)
			}
			if !m.Arrival.Equal(now) || m.Attempts != 1 {
				t.Errorf("after the first try: arrival %v, attempts %d; want the time of the first try, 1", m.Arrival, m.Attempts)
			}

			// A day later: still within the lifetime counted from the first try.
			w.cfg.All = true
			w.cfg.Now = func() time.Time { return now.Add(24 * time.Hour) }
			if sum := runLive(t, w.sp, w.cfg); sum.Totals.Deferred != 1 || sum.Totals.Failed != 0 {
				t.Fatalf("a day later: totals %+v; want it deferred", sum.Totals)
			}
			// Past --max-age (5d) from the first try: expired.
			w.cfg.Now = func() time.Time { return now.Add(DefaultMaxAge + time.Hour) }
			sum = runLive(t, w.sp, w.cfg)
			if len(sum.Domains) == 0 || sum.Domains[0].Failed != 1 || sum.Bounces != 1 {
				t.Errorf("past the lifetime: rows %+v, bounces %d; want it expired and bounced", sum.Domains, sum.Bounces)
			}
			if _, err := os.Stat(filepath.Join(w.sp.Dir(), "failed", "1.old")); err != nil {
				t.Errorf("expired message not in failed/: %v", err)
			}
		})
	}
}
