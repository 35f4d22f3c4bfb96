package batch

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/mxflush/mxflush/spool"
)

// Defaults of the retry schedule and the queue lifetime: Postfix's
// minimal_backoff_time (300s), maximal_backoff_time (4000s, rounded up to
// 4h here) and maximal_queue_lifetime (5d), within RFC 5321 §4.5.4.1's
// advice (retry after at least 30 minutes, give up after 4-5 days).
const (
	DefaultRetryMin = 5 * time.Minute
	DefaultRetryMax = 4 * time.Hour
	DefaultMaxAge   = 5 * 24 * time.Hour
)

// jitter is the spread of a retry delay: ±10%, so that messages deferred
// together (a receiver that was down) do not all come back in the same run.
const jitter = 0.10

// due reports whether m takes part in a run at now:
//   - its next attempt is unset or not after now, or the run is --all;
//   - or its next attempt is more than RetryMax away: no schedule of ours
//     waits that long, so the time was written by a clock that was wrong or
//     has since gone back, and the message is due rather than stuck for as
//     long as the clock was off;
//   - or it is older than MaxAge: it gets its one final try now.
func (c *Config) due(m *spool.Message, now time.Time) bool {
	switch {
	case c.All, m.NextAttempt.IsZero(), !m.NextAttempt.After(now):
		return true
	case m.NextAttempt.Sub(now) > c.RetryMax:
		return true
	}
	return c.expired(m, now)
}

// lifeStart is when m's queue lifetime starts: when the spool first saw
// it. That is its arrival, except on its first attempt (Attempts 0) when
// the arrival cannot be trusted to be that: it is only the file's
// modification time (a producer's file copied with cp -p or untarred
// keeps an old one), or it is already past the lifetime (the clock jumped
// forward since it was written, or the file was restored from an old
// backup). Then the lifetime starts now, at the first attempt, and apply
// records now as the arrival with the first deferral. So a message is
// never expired on its first attempt, and one greylisting 451 cannot
// bounce it. An arrival in the future (written by a clock that was wrong)
// also starts the lifetime now.
func (c *Config) lifeStart(m *spool.Message, now time.Time) time.Time {
	switch {
	case m.Arrival.After(now):
		return now
	case m.Attempts == 0 && (m.ArrivalFromMtime || (c.MaxAge > 0 && now.Sub(m.Arrival) > c.MaxAge)):
		return now
	}
	return m.Arrival
}

// age is how long m has been queued at now, counted from lifeStart: never
// negative.
func (c *Config) age(m *spool.Message, now time.Time) time.Duration {
	return max(now.Sub(c.lifeStart(m, now)), 0)
}

// expired reports whether m has outlived the queue lifetime: its recipients
// still deferred after this run's attempt fail with 4.4.7. A message on its
// first attempt never has (see lifeStart).
func (c *Config) expired(m *spool.Message, now time.Time) bool {
	return c.MaxAge > 0 && c.age(m, now) > c.MaxAge
}

// retryDelay is the wait after attempts attempts: Backoff(attempts, min,
// max) spread by ±10% (u is uniform in [0, 1): u = 0.5 gives the plain
// backoff), then kept within [min, max].
func retryDelay(attempts int, min, max time.Duration, u float64) time.Duration {
	d := Backoff(attempts, min, max)
	d += time.Duration((2*u - 1) * jitter * float64(d))
	return clamp(d, min, max)
}

// nextAttempt is the time of a deferred message's next try after its
// attempts-th attempt at now: now plus a jittered backoff, but never after
// the end of its lifetime (arrival + MaxAge), so that the final try comes
// when the lifetime ends rather than up to RetryMax later. UTC, seconds.
func (c *Config) nextAttempt(arrival time.Time, attempts int, now time.Time) time.Time {
	next := now.Add(retryDelay(attempts, c.RetryMin, c.RetryMax, rand.Float64()))
	if end := arrival.Add(c.MaxAge); c.MaxAge > 0 && end.After(now) && next.After(end) {
		next = end.Add(time.Second) // just past the end: expired, so the try is the final one
	}
	return next.UTC().Truncate(time.Second)
}

func clamp(d, lo, hi time.Duration) time.Duration {
	return min(max(d, lo), hi)
}

// expire turns the outcome o of a recipient that is still deferred after
// the final try of a message queued for queued into a permanent failure
// with status 4.4.7 (RFC 3463 "delivery time expired"). The last reply is
// kept, in the recorded reply and as the DSN's diagnostic.
func expire(o outcome, queued, maxAge time.Duration) outcome {
	note := fmt.Sprintf("delivery time expired: queued for %s, longer than the queue lifetime of %s", days(queued), days(maxAge))
	return outcome{status: Bounced, reply: "4.4.7 " + note + "; last reply: " + o.reply, relay: o.relay, last: o.reply, note: note}
}

// days writes a duration the way a person reads a queue age: "5d2h", "3h10m", "45s".
func days(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%dd%dh", d/(24*time.Hour), (d%(24*time.Hour))/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh%dm", d/time.Hour, (d%time.Hour)/time.Minute)
	}
	return d.String()
}
