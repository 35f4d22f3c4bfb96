package batch

import (
	"errors"
	"strings"

	"github.com/mxflush/mxflush/deliver"
	"github.com/mxflush/mxflush/mta"
)

// initialSessions is how many sessions a site starts with, at most (as
// Postfix's initial_destination_concurrency, 5): a site gains more only
// while its sessions deliver (see grow), so a receiver that limits or
// throttles connections sees a few, and one that accepts everything gets
// up to the site's cap within a few rounds of deliveries. Over a 20 ms
// round trip with STARTTLS, starting with two left 500 domains on 5 sites
// at 2.7 times the rate of sessions per domain; four gave 3.2.
const initialSessions = 4

// growMin is how many items must be left per worker, the new one
// included, for a site to gain a session: a new session costs a TCP
// handshake, the greeting, EHLO, STARTTLS and QUIT (three to five round
// trips) and a slot among the receiver's connections from our address,
// while a pipelined message costs about one round trip; below twenty
// messages each that buys little.
const growMin = 20

// grow is called by a worker of d after a transaction that delivered: the
// site may gain a worker (one more session) while it has fewer than its
// cap, enough items left for it, and fewer grown workers on probation (see
// probeDone) than sessions that have proved themselves: like TCP's slow
// start, the site can double its sessions once per round of first
// deliveries, so a distant site reaches its cap in a few round trips,
// while a receiver that limits connections refuses at most as many of
// ours as it already accepted, not a burst. spawn starts the worker (with
// probe set) if a connection slot is free, and reports whether it did;
// when none is free the site stays as it is, and its next delivery tries
// again: a slot freed by a site that is done goes to a site that keeps
// delivering.
func (d *siteRun) grow(spawn func() bool) {
	d.mu.Lock()
	if d.live == 0 || d.probing >= d.live-d.probing || d.workers >= d.cap || d.remainingLocked()/(d.live+1) < growMin {
		d.mu.Unlock()
		return
	}
	d.workers++
	d.live++
	d.probing++
	d.mu.Unlock()
	if !spawn() {
		d.mu.Lock()
		d.workers--
		d.live--
		d.probing--
		d.mu.Unlock()
	}
}

// probeDone ends the probation of a grown worker: its session delivered,
// or it ended without delivering.
func (d *siteRun) probeDone() {
	d.mu.Lock()
	d.probing--
	d.mu.Unlock()
}

// throttled records a throttling reply from the site: one session fewer
// from now on (never below one; the workers above the new cap end after
// their current message, see shed). The reply also counts as a setback (see
// setback) when nothing was delivered with it.
func (d *siteRun) throttled() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cap = max(1, min(d.cap, d.live-d.shedding)-1)
}

// over reports whether the site has more workers than its cap after a
// throttling reply (see throttled): one of them is to end (see shed).
func (d *siteRun) over() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.live-d.shedding > d.cap
}

// shed reports whether the calling worker, between two sessions or
// between two messages of one (it then takes no look-ahead, see over),
// should end because the site has more workers than its cap after a
// throttle; if so it is counted as leaving until its leave.
func (d *siteRun) shed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.live-d.shedding > d.cap {
		d.shedding++
		return true
	}
	return false
}

// throttling reports whether err, a transaction's or a recipient's
// failure, is the receiver asking us to slow down: a 421 (RFC 5321 §3.8:
// the service is closing the channel, used by receivers for too many
// connections or messages), or a 4yz reply with an enhanced status in
// X.7 (RFC 3463 §3.8, security or policy: Gmail's 4.7.28 and 4.7.0 rate
// limits, Microsoft's 4.7.500-4.7.699 throttling). A 452 4.5.3 (too many
// recipients) or a 4.2.2 (mailbox full) is about the message, not the
// rate, and is not one.
func throttling(err error) bool {
	var e *mta.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Code == 421 || (e.Code/100 == 4 && strings.HasPrefix(e.Status, "4.7."))
}

// anyThrottling reports whether some result of a transaction is a
// throttling reply (see throttling).
func anyThrottling(res []deliver.Result) bool {
	for _, r := range res {
		if r.Err != nil && throttling(r.Err) {
			return true
		}
	}
	return false
}
