// Package batch plans and runs one flush: every due recipient grouped by
// domain before any connection opens, one worker per domain under an errgroup
// whose limit is the connection limit, and each recipient's outcome turned
// into a spool state change and a summary row.
//
// Invariants:
//   - a domain's whole batch goes to one worker, which reuses one SMTP session
//     for all of it and reconnects only when that session is lost;
//   - a worker has at most one message file open (deliver opens, streams and
//     closes each message before the next), so open files are bounded by the
//     connection limit, not by the queue's length;
//   - a message's spool file changes once, after the last of its domain
//     batches is done; a recipient with no outcome is deferred, never lost.
package batch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mxflush/mxflush/deliver"
	"github.com/mxflush/mxflush/mx"
	"github.com/mxflush/mxflush/spool"
)

// Resolver turns a domain into an ordered route. *mx.Resolver is one; errors
// should be *mx.Error (anything else counts as temporary).
type Resolver interface {
	Lookup(ctx context.Context, domain string) (mx.Route, error)
}

// Config is what a run needs besides the spool.
type Config struct {
	MaxConns int             // concurrent SMTP sessions at most (>= 1)
	Deliver  deliver.Options // Helo, Port, timeouts for every session
	Resolver Resolver
	DryRun   bool          // resolve and plan, connect to no SMTP server, change nothing
	All      bool          // every message is due, whatever its next-attempt time
	RetryMin time.Duration // first retry delay (default 5m)
	RetryMax time.Duration // longest retry delay (default 4h)
	Now      func() time.Time
	OnResult func(Event) // called once per recipient outcome, from worker goroutines; may be nil
}

// Event is one recipient's outcome, for the log line.
type Event struct {
	ID     string        // spool file name
	Rcpt   string        // as spooled
	Domain string        // the batch's domain
	Relay  string        // "host[ip]:port", or "none" when no session was made
	Delay  time.Duration // since the message's arrival
	Status Status
	DSN    string // enhanced status code, "2.0.0", "4.4.1", "5.1.10"
	Reply  string // the server's reply or the local reason
}

type runner struct {
	cfg   Config
	spool *spool.Spool
	now   func() time.Time

	mu       sync.Mutex
	problems []Problem
}

// Run scans the spool, plans and delivers. It returns an error only when the
// spool cannot be scanned at all; every per-message and per-domain failure is
// in the Summary. The caller holds the spool lock.
func Run(ctx context.Context, sp *spool.Spool, cfg Config) (*Summary, error) {
	if cfg.MaxConns < 1 {
		cfg.MaxConns = 1
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 5 * time.Minute
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(4*time.Hour, cfg.RetryMin)
	}
	r := &runner{cfg: cfg, spool: sp, now: cfg.Now}
	if r.now == nil {
		r.now = time.Now
	}
	start := r.now()
	sum := &Summary{Started: start.UTC(), DryRun: cfg.DryRun}

	msgs, probs, err := scan(ctx, sp, cfg.DryRun)
	if err != nil {
		return nil, fmt.Errorf("scanning spool %s: %w", sp.Dir(), err)
	}
	for _, p := range probs {
		var pe *spool.ParseError
		r.problem(Problem{ID: p.ID, Reason: p.Reason, MovedTo: p.MovedTo, IOError: !errors.As(p.Err, &pe)})
	}
	plan := NewPlan(msgs, start, cfg.All)
	sum.NotDue = plan.NotDue

	stats := make([]DomainStats, len(plan.Batches))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cfg.MaxConns)
	if !cfg.DryRun {
		r.invalid(plan, sum)
	}
	for i, b := range plan.Batches {
		g.Go(func() error {
			stats[i] = r.domain(gctx, b)
			return nil
		})
	}
	_ = g.Wait() // workers never return errors: one failing domain never stops the others
	sum.Domains = append(sum.Domains, stats...)
	sum.total()
	sum.Totals.Messages = plan.Messages
	sum.Problems = append(sum.Problems, r.problems...)
	sum.Seconds = r.now().Sub(start).Seconds()
	sum.Totals.Seconds = sum.Seconds
	return sum, nil
}

// scan reads every envelope in new/ and cur/. A dry run uses List, which
// reports invalid files without moving them: it changes nothing.
func scan(ctx context.Context, sp *spool.Spool, dry bool) ([]*spool.Message, []spool.Problem, error) {
	if !dry {
		return sp.Scan(ctx)
	}
	var msgs []*spool.Message
	var probs []spool.Problem
	for _, q := range []string{spool.QueueNew, spool.QueueCur} {
		m, p, err := sp.List(q)
		if err != nil {
			return nil, nil, err
		}
		msgs, probs = append(msgs, m...), append(probs, p...)
	}
	return msgs, probs, nil
}

// invalid fails the recipients whose address breaks the grammar (status
// 5.1.3, RFC 3463) and applies messages that have no routable recipient.
func (r *runner) invalid(p *Plan, sum *Summary) {
	if len(p.invalid) == 0 {
		return
	}
	row := DomainStats{Domain: "(invalid address)"}
	seen := map[*msgState]bool{}
	for _, inv := range p.invalid {
		reply := "5.1.3 " + inv.err.Error()
		inv.state.record(inv.rcpt, outcome{status: Bounced, reply: reply})
		row.Recipients++
		row.Failed++
		if !seen[inv.state] {
			seen[inv.state] = true
			row.Messages++
		}
		r.event(Event{ID: inv.state.m.ID, Rcpt: inv.rcpt, Relay: "none", Status: Bounced, DSN: "5.1.3",
			Reply: inv.err.Error(), Delay: r.now().Sub(inv.state.m.Arrival)})
	}
	for st := range seen {
		if st.pending == 0 {
			r.applyOrReport(st)
		}
	}
	sum.Domains = append(sum.Domains, row)
}

func (r *runner) event(e Event) {
	if r.cfg.OnResult != nil {
		r.cfg.OnResult(e)
	}
}

func (r *runner) problem(p Problem) {
	r.mu.Lock()
	r.problems = append(r.problems, p)
	r.mu.Unlock()
}

func (r *runner) applyOrReport(st *msgState) {
	if err := r.apply(st); err != nil {
		r.problem(Problem{ID: st.m.ID, Reason: err.Error(), IOError: true})
	}
}

// finish records the outcome of every recipient of it and applies the
// message when this was its last batch.
func (r *runner) finish(it *Item, res map[string]outcome) {
	for i, rcpt := range it.Rcpts {
		it.state.record(it.orig[i], res[rcpt])
	}
	if it.state.done() {
		r.applyOrReport(it.state)
	}
}

// classify maps a deliver or mx error to an outcome; anything unclassified is
// temporary (a relayer that defers by mistake retries, one that bounces by
// mistake loses mail).
func classify(err error) (Status, string, string) {
	var de *deliver.Error
	var me *mx.Error
	switch {
	case errors.As(err, &de):
		st := Deferred
		if de.Permanent {
			st = Bounced
		}
		return st, de.Status, replyText(de.Code, de.Status, de.Msg)
	case errors.As(err, &me):
		st := Deferred
		if me.Permanent {
			st = Bounced
		}
		return st, me.Status, replyText(me.Code, me.Status, me.Msg)
	default:
		return Deferred, "4.0.0", err.Error()
	}
}

func replyText(code int, status, msg string) string {
	switch {
	case code != 0 && status != "":
		return fmt.Sprintf("%d %s %s", code, status, msg)
	case code != 0:
		return fmt.Sprintf("%d %s", code, msg)
	case status != "":
		return status + " " + msg
	}
	return msg
}
