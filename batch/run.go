// Package batch plans and runs one flush. The flow goes one way:
//
//	spool scan -> plan (a batch per domain or next hop, before any
//	connection) -> resolve every key (resolve.go) -> sites (site.go:
//	the batches whose hosts and dial options are equal, one item per
//	message) -> workers (worker.go: one SMTP session each, shaped per
//	site by shape.go) -> reply -> outcome (conclude: the one place an
//	outcome is counted and logged) -> journal -> state file (state.go)
//
// Invariants:
//   - a site's items go over the site's sessions only; each worker reuses
//     one SMTP session for item after item and reconnects only when it is
//     lost; a site has at most ConnsPerSite workers (less after a
//     throttling reply), all under the MaxConns limit of the errgroup;
//   - a worker has at most one message file open (deliver opens, streams and
//     closes each message before the next), so open files are bounded by
//     the connection limit, not by the queue's length;
//   - a message's spool file changes once, after the last of its items is
//     done; a recipient with no outcome is deferred, never lost;
//   - a recipient is written to the crash journal as soon as the server
//     accepts it, once, before the worker sends the next message, so a
//     killed run sends it again only if its reply was still in flight;
//   - a permanent failure is recorded only after its DSN was enqueued (one
//     per message per run, never for a sender <>), and never bounced again;
//     a DSN enqueued in a run is delivered in a second pass of that run.
package batch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mxflush/mxflush/deliver"
	"github.com/mxflush/mxflush/mta"
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
	RetryMin time.Duration // first retry delay (default 5m); doubles per attempt, ±10% jitter
	RetryMax time.Duration // longest retry delay (default 4h); a next attempt further away is due now (clock skew)
	// MaxAge is the queue lifetime (default 5d): a message older than this
	// gets one final try, and its recipients still deferred after it fail
	// with 4.4.7 (delivery time expired) and are bounced.
	MaxAge time.Duration
	// WarnAfter, when positive, sends the sender one "delayed" DSN for a
	// message still pending at that age; never repeated. 0: no warning.
	WarnAfter time.Duration
	NoBounce  bool // record and report permanent failures, but enqueue no DSN (CI use)
	// Only, when not nil, narrows the run to the messages and recipient
	// domains it selects (see Selection); they are due now. The bounce
	// pass is not narrowed: DSNs made by the run are its own mail.
	Only     *Selection
	Now      func() time.Time
	OnResult func(Event) // called once per recipient outcome, from worker goroutines; may be nil
	// OnPlan, when not nil, is called before each pass delivers (the main
	// pass, then the bounce pass) with the recipients planned in it: the
	// progress line's total.
	OnPlan func(recipients int)

	// ConnsPerSite is how many sessions one site may use at once (< 1
	// means 1): one per 100 messages, up to this and MaxConns.
	ConnsPerSite int
	// MaxMessagesPerSession, when positive, ends a session with QUIT
	// after that many transactions and opens a new one for the next
	// message: for receivers that limit the messages per connection, or
	// to spread a long run over the receiver's addresses again. 0: no limit.
	MaxMessagesPerSession int

	// SlowRemovals, when not nil, is called once, from a goroutine of the
	// run, when removing delivered messages' files blocks in the kernel
	// (see slowRemoval), with the number of removers that may be blocked at
	// once: flush gives the Go scheduler that many more Ps, so that the
	// blocked removers do not hold up the SMTP sessions.
	SlowRemovals func(removers int)

	// Stop, when done, stops the run gracefully: no new domain, session or
	// transaction is started, the transactions in flight finish (their I/O
	// is aborted only by Run's ctx), and every recipient not reached is left
	// queued untouched and still due (not an attempt). Its cause
	// (context.Cause), such as "after --max-runtime 30s", is
	// Summary.Stopped. nil never stops.
	Stop context.Context
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
	// TLS is the session's security, "TLSv1.3:verified" ... "none" (see
	// deliver.TLSState.Token); "" when no session was made. TLSNote says
	// why a session that tried TLS went without it, with the reason.
	TLS     string
	TLSNote string
}

type runner struct {
	cfg   Config
	spool *spool.Spool
	now   func() time.Time

	ctx     context.Context // the run's: once it is cancelled, deferred means "not tried", never "expired"
	journal *spool.Journal  // crash journal of delivered recipients; nil when it could not be opened
	// stopCommit ends the journal's group commit and returns its error.
	stopCommit func() error
	removal    *remover // deletes delivered messages' files while the journal works; nil without it
	routes     routeCache
	splitSites map[string]bool // sites sent one transaction per domain for the rest of the run (see unmix)

	mu         sync.Mutex
	problems   []Problem
	bounces    []string // IDs of the DSNs enqueued in this run, for the second pass
	dsns       int      // DSNs enqueued in this run
	unapplied  int      // messages whose state change failed: their journal lines must be kept
	journalBad bool     // a journal write failed
	leftQueued int      // messages left untouched and still due because the run stopped (Config.Stop)
}

// Run scans the spool, plans and delivers, in this order:
//
//  1. Replay the crash journal a killed run may have left (see
//     spool.ReplayJournal): recipients it lists are no longer pending. A
//     message whose replay failed sits this run out.
//  2. Scan new/ and cur/; plan the due messages (see Config.due).
//  3. First pass: one errgroup of workers over the domain batches; each
//     delivered recipient is journalled as its reply arrives, and each
//     message's state is applied after its last batch, bouncing fresh
//     failures (see apply).
//  4. Second pass: the DSNs enqueued in step 3, delivered by the same
//     worker code (they are from <>, so they never bounce themselves).
//  5. Empty the journal when every state change was committed.
//
// It returns an error only when the spool cannot be scanned at all or its
// crash journal cannot be read (delivering then could send some recipients
// twice); every per-message and per-domain failure is in the Summary. The
// caller holds the spool lock.
func Run(ctx context.Context, sp *spool.Spool, cfg Config) (*Summary, error) {
	if cfg.MaxConns < 1 {
		cfg.MaxConns = 1
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = DefaultRetryMin
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(DefaultRetryMax, cfg.RetryMin)
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	r := &runner{cfg: cfg, spool: sp, now: cfg.Now, ctx: ctx}
	if r.now == nil {
		r.now = time.Now
	}
	start := r.now()
	sum := &Summary{Started: start.UTC(), DryRun: cfg.DryRun, Sites: []SiteStats{}}

	skip, err := r.startJournal(sum)
	if err != nil {
		return nil, err
	}
	msgs, probs, err := scan(ctx, sp, cfg.DryRun)
	if err != nil {
		r.endJournal(skip)
		return nil, fmt.Errorf("scanning spool %s: %w", sp.Dir(), err)
	}
	for _, p := range probs {
		var pe *spool.ParseError
		r.problem(Problem{ID: p.ID, Reason: p.Reason, MovedTo: p.MovedTo, IOError: !errors.As(p.Err, &pe)})
	}
	if cfg.DryRun {
		msgs = r.journalled(msgs)
	}
	plan := r.plan(msgs, skip, start)
	sum.NotDue, sum.NotSelected = plan.NotDue, plan.NotSelected
	if !cfg.DryRun {
		r.invalid(plan, sum)
	}
	rows, sites := r.deliver(ctx, plan, "")
	sum.Domains, sum.Sites = append(sum.Domains, rows...), append(sum.Sites, sites...)
	messages := plan.Messages
	if bp := r.bouncePlan(ctx); bp != nil {
		r.invalid(bp, sum)
		rows, sites := r.deliver(ctx, bp, PassBounces)
		sum.Domains, sum.Sites = append(sum.Domains, rows...), append(sum.Sites, sites...)
		messages += bp.Messages
	}
	r.endJournal(skip)
	if r.leftQueued > 0 {
		sum.Stopped, sum.LeftQueued = r.stopReason(), r.leftQueued
	}
	sum.total()
	sum.Totals.Messages = messages
	sum.Bounces = r.dsns
	sum.Problems = append(sum.Problems, r.problems...)
	sum.Seconds = r.now().Sub(start).Seconds()
	sum.Totals.Seconds = sum.Seconds
	return sum, nil
}

// deliver runs one pass over plan's batches: it resolves every batch's
// key first (see resolveAll), groups the batches into sites (see
// groupSites), and runs each site's workers under an errgroup whose limit
// is MaxConns. It returns one row per batch and one entry per site, marked
// with pass ("" for the main pass, PassBounces for the DSNs). A site starts
// with at most initialSessions workers and its share of MaxConns (see
// sessionsFor), and gains more, up to ConnsPerSite, while its sessions
// deliver and connection slots are free (see grow): a slot freed by a site
// that is done goes to the next site that delivers with a long queue.
func (r *runner) deliver(ctx context.Context, plan *Plan, pass string) ([]DomainStats, []SiteStats) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.cfg.MaxConns)
	total := totalItems(plan.Batches)
	if r.cfg.OnPlan != nil && !r.cfg.DryRun {
		r.cfg.OnPlan(totalRcpts(plan.Batches))
	}
	if !r.stopped() {
		r.resolveAll(gctx, plan.Batches)
	}
	sites := r.groupSites(plan.Batches)
	for _, d := range sites {
		d.cap = r.cfg.siteCap(d.batches)
		d.planned = sessionsFor(len(d.items), total, d.cap, r.cfg.MaxConns)
		d.workers = min(d.planned, initialSessions)
		if r.cfg.DryRun {
			d.workers = 1 // it only reports the plan
		}
		d.live = d.workers
		d.spawn = func() bool {
			return g.TryGo(func() error {
				r.work(gctx, d, true)
				return nil
			})
		}
		for range d.workers {
			g.Go(func() error {
				r.work(gctx, d, false)
				return nil
			})
		}
	}
	_ = g.Wait() // workers never return errors: one failing site never stops the others
	var rows []DomainStats
	var stats []SiteStats
	for _, d := range sites {
		if r.cfg.DryRun {
			d.workers = d.planned
		}
		drows, st := d.rows()
		for i := range drows {
			drows[i].Pass = pass
		}
		rows = append(rows, drows...)
		if d.hop.err == nil {
			st.Pass = pass
			stats = append(stats, st)
		}
	}
	return rows, stats
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
		r.mu.Lock()
		r.unapplied++
		r.mu.Unlock()
		r.problem(Problem{ID: st.m.ID, Reason: err.Error(), IOError: true})
	}
}

// finish journals the recipients of it that were delivered, records the
// outcome of every recipient, and applies the message when this was its
// last item. It runs on the worker right after Send returns, before the
// next message.
func (r *runner) finish(it *Item, res map[string]outcome) {
	r.settle(it, res)
	if it.state.done() {
		r.applyOrReport(it.state)
	}
}

// settle is finish without the end of the item: it journals and records
// the outcomes of it's recipients only (see keepFinal).
func (r *runner) settle(it *Item, res map[string]outcome) {
	var sent []string
	for _, rc := range it.rcpts {
		if res[rc.mbox].status == Sent && !rc.journalled {
			sent = append(sent, rc.spooled)
		}
	}
	if err := r.journal.Append(it.state.m.ID, it.state.m.UID, sent...); err != nil {
		r.journalFailed(err)
	}
	for _, rc := range it.rcpts {
		it.state.record(rc.spooled, res[rc.mbox])
	}
}

// classify maps a deliver or mx error (both *mta.Error) to an outcome; anything unclassified is
// temporary (a relayer that defers by mistake retries, one that bounces by
// mistake loses mail).
func classify(err error) (Status, string, string) {
	var e *mta.Error
	switch {
	case errors.As(err, &e):
		st := Deferred
		if e.Permanent {
			st = Bounced
		}
		return st, e.Status, e.Reply()
	default:
		return Deferred, "4.0.0", err.Error()
	}
}
