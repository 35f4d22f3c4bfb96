package batch

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mxflush/mxflush/spool"
)

// Status is what happened to one recipient in a run.
type Status string

// Recipient outcomes, named as in Postfix's logs.
const (
	Sent     Status = "sent"     // 2yz after end of data
	Deferred Status = "deferred" // 4yz, or a temporary network, DNS or local failure: tried again later
	Bounced  Status = "bounced"  // 5yz, or a permanent condition (null MX, NXDOMAIN, bad address)
)

type outcome struct {
	status Status
	reply  string // "250 2.0.0 Ok" or "451 4.7.1 Greylisted" or a local reason
}

// msgState collects the outcomes of one message's recipients across the
// domain batches it takes part in, and applies them to the spool when the
// last of its batches is done.
type msgState struct {
	mu       sync.Mutex
	m        *spool.Message
	pending  int // batches of this message still running
	outcomes map[string]outcome
}

func newMsgState(m *spool.Message) *msgState {
	return &msgState{m: m, outcomes: make(map[string]outcome, len(m.To))}
}

// record stores the outcome of rcpt (as spooled).
func (s *msgState) record(rcpt string, o outcome) {
	s.mu.Lock()
	s.outcomes[rcpt] = o
	s.mu.Unlock()
}

// done marks one batch of the message finished and reports whether it was
// the last one, so that the caller applies the outcomes.
func (s *msgState) done() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending--
	return s.pending == 0
}

// Backoff returns the wait before the next attempt of a message that has had
// attempts attempts so far: min doubled per earlier attempt, capped at max.
func Backoff(attempts int, min, max time.Duration) time.Duration {
	d := min
	for i := 1; i < attempts && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}

// apply turns the collected outcomes into one spool state change: all
// delivered -> removed; something still deferred -> rewritten into cur/ with
// only the pending recipients; nothing pending but failures -> failed/.
// A recipient with no outcome (a worker was cancelled before reaching it)
// counts as deferred, so nothing is ever lost.
func (r *runner) apply(s *msgState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.m
	env := m.Envelope
	env.To = nil
	env.Replies = map[string]string{}
	env.Failed = append([]spool.Failure(nil), m.Failed...)
	for _, rcpt := range m.To {
		o, ok := s.outcomes[rcpt]
		if !ok {
			o = outcome{status: Deferred, reply: "4.3.0 not attempted: the run ended first"}
		}
		switch o.status {
		case Sent:
		case Bounced:
			env.Failed = append(env.Failed, spool.Failure{Rcpt: rcpt, Reply: o.reply})
		default:
			env.To = append(env.To, rcpt)
			env.Replies[rcpt] = o.reply
		}
	}
	var err error
	switch {
	case len(env.To) == 0 && len(env.Failed) == 0:
		err = r.spool.Remove(m)
	case len(env.To) == 0:
		env.Attempts++
		env.NextAttempt = time.Time{}
		err = r.spool.Fail(m, env)
	default:
		env.Attempts++
		now := r.now()
		env.NextAttempt = now.Add(Backoff(env.Attempts, r.cfg.RetryMin, r.cfg.RetryMax)).UTC().Truncate(time.Second)
		err = r.spool.Defer(m, env)
	}
	if err != nil {
		return fmt.Errorf("message %s: recording the outcome of %s: %w", m.ID, strings.Join(m.To, ", "), err)
	}
	return nil
}
