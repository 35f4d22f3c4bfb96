package batch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/mxflush/mxflush/deliver"
	"github.com/mxflush/mxflush/mta"
	"github.com/mxflush/mxflush/spool"
)

// work is one worker of a site. It opens one SMTP session to the site's
// hosts (resolved before the pass, see resolveAll) and sends the items it takes from
// the batch's shared queue over it, one message file open at a time, until
// the queue is empty; with PIPELINING the next item's commands go out
// behind the current one's final dot (deliver.Session.SendThen). A lost session (a 421, a dropped connection, a
// timeout) is replaced; the item it was carrying is sent once more on the
// new session when its final dot was never sent, and deferred otherwise.
// When no session can be made: while another worker of the domain holds
// one, the item is handed back to it; otherwise every item still unsent is
// deferred (or bounced, when every MX refused permanently) at once, without
// a connection attempt per message.
//
// A worker started by grow is on probation (probe) until its first
// delivery or its end: a site never has more sessions on probation than
// sessions that have delivered (see grow).
func (r *runner) work(ctx context.Context, d *siteRun, probe bool) {
	start := r.now()
	st := &tally{} // this worker's counts, merged into d at the end
	var sess *deliver.Session
	counted := false // hold was called: this worker holds a session or is opening one
	shed := false    // ending because the site is over its cap (see siteRun.shed)
	defer func() {
		if probe {
			d.probeDone()
		}
		if sess != nil {
			sess.Close()
		}
		// A dry run takes no item: what is left is not a failure.
		if rest, err := d.leave(counted, shed); len(rest) > 0 && r.stopped() {
			r.skip(rest)
		} else if len(rest) > 0 && !r.cfg.DryRun {
			st.Error = rowError(err)
			r.failAll(rest, err, "none", st)
		}
		d.merge(st, start, r.now())
	}()

	if r.stopped() { // no new domain after a stop
		r.skip(d.drain())
		return
	}
	hosts := d.hop.hosts
	if err := d.hop.err; err != nil {
		if items := d.drain(); len(items) > 0 {
			st.Error = rowError(err)
			r.failAll(items, err, "none", st)
		}
		return
	}
	if r.cfg.DryRun {
		if len(d.items) > 0 {
			st.Connections = d.planned // the most it may have at once
		}
		return
	}

	dopts := r.cfg.dialOptions(d.key()) // TLS policy and credentials of the next hop
	var tls deliver.TLSState            // the current session's
	var it *Item
	sessDelivered := false // the current session delivered to some recipient
	sessMsgs := 0          // transactions of the current session, the look-ahead's included
	perSession := r.cfg.MaxMessagesPerSession
	for {
		if r.stopped() {
			// No new transaction (nor session) after a stop: what this
			// worker holds and what is left of the batch stay queued.
			rest := d.drain()
			if it != nil {
				rest = append(rest, it)
			}
			r.skip(rest)
			return
		}
		if sess == nil && d.shed() {
			// A throttling reply took a session from the site: this
			// worker ends, and its item goes to one that stays.
			shed = true
			if it != nil {
				d.putBack(it)
			}
			return
		}
		if it == nil {
			if it = d.take(); it == nil {
				return
			}
		}
		if ctx.Err() != nil {
			r.failAll(append([]*Item{it}, d.drain()...), fmt.Errorf("run cancelled: %w", ctx.Err()), st.Relay, st)
			return
		}
		if sess == nil {
			if !counted {
				d.hold()
				counted = true
			}
			d.mu.Lock()
			dopts.NoPipelining = d.unordered
			d.mu.Unlock()
			s, err := deliver.Dial(ctx, hosts, dopts)
			if err != nil {
				st.noteConfig(err)
				counted = false
				rest, gerr := d.giveUp(it, err)
				if rest == nil {
					// Another session of the site works: the receiver
					// would not take one more from us (a 421 greeting
					// over its limit on connections per client), so the
					// site keeps to what it has (see throttled).
					d.throttled()
				}
				if len(rest) > 0 {
					st.Error = rowError(gerr)
					err = gerr
					r.failAll(rest, err, "none", st)
				}
				return
			}
			d.mu.Lock()
			d.opened = true
			d.mu.Unlock()
			sess, sessMsgs = s, 0
			st.Connections++
			st.Relay = sess.Relay()
			tls = sess.TLS()
			st.addTLS(tls)
		}
		// The look-ahead: while it waits for the reply to this message's
		// final dot, the session sends the next item's MAIL, RCPT and
		// DATA (RFC 2920), and that item must be the next one sent on it.
		var ahead *Item
		next := func() (deliver.Message, bool) {
			if r.stopped() || ctx.Err() != nil {
				return deliver.Message{}, false
			}
			if perSession > 0 && sessMsgs+2 > perSession {
				return deliver.Message{}, false // the session ends after this message
			}
			if d.over() {
				// Over the site's cap after a throttling reply: no
				// look-ahead, so that this session can end after this
				// message (see shed) while the queue is still long.
				return deliver.Message{}, false
			}
			if ahead = d.take(); ahead == nil {
				return deliver.Message{}, false
			}
			return r.message(ahead), true
		}
		res, err := sess.SendThen(ctx, r.message(it), next)
		sessMsgs++
		st.saved += copiesSaved(it, res)
		// A refusal in a transaction for several domains that may mean
		// "not for this server" is not final: those recipients go back,
		// one transaction per domain (see unmix). it is nil when none is
		// left to record.
		it, res = r.unmix(d, it, res)
		delivered := anyDelivered(res)
		sessDelivered = sessDelivered || delivered
		if delivered {
			// The site accepts mail: the setbacks so far were not in a
			// row, and it may gain a session (see grow).
			if probe {
				probe = false
				d.probeDone()
			}
			d.delivered()
			d.grow(d.spawn)
		}
		throttled := throttling(err) || anyThrottling(res)
		if throttled {
			d.throttled()
		}
		if err != nil && ahead != nil {
			d.putBack(ahead) // not sent: whichever worker takes it next sends it
			ahead = nil
		}
		if err != nil {
			sess.Close()
			sess = nil
			var lost *deliver.LostError
			unordered := errors.As(err, &lost) && lost.Err.OutOfOrder
			if unordered {
				// RFC 2920 §3.1 is broken by this server: one command
				// at a time from now on, for every worker of the batch.
				// Such a loss is no throttle: it does not count towards
				// barrenLimit (the sessions opened with PIPELINING
				// before the first one saw it may all be lost at once),
				// though one that delivered still resets the count.
				d.mu.Lock()
				d.unordered = true
				d.mu.Unlock()
			}
			if (!unordered || sessDelivered) && d.setback(sessDelivered) {
				// The receiver keeps dropping us without taking
				// anything: defer the rest of the batch now rather than
				// open two connections per message.
				if it != nil {
					r.record(it, res, st.Relay, tls, st)
				}
				if rest := d.drain(); len(rest) > 0 {
					e := notTried(fmt.Sprintf("%d SMTP sessions in a row were lost without a delivery", barrenLimit), err)
					st.Error = rowError(e)
					r.failAll(rest, e, "none", st)
				}
				return
			}
			sessDelivered = false
			if it != nil && lost != nil && lost.Safe && !it.resent {
				// The final dot was never sent, so nothing was delivered
				// in this transaction: send it again, once, on a fresh
				// session (after a 421 on a reused connection or a drop in
				// the middle of DATA), to the recipients without a final
				// result only (see keepFinal).
				// When the dot was sent and only its reply was lost, the
				// receiver may have the message (RFC 5321 §4.1.1.4): it is
				// deferred, so a slow receiver gets at most one copy per
				// run, never several.
				if again := r.keepFinal(it, res, lost, st.Relay, tls, st); again != nil {
					again.resent = true
					it = again
					continue
				}
			}
		}
		if err == nil && throttled && !delivered && d.setback(false) {
			// Refused for its rate, with nothing delivered, barrenLimit
			// times in a row: the rest of the site's mail waits for the
			// next run.
			if it != nil {
				r.record(it, res, st.Relay, tls, st)
			}
			rest := d.drain()
			if ahead != nil {
				// Its commands went out behind this message's final
				// dot (a refusal there, 451 4.7.1, is common): closing
				// the session drops it in DATA, so nothing of it is
				// received (see deliver.Session.Close), and it waits
				// with the rest.
				rest = append(rest, ahead)
			}
			if len(rest) > 0 {
				e := notTried(fmt.Sprintf("%d throttling replies in a row without a delivery", barrenLimit), firstErr(res))
				st.Error = rowError(e)
				r.failAll(rest, e, "none", st)
			}
			return
		}
		if it != nil {
			r.record(it, res, st.Relay, tls, st)
		}
		it = ahead
		if it == nil && sess != nil && d.shed() {
			// Over the site's cap after a throttling reply: this
			// session ends (QUIT) and its worker with it.
			shed = true
			return
		}
		if perSession > 0 && sessMsgs >= perSession && sess != nil {
			// Config.MaxMessagesPerSession: QUIT, and the next message
			// (if any) goes on a new session.
			sess.Close()
			sess = nil
		}
	}
}

// notTried is the outcome of the messages a site's setbacks left unsent:
// deferred with a local reason that says why and quotes the last reply
// (whose own recipient has it as its outcome), so that a recipient never
// offered to the server is not logged with another's refusal or relay.
func notTried(why string, last error) *mta.Error {
	msg := "not tried in this run: " + why
	var e *mta.Error
	if errors.As(last, &e) {
		msg += " (last: " + e.Reply() + ")"
	} else if last != nil {
		msg += " (last: " + mta.OneLine(last.Error()) + ")"
	}
	return &mta.Error{Status: "4.4.0", Command: mta.CmdLocal, Msg: msg + "; it waits for the next run", Err: last}
}

// firstErr is the first failure among res.
func firstErr(res []deliver.Result) error {
	for _, r := range res {
		if r.Err != nil {
			return r.Err
		}
	}
	return nil
}

// anyDelivered reports whether some result is a delivery.
func anyDelivered(res []deliver.Result) bool {
	for _, r := range res {
		if r.Err == nil {
			return true
		}
	}
	return false
}

// keepFinal is for an item whose session was lost before the final dot of
// its current transaction (LostError.Safe), to be sent again. The
// recipients that already have a final result (refused, or delivered in an
// earlier transaction of the message after a 452, RFC 5321 §4.5.3.1.10)
// are recorded now: sent again, a delivered one would get a second copy.
// It returns the item to send again (it itself when no result is final,
// else a copy with only the unresolved recipients), or nil when every
// result is final and the caller records them all.
func (r *runner) keepFinal(it *Item, res []deliver.Result, lost *deliver.LostError, relay string, tls deliver.TLSState, st *tally) *Item {
	if len(res) != len(it.rcpts) { // not in the order of it.rcpts: send it all again
		return it
	}
	done := &Item{state: it.state}
	again := &Item{state: it.state}
	var final []deliver.Result
	for i, rs := range res {
		if lost.Unresolved(rs) {
			again.rcpts = append(again.rcpts, it.rcpts[i])
			continue
		}
		done.rcpts = append(done.rcpts, it.rcpts[i])
		final = append(final, rs)
	}
	switch {
	case len(final) == 0:
		return it
	case len(again.rcpts) == 0:
		return nil
	}
	r.settle(done, r.outcomes(done, final, relay, tls, st))
	return again
}

// message adapts an item to deliver's view: envelope and an opener, never a
// path. The recipients a transaction delivered before another one of the
// same message (a 452 split) are journalled at once, as every transaction's
// are (see finish).
func (r *runner) message(it *Item) deliver.Message {
	m := it.state.m
	return deliver.Message{
		From: m.From,
		To:   it.Rcpts(),
		Size: m.Size,
		Open: func() (io.ReadCloser, error) { return r.spool.Open(m) },
		Accepted: func(mboxes []string) {
			var spooled []string
			for i, rc := range it.rcpts {
				if !rc.journalled && slices.Contains(mboxes, rc.mbox) {
					spooled = append(spooled, rc.spooled)
					it.rcpts[i].journalled = true
				}
			}
			if err := r.journal.Append(m.ID, m.UID, spooled...); err != nil {
				r.journalFailed(err)
			}
		},
	}
}

// record turns deliver's per-recipient results into outcomes, events and
// counts, and finishes the item.
func (r *runner) record(it *Item, res []deliver.Result, relay string, tls deliver.TLSState, st *tally) {
	r.finish(it, r.outcomes(it, res, relay, tls, st))
}

// outcomes turns deliver's per-recipient results into outcomes (see
// conclude), keyed by mailbox.
func (r *runner) outcomes(it *Item, res []deliver.Result, relay string, tls deliver.TLSState, st *tally) map[string]outcome {
	out := make(map[string]outcome, len(it.rcpts))
	byMbox := make(map[string]rcpt, len(it.rcpts))
	for _, rc := range it.rcpts {
		byMbox[rc.mbox] = rc
	}
	for _, rs := range res {
		rc, ok := byMbox[rs.Rcpt]
		if !ok {
			continue // not one of ours: deliver answers for the envelope it was given
		}
		if errors.Is(rs.Err, spool.ErrChanged) {
			// The file under the message's name is not the one the scan
			// read (swapped for a link or a FIFO by whoever can write the
			// queue): nothing was sent, and this is no delivery attempt.
			out[rs.Rcpt] = outcome{status: changed}
			r.changedFile(it.state, rs.Err)
			continue
		}
		o := outcome{status: Sent, reply: rs.Reply, relay: relay}
		dsn := "2.0.0"
		if rs.Err != nil {
			o.status, dsn, o.reply = classify(rs.Err)
			st.noteConfig(rs.Err)
		} else {
			dsn = enhanced(rs.Reply, dsn)
		}
		out[rs.Rcpt] = r.conclude(it, rc, o, dsn, &tls, st)
	}
	// deliver answers for every recipient; one it did not answer for is deferred.
	for _, rc := range it.rcpts {
		if _, ok := out[rc.mbox]; !ok {
			o := outcome{status: Deferred, reply: "4.3.0 no result from the SMTP session", relay: relay}
			out[rc.mbox] = r.conclude(it, rc, o, "4.3.0", nil, st)
		}
	}
	return out
}

// conclude makes o the final outcome of rc for this run, the one place
// where an outcome is counted and logged: a deferral on the message's
// final try becomes a 4.4.7 failure (see expire), unless the run itself
// was cancelled (then nothing was really tried); the recipient is counted
// in its batch's row and one event is logged. tls is the session's, nil
// when the outcome came from none.
func (r *runner) conclude(it *Item, rc rcpt, o outcome, dsn string, tls *deliver.TLSState, st *tally) outcome {
	m := it.state.m
	now := r.now()
	if o.status == Deferred && it.state.expired && r.ctx.Err() == nil {
		o = expire(o, r.cfg.age(m, now), r.cfg.MaxAge)
		dsn = "4.4.7"
	}
	r.count(st.row(rc.key), o.status)
	relay := o.relay
	if relay == "" {
		relay = "none"
	}
	e := Event{ID: m.ID, Rcpt: rc.spooled, Domain: rc.key, Relay: relay, Status: o.status,
		DSN: dsn, Reply: o.reply, Delay: now.Sub(m.Arrival)}
	if tls != nil {
		e.TLS, e.TLSNote = tls.Token(), tlsNote(*tls)
	}
	r.event(e)
	return o
}

// failAll gives every recipient of items the outcome of a site-wide error.
func (r *runner) failAll(items []*Item, err error, relay string, st *tally) {
	status, dsn, reply := classify(err)
	for _, it := range items {
		if r.cfg.DryRun {
			continue
		}
		out := make(map[string]outcome, len(it.rcpts))
		for _, rc := range it.rcpts {
			out[rc.mbox] = r.conclude(it, rc, outcome{status: status, reply: reply, relay: relay}, dsn, nil, st)
		}
		r.finish(it, out)
	}
}

func (r *runner) count(st *DomainStats, s Status) {
	switch s {
	case Sent:
		st.Delivered++
	case Bounced:
		st.Failed++
	default:
		st.Deferred++
	}
}

func describeHost(h mta.Host) string {
	addrs := make([]string, len(h.Addrs))
	for i, a := range h.Addrs {
		addrs[i] = a.String()
	}
	return fmt.Sprintf("%s[%s]", h.Name, strings.Join(addrs, ","))
}
