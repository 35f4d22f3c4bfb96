package batch

import (
	"strings"
	"testing"
	"time"

	"github.com/mxflush/mxflush/spool"
)

func TestRetryDelay(t *testing.T) {
	min, max := 5*time.Minute, 4*time.Hour
	for _, tc := range []struct {
		attempts int
		u        float64
		want     time.Duration
	}{
		{1, 0.5, 5 * time.Minute},        // the plain backoff
		{1, 0, 5 * time.Minute},          // -10% would be under the minimum
		{1, 0.999999, 330 * time.Second}, // +10%
		{3, 0, 18 * time.Minute},         // 20m - 10%
		{3, 1, 22 * time.Minute},         // 20m + 10%
		{7, 0, 216 * time.Minute},        // 4h - 10%
		{7, 1, 4 * time.Hour},            // +10% would be over the maximum
	} {
		got := retryDelay(tc.attempts, min, max, tc.u)
		if diff := got - tc.want; diff < -time.Second || diff > time.Second {
			t.Errorf("retryDelay(%d, u=%v) = %v, want %v", tc.attempts, tc.u, got, tc.want)
		}
	}
}

// Clock skew: a next attempt beyond the longest backoff is due, a near one
// is not unless --all; a message past its lifetime is due for its final
// try; a future arrival has age 0 and is not expired.
func TestDueAndExpiry(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	cfg := Config{RetryMin: 5 * time.Minute, RetryMax: 4 * time.Hour, MaxAge: 5 * 24 * time.Hour}
	msg := func(arrival, next time.Duration) *spool.Message {
		m := &spool.Message{}
		m.Arrival = now.Add(arrival)
		if next != 0 {
			m.NextAttempt, m.Attempts = now.Add(next), 1
		}
		return m
	}
	tests := []struct {
		name         string
		m            *spool.Message
		all          bool
		due, expired bool
	}{
		{"never tried", msg(-time.Hour, 0), false, true, false},
		{"next attempt passed", msg(-time.Hour, -time.Minute), false, true, false},
		{"next attempt in 20 minutes", msg(-time.Hour, 20*time.Minute), false, false, false},
		{"next attempt in 20 minutes, with --all", msg(-time.Hour, 20*time.Minute), true, true, false},
		{"next attempt exactly the longest backoff away", msg(-time.Hour, 4*time.Hour), false, false, false},
		{"clock skew: queued and next attempt 3 years ahead", msg(3*365*24*time.Hour, 3*365*24*time.Hour), false, true, false},
		{"6 days old, next attempt a minute ago", msg(-6*24*time.Hour, -time.Minute), false, true, true},
		{"past the lifetime, next attempt later: final try now", msg(-6*24*time.Hour, time.Hour), false, true, true},
		{"never tried, arrival 10 days ago: not expired on its first try", msg(-10*24*time.Hour, 0), false, true, false},
		{"never tried, modified 10 days ago: not expired on its first try", fromMtime(msg(-10*24*time.Hour, 0)), false, true, false},
	}
	for _, tc := range tests {
		c := cfg
		c.All = tc.all
		if got := c.due(tc.m, now); got != tc.due {
			t.Errorf("%s: due = %v, want %v", tc.name, got, tc.due)
		}
		if got := c.expired(tc.m, now); got != tc.expired {
			t.Errorf("%s: expired = %v, want %v", tc.name, got, tc.expired)
		}
	}
	if a := cfg.age(msg(time.Hour, 0), now); a != 0 {
		t.Errorf("age of a message from the future = %v, want 0", a)
	}
}

func fromMtime(m *spool.Message) *spool.Message {
	m.ArrivalFromMtime = true
	return m
}

// The next attempt is a jittered backoff from now, but never past the end
// of the message's lifetime: the final try comes when the lifetime ends.
func TestNextAttempt(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	cfg := Config{RetryMin: 5 * time.Minute, RetryMax: 4 * time.Hour, MaxAge: 5 * 24 * time.Hour}
	for range 100 {
		next := cfg.nextAttempt(now.Add(-time.Hour), 1, now)
		if d := next.Sub(now); d < 5*time.Minute-time.Second || d > 330*time.Second || next.Location() != time.UTC || next.Nanosecond() != 0 {
			t.Fatalf("first retry at %v (+%v), want 5m to 5m30s from now, UTC seconds", next, d)
		}
	}
	arrival := now.Add(-5*24*time.Hour + time.Hour) // the lifetime ends in an hour
	if next := cfg.nextAttempt(arrival, 8, now); !next.Equal(arrival.Add(cfg.MaxAge + time.Second)) {
		t.Errorf("next attempt %v, want just past the end of the lifetime %v", next, arrival.Add(cfg.MaxAge))
	}
}

func TestExpire(t *testing.T) {
	o := expire(outcome{status: Deferred, reply: "451 4.7.1 Greylisted", relay: "mx.a.test[127.0.0.2]:25"}, 6*24*time.Hour+2*time.Hour, 5*24*time.Hour)
	want := "4.4.7 delivery time expired: queued for 6d2h, longer than the queue lifetime of 5d0h; last reply: 451 4.7.1 Greylisted"
	if o.status != Bounced || o.reply != want || o.last != "451 4.7.1 Greylisted" || o.relay != "mx.a.test[127.0.0.2]:25" ||
		!strings.HasPrefix(o.note, "delivery time expired") {
		t.Errorf("expire = %+v", o)
	}
	if enhanced(o.reply, "5.0.0") != "4.4.7" || enhanced("550 5.1.1 No such user", "5.0.0") != "5.1.1" || enhanced("timeout", "4.0.0") != "4.0.0" {
		t.Error("enhanced status codes")
	}
}
