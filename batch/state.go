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
	relay  string // the server that gave reply, "host[ip]:port"; "none" or "" when no server did
	last   string // expired (4.4.7) only: the last reply before the lifetime ended
	note   string // expired only: the plain-words reason, for the DSN
}

// msgState collects the outcomes of one message's recipients across the
// domain batches it takes part in, and applies them to the spool when the
// last of its batches is done.
type msgState struct {
	mu       sync.Mutex
	m        *spool.Message
	pending  int                // batches of this message still running
	expired  bool               // older than MaxAge at plan time: this is its final try
	changed  bool               // its file was swapped after the scan: reported once (see changedFile)
	outcomes map[string]outcome // made by the first record, dropped once applied (100,000 kept to the end cost 80 MB)
}

func newMsgState(m *spool.Message) *msgState {
	return &msgState{m: m}
}

// record stores the outcome of rcpt (as spooled).
func (s *msgState) record(rcpt string, o outcome) {
	s.mu.Lock()
	if s.outcomes == nil {
		s.outcomes = make(map[string]outcome, len(s.m.To))
	}
	s.outcomes[rcpt] = o
	s.mu.Unlock()
}

// addPending counts n more of the message's items in flight (n may be
// negative: items merged into one).
func (s *msgState) addPending(n int) {
	s.mu.Lock()
	s.pending += n
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

// apply turns the collected outcomes into one spool state change, in this
// order:
//
//  1. Sort the recipients: delivered; failed in this run ("fresh"); still
//     pending (deferred, or no outcome because the run was cancelled before
//     reaching it: deferred, never lost).
//  2. notify: enqueue one DSN to the sender for all the fresh failures (and
//     the pending ones when the delay warning is due). If that fails, stop:
//     the original is left exactly as it was and the error is reported
//     (a full disk, for example); its recipients are tried again next run.
//  3. Record: all delivered -> removed; something pending -> rewritten into
//     cur/ with only the pending recipients and a jittered next attempt;
//     nothing pending but failures -> failed/. Each fresh failure's
//     X-Envelope-Failed line carries the notice decided in step 2, and
//     failures already in the file are kept as they are, so a later run
//     never bounces them again.
//
// If the state change fails before its rename, the DSN just enqueued is
// removed again, so the retry of the original does not send a second one;
// if it fails after the rename (an fsync), the new state stands and so does
// the DSN.
func (r *runner) apply(s *msgState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.m
	now := r.now()
	env := m.Envelope
	env.To = nil
	env.Replies = map[string]string{}
	env.Failed = append([]spool.Failure(nil), m.Failed...)
	// The lifetime counts from when the spool first saw the message (see
	// lifeStart): an arrival written by a wrong clock, or one that is only
	// an old modification time, is replaced by now with its first state.
	env.Arrival = r.cfg.lifeStart(m, now)
	var fresh, pending []rcptResult
	sent, untouched, stopped := 0, 0, 0
	for _, rcpt := range m.To {
		o, ok := s.outcomes[rcpt]
		if !ok {
			o = outcome{status: Deferred, reply: "4.3.0 not attempted: the run ended first"}
		}
		switch o.status {
		case skipped, changed, unselected: // the run stopped first, the file was swapped, or not selected: pending, its last reply kept
			if o.status == skipped {
				stopped++
			}
			untouched++
			env.To = append(env.To, rcpt)
			if rep, ok := m.Replies[rcpt]; ok {
				env.Replies[rcpt] = rep
			}
		case Sent:
			sent++
		case Bounced:
			fresh = append(fresh, rcptResult{rcpt, o})
		default:
			pending = append(pending, rcptResult{rcpt, o})
			env.To = append(env.To, rcpt)
			env.Replies[rcpt] = o.reply
		}
	}
	s.outcomes = nil // read once: fresh and pending hold what is still needed
	if untouched > 0 {
		if stopped > 0 {
			r.leftQueuedAdd(1)
		}
		if len(fresh) == 0 && len(pending) == 0 {
			// Not attempted in this run (Config.Stop, or its file was
			// swapped after the scan: changed): the file stays as
			// it was, still due, or loses only its delivered recipients
			// (journalled already), with no attempt counted.
			if sent == 0 {
				return nil
			}
			if err := r.spool.Defer(m, env); err != nil {
				return fmt.Errorf("message %s: recording its delivered recipients: %w", m.ID, err)
			}
			return nil
		}
	}
	notice, warned, bounceID, err := r.notify(m, fresh, pending, now)
	if err != nil {
		if len(fresh) > 0 {
			return fmt.Errorf("message %s: %w; its state is left unchanged and it is tried again next run", m.ID, err)
		}
		// Only the delay warning failed: record the attempt anyway, and
		// warn on a later run.
		r.problem(Problem{ID: m.ID, Reason: fmt.Sprintf("message %s: delay warning not sent: %v", m.ID, err), IOError: true})
	}
	for _, f := range fresh {
		env.Failed = append(env.Failed, spool.Failure{Rcpt: f.rcpt, Reply: f.o.reply, Notice: notice})
	}
	if warned {
		env.Warned = now
	}
	attempts := m.Attempts
	switch {
	case len(env.To) == 0 && len(env.Failed) == 0:
		// With a working crash journal the delivery is already on record,
		// so the file goes on the remover pool (the session moves on to its
		// next message) and the directory fsync waits for endJournal
		// (SyncQueues, before the journal is emptied): one fsync per run,
		// not per message.
		r.mu.Lock()
		journalled := r.journal != nil && !r.journalBad
		r.mu.Unlock()
		if journalled {
			r.removal.remove(m)
		} else {
			err = r.spool.Remove(m)
		}
	case len(env.To) == 0:
		env.Attempts++
		env.NextAttempt = time.Time{}
		err = r.spool.Fail(m, env)
	default:
		env.Attempts++
		env.NextAttempt = r.cfg.nextAttempt(env.Arrival, env.Attempts, now)
		err = r.spool.Defer(m, env)
	}
	if err != nil {
		// Defer and Fail update m only once their rename is done (spool's
		// contract), and always with one more attempt.
		if bounceID != "" && m.Attempts == attempts {
			r.unbounce(bounceID)
		}
		return fmt.Errorf("message %s: recording the outcome of %s: %w", m.ID, strings.Join(m.To, ", "), err)
	}
	return nil
}

// unbounce removes a DSN enqueued in this run whose original could not be
// updated: the original is tried again, and will bounce again if it fails.
// If the DSN cannot be removed it stays queued (a duplicate at worst).
func (r *runner) unbounce(id string) {
	r.mu.Lock()
	for i, b := range r.bounces {
		if b == id {
			r.bounces = append(r.bounces[:i], r.bounces[i+1:]...)
			r.dsns--
			break
		}
	}
	r.mu.Unlock()
	if m, err := r.spool.Load(spool.QueueNew, id); err == nil {
		r.spool.Remove(m)
	}
}
