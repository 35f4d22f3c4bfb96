package batch

import (
	"slices"
	"sort"
	"time"

	"github.com/mxflush/mxflush/addr"
	"github.com/mxflush/mxflush/spool"
)

// Plan is every due recipient of a run grouped by destination domain, built
// before any connection opens.
type Plan struct {
	Batches  []*Batch // one per domain, the largest first
	Messages int      // due messages taking part
	NotDue   int      // messages skipped because their next attempt is in the future
	// NotSelected counts the messages Config.Only left out.
	NotSelected int
	invalid     []invalidRcpt
	states      []*msgState
}

// Batch is the whole share of a run for one domain (or next hop): the
// unit of the plan and of a summary row. At delivery the batches of one
// site share that site's sessions (see siteRun).
type Batch struct {
	Domain string  // lower-case A-label, or an address literal such as "[127.0.0.1]"; with a Router, the next hop's key
	Items  []*Item // in spool scan order
}

// Item is one message's recipients that one SMTP transaction carries
// (more only when the server answers 452 to RCPT): in a batch, those of
// one domain; at a site, those of every domain of the site (see
// siteRun.merge), one copy of the message for all of them.
type Item struct {
	rcpts []rcpt
	state *msgState

	resent bool // already sent again after a lost session; set by the worker holding the item
}

// rcpt is one recipient of an item.
type rcpt struct {
	mbox    string // the checked mailbox sent in RCPT TO, source route removed
	spooled string // as in the spool file: the key of its outcome and of its journal line
	key     string // its batch's key (domain or next hop): the row that counts it
	// journalled: its delivery is in the crash journal already, written
	// when an earlier transaction of the message took it (a 452 split,
	// see runner.message), so the item's end does not write it again.
	journalled bool
}

// Rcpts returns the mailboxes the item's transaction names in RCPT TO.
func (it *Item) Rcpts() []string {
	out := make([]string, len(it.rcpts))
	for i, rc := range it.rcpts {
		out[i] = rc.mbox
	}
	return out
}

// mixed reports whether the item's recipients are in more than one batch
// (domains of one site sent together), without allocating: it is asked of
// every transaction.
func (it *Item) mixed() bool {
	for _, rc := range it.rcpts[min(1, len(it.rcpts)):] {
		if rc.key != it.rcpts[0].key {
			return true
		}
	}
	return false
}

// keys returns the distinct batch keys of the item's recipients, in order.
func (it *Item) keys() []string {
	var keys []string
	for _, rc := range it.rcpts {
		if !slices.Contains(keys, rc.key) {
			keys = append(keys, rc.key)
		}
	}
	return keys
}

// Recipients returns how many recipients the batch carries in all.
func (b *Batch) Recipients() int {
	n := 0
	for _, it := range b.Items {
		n += len(it.rcpts)
	}
	return n
}

type invalidRcpt struct {
	state *msgState
	rcpt  string
	err   error
}

// NewPlan groups the due messages' recipients by domain. A message with
// recipients in three domains takes part in three batches, each with only
// that domain's recipients. A recipient whose address breaks RFC 5321's
// grammar is not routed: it fails permanently with status 5.1.3 when the run
// applies its results. When all is true, every message is due whatever its
// next-attempt time.
func NewPlan(msgs []*spool.Message, now time.Time, all bool) *Plan {
	return NewPlanBy(msgs, now, all, nil)
}

// NewPlanBy is NewPlan with recipients grouped by hop(domain) instead of by
// domain (see Router): domains with the same key share a batch, and a
// message to several of them is one item, one transaction. nil hop groups
// by domain.
func NewPlanBy(msgs []*spool.Message, now time.Time, all bool, hop func(domain string) string) *Plan {
	return newPlan(msgs, now, all, hop, nil)
}

// newPlan is NewPlanBy for the recipients whose domain only keeps (nil:
// all); the others are recorded as unselected, and a message left with
// none is not planned.
func newPlan(msgs []*spool.Message, now time.Time, all bool, hop func(domain string) string, only *Selection) *Plan {
	p := &Plan{}
	byDomain := map[string]*Batch{}
	for _, m := range msgs {
		if !all && !spool.Due(m, now) {
			p.NotDue++
			continue
		}
		st := newMsgState(m)
		p.states = append(p.states, st)
		p.Messages++
		items := map[string]*Item{}
		for _, rc := range m.To {
			mbox, err := addr.Check(rc)
			var dom string
			if err == nil {
				dom, err = addr.Domain(mbox)
			}
			if err != nil {
				p.invalid = append(p.invalid, invalidRcpt{state: st, rcpt: rc, err: err})
				continue
			}
			if !only.keeps(dom) {
				st.record(rc, outcome{status: unselected})
				continue
			}
			if hop != nil {
				dom = hop(dom)
			}
			it := items[dom]
			if it == nil {
				it = &Item{state: st}
				items[dom] = it
				b := byDomain[dom]
				if b == nil {
					b = &Batch{Domain: dom}
					byDomain[dom] = b
					p.Batches = append(p.Batches, b)
				}
				b.Items = append(b.Items, it)
				st.pending++
			}
			it.rcpts = append(it.rcpts, rcpt{mbox: mbox, spooled: rc, key: dom})
		}
	}
	// The largest batch starts first: it is the long pole of the run.
	sort.SliceStable(p.Batches, func(i, j int) bool {
		return len(p.Batches[i].Items) > len(p.Batches[j].Items)
	})
	return p
}
