package batch

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/mxflush/mxflush/mta"
)

// splitMin is the number of messages that earns a domain one more session:
// a batch of n messages gets at most ceil(n/splitMin) sessions. A new
// session costs a TCP handshake, the greeting, EHLO and QUIT (about three
// round trips) and a slot among the receiver's connections from our
// address; below a hundred messages that buys little.
const splitMin = 100

// sessionsFor returns how many workers, each with its own SMTP session,
// carry a batch of n of the run's total messages (summed over batches): one
// per splitMin messages, at most perDomain and maxConns, and at most the
// batch's share of maxConns by message count, rounded up, so that twenty
// domains of 500 messages under --max-conns 8 keep one session each (the
// slots are full anyway) while one domain alone gets all eight. At least 1.
func sessionsFor(n, total, perDomain, maxConns int) int {
	k := min((n+splitMin-1)/splitMin, perDomain, maxConns)
	if total > 0 {
		k = min(k, (maxConns*n+total-1)/total)
	}
	return max(k, 1)
}

// totalItems counts the items of every batch: the total that sessionsFor
// divides the connection limit by.
func totalItems(batches []*Batch) int {
	n := 0
	for _, b := range batches {
		n += len(b.Items)
	}
	return n
}

// totalRcpts counts the recipients of batches: one log line each.
func totalRcpts(batches []*Batch) int {
	n := 0
	for _, b := range batches {
		for _, it := range b.Items {
			n += len(it.Rcpts)
		}
	}
	return n
}

// domainRun is one domain's batch, shared by the workers that carry it. The
// workers take items from one queue, so a faster session carries more, and
// a worker that cannot open a session while another holds one hands its
// item back instead of deferring it: a receiver that limits concurrent
// connections gets the whole batch over the sessions it accepts. The domain
// is resolved once, whatever the number of workers.
type domainRun struct {
	b       *Batch
	workers int // workers started for b, each under the errgroup limit

	once   sync.Once
	hosts  []mta.Host
	mxs    []string // describeHost of each host, for the summary
	resErr error

	mu      sync.Mutex
	next    int     // b.Items[next:] not yet taken
	back    []*Item // handed back by a worker that could not open a session; taken first
	active  int     // workers holding a session or opening one
	live    int     // workers not finished (started or not)
	lastErr error   // why the last item was handed back
	barren  int     // sessions lost in a row without a delivery (see sessionLost)
	// unordered: a session answered a pipelined group out of order
	// (mta.Error.OutOfOrder); the next sessions do without PIPELINING.
	unordered bool
	st        DomainStats
	first     time.Time // earliest worker start
	last      time.Time // latest worker end
}

func newDomainRun(b *Batch, workers int) *domainRun {
	return &domainRun{b: b, workers: workers, live: workers,
		st: DomainStats{Domain: b.Domain, Messages: len(b.Items), Recipients: b.Recipients()}}
}

// resolve looks the domain up once for all its workers.
func (d *domainRun) resolve(ctx context.Context, res Resolver) ([]mta.Host, error) {
	d.once.Do(func() {
		route, err := res.Lookup(ctx, d.b.Domain)
		if err != nil {
			d.resErr = err
			return
		}
		for _, h := range route.Hosts {
			d.hosts = append(d.hosts, mta.Host{Name: h.Name, Addrs: h.Addrs, Port: h.Port})
			d.mxs = append(d.mxs, describeHost(h))
		}
	})
	return d.hosts, d.resErr
}

// take returns the next item to send, or nil when none is left.
func (d *domainRun) take() *Item {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n := len(d.back); n > 0 {
		it := d.back[n-1]
		d.back = d.back[:n-1]
		return it
	}
	if d.next < len(d.b.Items) {
		d.next++
		return d.b.Items[d.next-1]
	}
	return nil
}

// barrenLimit is how many sessions of a domain in a row may be lost (a
// 421, a dropped connection, a timeout) without delivering anything before
// the rest of its batch is deferred: a receiver that throttles by
// answering every MAIL with 421 would otherwise get two connections per
// message, the opposite of backing off.
const barrenLimit = 3

// sessionLost records that a session of the domain was lost, after some
// delivery on it or none, and reports whether barrenLimit sessions in a row
// have now been lost without one.
func (d *domainRun) sessionLost(delivered bool) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if delivered {
		d.barren = 0
		return false
	}
	d.barren++
	return d.barren >= barrenLimit
}

// putBack returns an item taken as a look-ahead that its session did not
// send (see deliver.Session.SendThen): the next take returns it.
func (d *domainRun) putBack(it *Item) {
	d.mu.Lock()
	d.back = append(d.back, it)
	d.mu.Unlock()
}

// remainingLocked counts the items not taken yet. d.mu must be held.
func (d *domainRun) remainingLocked() int {
	return len(d.back) + len(d.b.Items) - d.next
}

// loadPerWorker is the number of items left per worker if one more joined
// (rounded down), or 0 when the batch cannot take another worker: it has
// perDomain workers, or none still running (its last worker has settled
// what was left), or fewer than splitMin items each would be left.
func (d *domainRun) loadPerWorker(perDomain int) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.live == 0 || d.workers >= perDomain {
		return 0
	}
	load := d.remainingLocked() / (d.live + 1)
	if load < splitMin {
		return 0
	}
	return load
}

// join counts one more worker for the batch, if it can still take one (see
// loadPerWorker; checked again, as workers may have left since).
func (d *domainRun) join(perDomain int) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.live == 0 || d.workers >= perDomain || d.remainingLocked()/(d.live+1) < splitMin {
		return false
	}
	d.workers++
	d.live++
	return true
}

// drainLocked takes every item left. d.mu must be held.
func (d *domainRun) drainLocked() []*Item {
	rest := append(d.back, d.b.Items[d.next:]...)
	d.back, d.next = nil, len(d.b.Items)
	return rest
}

// drain takes every item left, for a domain-wide failure.
func (d *domainRun) drain() []*Item {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.drainLocked()
}

// hold counts a worker that is about to open a session. It stays counted
// while it holds the session and while it opens a new one after losing it,
// until giveUp or leave.
func (d *domainRun) hold() {
	d.mu.Lock()
	d.active++
	d.mu.Unlock()
}

// giveUp is called by a counted worker that could not open a session for
// it; the worker is no longer counted. While another worker holds a session
// or is opening one, it is handed back and giveUp returns nil (a receiver
// that refuses connections beyond the first few gets the batch over those
// it accepted). Otherwise no session is working for the domain, and it
// returns it with every item left, to be deferred or failed with err.
func (d *domainRun) giveUp(it *Item, err error) []*Item {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.active--
	if d.active > 0 {
		d.back = append(d.back, it)
		d.lastErr = err
		return nil
	}
	return append([]*Item{it}, d.drainLocked()...)
}

// leave ends a worker (counted: hold was called without a giveUp). The last
// worker to leave gets whatever was handed back after the others stopped
// taking items, with the error that made it be handed back.
func (d *domainRun) leave(counted bool) ([]*Item, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if counted {
		d.active--
	}
	d.live--
	if d.live > 0 {
		return nil, nil
	}
	rest := d.drainLocked()
	err := d.lastErr
	if err == nil {
		err = errors.New("no SMTP session was left to carry the message")
	}
	return rest, err
}

// merge adds one worker's counts and times to the domain's row.
func (d *domainRun) merge(w DomainStats, start, end time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.st.Delivered += w.Delivered
	d.st.Deferred += w.Deferred
	d.st.Failed += w.Failed
	d.st.Connections += w.Connections
	if w.Relay != "" {
		d.st.Relay = w.Relay
	}
	if w.Error != "" && d.st.Error == "" {
		d.st.Error = w.Error
	}
	d.st.mergeTLS(w)
	if d.first.IsZero() || start.Before(d.first) {
		d.first = start
	}
	if end.After(d.last) {
		d.last = end
	}
}

// stats returns the domain's summary row once every worker has ended:
// counts and connections summed over its workers, Seconds from the first
// worker's start to the last one's end.
func (d *domainRun) stats() DomainStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.st
	st.MX = d.mxs
	st.Seconds = d.last.Sub(d.first).Seconds()
	return st
}
