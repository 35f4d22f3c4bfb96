package batch

import (
	"errors"
	"slices"
	"strings"

	"github.com/mxflush/mxflush/deliver"
	"github.com/mxflush/mxflush/mta"
)

// mergeItems returns the items a site's sessions carry: one per message,
// with its recipients in every domain of the site, so that a message to
// five domains hosted on one site crosses the network once, in one
// transaction with all of them (RFC 5321 §3.3 allows any recipients in one
// transaction; the receiver sorts them out). A site of one batch carries
// that batch's items as they are.
func mergeItems(batches []*Batch) []*Item {
	if len(batches) == 1 {
		return batches[0].Items
	}
	byMsg := map[*msgState]*Item{}
	var items []*Item
	for _, b := range batches {
		for _, it := range b.Items {
			if m := byMsg[it.state]; m != nil {
				m.rcpts = append(m.rcpts, it.rcpts...)
				it.state.addPending(-1) // two of the message's items are now one
				continue
			}
			c := &Item{state: it.state, rcpts: append([]rcpt(nil), it.rcpts...)}
			byMsg[it.state] = c
			items = append(items, c)
		}
	}
	return items
}

// byKey splits an item into one per batch key, in the order of its keys;
// the message has that many more items pending, less the one split.
func byKey(it *Item) []*Item {
	keys := it.keys()
	parts := make([]*Item, len(keys))
	for i, k := range keys {
		parts[i] = &Item{state: it.state, resent: it.resent}
		for _, rc := range it.rcpts {
			if rc.key == k {
				parts[i].rcpts = append(parts[i].rcpts, rc)
			}
		}
	}
	it.state.addPending(len(parts) - 1)
	return parts
}

// notForThisServer reports whether err, a recipient's refusal in a
// transaction with recipients of several domains, may mean that the
// server takes no mail for that recipient's domain from us, rather than
// that the mailbox is bad: a policy refusal (X.7.x, RFC 3463 §3.8: relay
// denied, sender not authorised for the domain), or a 550 or 554 without
// an enhanced status code, which says no more than "no". Such a refusal is
// not final in a mixed transaction: the recipient is sent again in a
// transaction of its own domain, where the same refusal is.
func notForThisServer(err error) bool {
	var e *mta.Error
	if !errors.As(err, &e) || !e.Permanent {
		return false
	}
	return strings.HasPrefix(e.Status, "5.7.") || ((e.Code == 550 || e.Code == 554) && e.Status == "5.0.0")
}

// unmix takes out of a mixed transaction's results (recipients in several
// domains of one site) the refusals that may mean "not for this server"
// (see notForThisServer): their recipients go back to the site's queue,
// one item per domain, and the site sends one transaction per domain for
// the rest of the run (see siteRun.take). It returns the item and the
// results left to record; the item is nil when nothing is left.
func (r *runner) unmix(d *siteRun, it *Item, res []deliver.Result) (*Item, []deliver.Result) {
	if !it.mixed() {
		return it, res
	}
	retry := map[string]bool{}
	for _, rs := range res {
		if rs.Err != nil && notForThisServer(rs.Err) {
			retry[rs.Rcpt] = true
		}
	}
	if len(retry) == 0 {
		return it, res
	}
	r.setSplit(d.name)
	again := &Item{state: it.state}
	rest := &Item{state: it.state, resent: it.resent}
	for _, rc := range it.rcpts {
		if retry[rc.mbox] {
			again.rcpts = append(again.rcpts, rc)
		} else {
			rest.rcpts = append(rest.rcpts, rc)
		}
	}
	var kept []deliver.Result
	for _, rs := range res {
		if !retry[rs.Rcpt] {
			kept = append(kept, rs)
		}
	}
	it.state.addPending(1) // again is one more item of the message ...
	parts := byKey(again)  // ... or one per domain
	d.mu.Lock()
	d.split = true
	d.back = append(d.back, parts...)
	d.mu.Unlock()
	if len(rest.rcpts) == 0 {
		if it.state.done() { // cannot be the last: parts are pending
			r.applyOrReport(it.state)
		}
		return nil, nil
	}
	return rest, kept
}

// isSplit and setSplit remember, for the run, the sites that refused a
// mixed transaction's recipient in a way that may mean "not for this
// server": their later passes send one transaction per domain too.
func (r *runner) isSplit(site string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.splitSites[site]
}

func (r *runner) setSplit(site string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.splitSites == nil {
		r.splitSites = map[string]bool{}
	}
	r.splitSites[site] = true
}

// copiesSaved is how many DATA transfers a delivered transaction saved by
// carrying several domains: one less than the number of its recipients'
// domains that it delivered to.
func copiesSaved(it *Item, res []deliver.Result) int {
	if !it.mixed() {
		return 0
	}
	ok := map[string]bool{}
	for _, rs := range res {
		if rs.Err == nil {
			ok[rs.Rcpt] = true
		}
	}
	var keys []string
	for _, rc := range it.rcpts {
		if ok[rc.mbox] && !slices.Contains(keys, rc.key) {
			keys = append(keys, rc.key)
		}
	}
	return max(len(keys)-1, 0)
}
