package batch

import (
	"context"
	"time"

	"github.com/mxflush/mxflush/addr"
	"github.com/mxflush/mxflush/spool"
)

// PassBounces marks the summary rows of the second pass, which delivers the
// DSNs enqueued during the run.
const PassBounces = "bounces"

// plan keeps the messages that are due (Config.due) and not held back by a
// failed journal replay (skip), groups them by domain, and marks those past
// the queue lifetime for their final try.
func (r *runner) plan(msgs []*spool.Message, skip map[string]bool, now time.Time) *Plan {
	due := make([]*spool.Message, 0, len(msgs))
	notDue, notSelected := 0, 0
	only := r.cfg.Only
	for _, m := range msgs {
		switch {
		case skip[m.ID]:
		case only != nil && !only.message(m, addr.Domain):
			notSelected++
		case only != nil || r.cfg.due(m, now): // selected: now, whatever its next attempt
			due = append(due, m)
		default:
			notDue++
		}
	}
	p := newPlan(due, now, true, r.cfg.hopKey(), only)
	p.NotDue, p.NotSelected = notDue, notSelected
	for _, st := range p.states {
		st.expired = r.cfg.expired(st.m, now)
	}
	return p
}

// bouncePlan plans the second pass: the DSNs enqueued so far in this run,
// read back from new/. Each is due now and is never "expired" (it has just
// arrived). It returns nil when there are none, when the run was cancelled
// (they wait in new/ for the next run) or on a dry run.
func (r *runner) bouncePlan(ctx context.Context) *Plan {
	r.mu.Lock()
	ids := r.bounces
	r.bounces = nil
	r.mu.Unlock()
	if len(ids) == 0 || ctx.Err() != nil || r.cfg.DryRun {
		return nil
	}
	if r.stopped() {
		r.leftQueuedAdd(len(ids)) // in new/, due: the next run delivers them
		return nil
	}
	msgs := make([]*spool.Message, 0, len(ids))
	for _, id := range ids {
		m, err := r.spool.Load(spool.QueueNew, id)
		if err != nil {
			r.problem(Problem{ID: id, Reason: "a DSN enqueued by this run cannot be read back; it is sent next run: " + err.Error(), IOError: true})
			continue
		}
		msgs = append(msgs, m)
	}
	return NewPlanBy(msgs, r.now(), true, r.cfg.hopKey())
}

// journalled is the dry run's view of a crash journal: the recipients it
// lists are taken out of the messages in memory, and the spool is left as
// it is.
func (r *runner) journalled(msgs []*spool.Message) []*spool.Message {
	d, _, err := r.spool.ReadJournal()
	if err != nil || d.Len() == 0 {
		return msgs
	}
	out := msgs[:0]
	for _, m := range msgs {
		if done := d.For(m); len(done) > 0 {
			var to []string
			for _, rcpt := range m.To {
				if !contains(done, rcpt) {
					to = append(to, rcpt)
				}
			}
			if len(to) == 0 {
				continue
			}
			m.To = to
		}
		out = append(out, m)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
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
