package batch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mxflush/mxflush/mta"
)

// sessionsFor returns how many workers, each with its own SMTP session, a
// site of n of the run's total messages (summed over sites) may have: one
// per growMin messages, at most perSite and maxConns, and at most the
// site's share of maxConns by message count, rounded up, so that twenty
// sites of 500 messages under --max-conns 8 keep one session each (the
// slots are full anyway) while one site alone may get all eight. At
// least 1. A site starts with at most initialSessions of them.
func sessionsFor(n, total, perSite, maxConns int) int {
	k := min((n+growMin-1)/growMin, perSite, maxConns)
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
			n += len(it.rcpts)
		}
	}
	return n
}

// siteRun is one site's share of a pass: the batches of the domains whose
// mail goes to the same hosts (see groupSites), carried by workers that
// share one queue of items, so a faster session carries more, and a worker
// that cannot open a session while another holds one hands its item back
// instead of deferring it: a receiver that limits concurrent connections
// gets the whole site's mail over the sessions it accepts. Any session of
// the site may carry any of its items: every domain of a site has the same
// hosts and the same dial options. The site was resolved before the pass
// started (see resolveAll).
type siteRun struct {
	name    string   // see siteName; the batch key for a relay or a failed lookup
	batches []*Batch // one per domain (or next hop) of the site
	items   []*Item  // every item of batches, in their order
	hop     *hop     // the site's route, or why it has none
	workers int      // workers started for the site, each under the errgroup limit
	cap     int      // most workers the site may have: ConnsPerSite, less one per throttling reply (see throttled)
	planned int      // sessions the site may use at once by its share of the run (see sessionsFor): what a dry run shows
	// spawn starts one more worker of the site if a connection slot is
	// free (see grow); set by the pass before the first worker starts.
	spawn func() bool

	mu       sync.Mutex
	next     int     // items[next:] not yet taken
	back     []*Item // handed back by a worker that could not open a session; taken first
	active   int     // workers holding a session or opening one
	live     int     // workers not finished (started or not)
	lastErr  error   // why the last item was handed back
	opened   bool    // some worker of the site opened a session in this pass
	barren   int     // setbacks in a row without a delivery (see setback)
	shedding int     // workers ending because the site is over its cap (see shed)
	probing  int     // grown workers whose sessions have not delivered yet (see grow)
	split    bool    // one transaction per domain from now on (see unmix)
	// unordered: a session answered a pipelined group out of order
	// (mta.Error.OutOfOrder); the next sessions do without PIPELINING.
	unordered bool
	st        tally     // the workers' counts, merged as each ends
	first     time.Time // earliest worker start
	last      time.Time // latest worker end
}

func newSiteRun(name string, batches []*Batch, h *hop) *siteRun {
	return &siteRun{name: name, batches: batches, hop: h}
}

// key is the batch key whose dial options (TLS policy, source address)
// every session of the site uses: all its batches share them.
func (d *siteRun) key() string { return d.batches[0].Domain }

// take returns the next item to send, or nil when none is left.
// After a refusal that may mean "not for this server" (see split), an
// item with recipients in several domains is split into one per domain as
// it is taken.
func (d *siteRun) take() *Item {
	d.mu.Lock()
	defer d.mu.Unlock()
	var it *Item
	if n := len(d.back); n > 0 {
		it = d.back[n-1]
		d.back = d.back[:n-1]
	} else if d.next < len(d.items) {
		d.next++
		it = d.items[d.next-1]
	}
	if it != nil && d.split && it.mixed() {
		parts := byKey(it)
		d.back = append(d.back, parts[1:]...)
		it = parts[0]
	}
	return it
}

// barrenLimit is how many setbacks in a row a site may have without a
// delivery before the rest of its mail is deferred for this run: a setback
// is a lost session (a 421, a dropped connection, a timeout) or a
// transaction refused with a throttling reply (see throttling). A receiver
// that throttles by answering every MAIL with 421 would otherwise get two
// connections per message, the opposite of backing off.
const barrenLimit = 3

// setback records a lost session or a throttled transaction of the site,
// after some delivery on it or none, and reports whether barrenLimit
// setbacks in a row have now come without one.
func (d *siteRun) setback(delivered bool) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if delivered {
		d.barren = 0
		return false
	}
	d.barren++
	return d.barren >= barrenLimit
}

// delivered records a transaction that delivered: the setbacks counted
// so far were not in a row.
func (d *siteRun) delivered() {
	d.mu.Lock()
	d.barren = 0
	d.mu.Unlock()
}

// putBack returns an item taken as a look-ahead that its session did not
// send (see deliver.Session.SendThen): the next take returns it.
func (d *siteRun) putBack(it *Item) {
	d.mu.Lock()
	d.back = append(d.back, it)
	d.mu.Unlock()
}

// remainingLocked counts the items not taken yet. d.mu must be held.
func (d *siteRun) remainingLocked() int {
	return len(d.back) + len(d.items) - d.next
}

// drainLocked takes every item left. d.mu must be held.
func (d *siteRun) drainLocked() []*Item {
	rest := append(d.back, d.items[d.next:]...)
	d.back, d.next = nil, len(d.items)
	return rest
}

// drain takes every item left, for a domain-wide failure.
func (d *siteRun) drain() []*Item {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.drainLocked()
}

// hold counts a worker that is about to open a session. It stays counted
// while it holds the session and while it opens a new one after losing it,
// until giveUp or leave.
func (d *siteRun) hold() {
	d.mu.Lock()
	d.active++
	d.mu.Unlock()
}

// giveUp is called by a counted worker that could not open a session for
// it; the worker is no longer counted. While another worker holds a session
// or is opening one, it is handed back and giveUp returns nil (a receiver
// that refuses connections beyond the first few gets the batch over those
// it accepted). Otherwise no session is working for the domain, and it
// returns it with every item left, to be deferred or failed with the error
// it returns: err, made temporary when the site's hosts took a session of
// ours in this pass or another one is being opened (see refusedOneMore).
func (d *siteRun) giveUp(it *Item, err error) ([]*Item, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.active--
	if d.active > 0 || d.opened {
		err = refusedOneMore(err)
	}
	if d.active > 0 {
		d.back = append(d.back, it)
		d.lastErr = err
		return nil, nil
	}
	return append([]*Item{it}, d.drainLocked()...), err
}

// refusedOneMore makes a permanent refusal of a session (every MX host
// answered the greeting with 5yz) temporary for a site whose hosts took
// another session of ours in this pass: the refusal is about one
// connection too many (some receivers answer 554 to a connection over
// their limit), not about the mail, which waits for the next run rather
// than bounce.
func refusedOneMore(err error) error {
	var e *mta.Error
	if !errors.As(err, &e) || !e.Permanent || len(e.Status) < 2 {
		return err
	}
	return &mta.Error{Status: "4" + e.Status[1:], Command: e.Command, Target: e.Target, Err: err,
		Msg: "refused while the same hosts took another session from us, deferred: " + e.Reply()}
}

// leave ends a worker (counted: hold was called without a giveUp). The last
// worker to leave gets whatever was handed back after the others stopped
// taking items, with the error that made it be handed back.
func (d *siteRun) leave(counted, shed bool) ([]*Item, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if counted {
		d.active--
	}
	if shed {
		d.shedding--
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

// merge adds one worker's counts and times to the site's.
func (d *siteRun) merge(w *tally, start, end time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.st.add(w)
	if d.first.IsZero() || start.Before(d.first) {
		d.first = start
	}
	if end.After(d.last) {
		d.last = end
	}
}

// rows returns the site's summary rows once every worker has ended, one
// per batch: its domain's messages and recipient outcomes, and the site's
// hosts, relay, security and failure. A site of one batch is that
// batch's row as before sites, connections included; in a site of several
// the connections belong to the site (SiteStats), not to any one domain,
// so each row shows none and nothing is counted twice.
func (d *siteRun) rows() ([]DomainStats, SiteStats) {
	d.mu.Lock()
	defer d.mu.Unlock()
	secs := d.last.Sub(d.first).Seconds()
	site := SiteStats{Name: d.name, MX: d.hop.mxs, Messages: len(d.items), Sessions: d.workers,
		Connections: d.st.Connections, Seconds: secs, TLS: d.st.TLS, CopiesSaved: d.st.saved}
	rows := make([]DomainStats, 0, len(d.batches))
	for _, b := range d.batches {
		row := DomainStats{Domain: b.Domain, MX: d.hop.mxs, Messages: len(b.Items), Recipients: b.Recipients(),
			Relay: d.st.Relay, Seconds: secs, Error: d.st.Error, ConfigError: d.st.ConfigError}
		if c := d.st.rows[b.Domain]; c != nil {
			row.Delivered, row.Deferred, row.Failed = c.Delivered, c.Deferred, c.Failed
		}
		if d.hop.err == nil {
			row.Site = d.name
		}
		if len(d.batches) == 1 {
			row.Connections, row.TLS = d.st.Connections, d.st.TLS
		}
		site.Domains = append(site.Domains, b.Domain)
		rows = append(rows, row)
	}
	return rows, site
}

// groupSites puts the pass's batches into sites: the domains whose MX
// hosts are the same (names, preferences and ports; see siteKey) and whose
// sessions would be dialled with the same options (TLS policy, source
// address) share one site. A relay's batch (a route with targets or the
// smart host) stays a site of its own, keyed as before; so does a batch
// whose lookup failed, to be deferred or bounced at once. The largest
// site comes first: it is the long pole of the run.
func (r *runner) groupSites(batches []*Batch) []*siteRun {
	var sites []*siteRun
	byKey := map[string]*siteRun{}
	keyOf := map[*siteRun]string{}
	for _, b := range batches {
		h := r.routes.get(b.Domain)
		if h == nil { // not resolved: the run stopped first
			h = &hop{err: fmt.Errorf("not resolved: %w", context.Cause(r.cfg.Stop))}
		}
		key := r.siteKey(b.Domain, h)
		if d := byKey[key]; d != nil && key != "" {
			d.batches = append(d.batches, b)
			continue
		}
		d := newSiteRun(b.Domain, []*Batch{b}, h)
		if key != "" {
			d.name = siteName(h.hosts)
			byKey[key], keyOf[d] = d, key
		}
		sites = append(sites, d)
	}
	nameSites(sites, keyOf)
	for _, d := range sites {
		d.items = mergeItems(d.batches)
		d.split = r.isSplit(d.name)
	}
	sort.SliceStable(sites, func(i, j int) bool { return len(sites[i].items) > len(sites[j].items) })
	return sites
}

// nameSites tells apart the sites whose first hosts are the same (two host
// sets, or one set under two TLS policies): the one whose key sorts first
// keeps the name, the others get "#2", "#3" in key order. The order of the
// keys, not of the batches, decides, so that a site keeps its name from
// run to run (it labels the metrics file's series) while its host sets
// stay as they are.
func nameSites(sites []*siteRun, keyOf map[*siteRun]string) {
	byName := map[string][]*siteRun{}
	for _, d := range sites {
		if _, ok := keyOf[d]; ok {
			byName[d.name] = append(byName[d.name], d)
		}
	}
	for name, same := range byName {
		if len(same) < 2 {
			continue
		}
		sort.Slice(same, func(i, j int) bool { return keyOf[same[i]] < keyOf[same[j]] })
		for i, d := range same[1:] {
			d.name = name + "#" + strconv.Itoa(i+2)
		}
	}
}

// siteKey identifies the site of a batch resolved to h: its hosts, each as
// name, preference, port and whether an insecure DNS answer named it (a
// domain whose MX answer was authenticated must not share the sessions of
// one whose answer was not: DANE applies to the first only, RFC 7672
// §2.2.1), sorted (equal preferences come shuffled from mx), and the
// options its sessions are dialled with. "" means the batch
// is a site of its own: a relay, a failed lookup, or sessions with
// credentials.
func (r *runner) siteKey(key string, h *hop) string {
	if h.err != nil || len(h.hosts) == 0 {
		return ""
	}
	if rt, ok := r.cfg.Resolver.(Router); ok && rt.Relay(key) {
		return ""
	}
	o := r.cfg.dialOptions(key)
	if o.Auth != nil {
		return ""
	}
	hosts := make([]string, len(h.hosts))
	for i, host := range h.hosts {
		hosts[i] = fmt.Sprintf("%d %s:%d %v", host.Pref, host.Name, host.Port, host.Insecure)
	}
	slices.Sort(hosts)
	return fmt.Sprintf("%s|tls=%d,%v|bind=%v", strings.Join(hosts, ","), o.TLS.Mode, o.TLS.Implicit, o.Bind)
}

// siteName names a site for the summary and the logs by its first host:
// the lowest preference, and of those the first by name, so that the name
// does not change with the shuffling of equal preferences.
func siteName(hosts []mta.Host) string {
	best := hosts[0]
	for _, h := range hosts[1:] {
		if h.Pref < best.Pref || (h.Pref == best.Pref && h.Name < best.Name) {
			best = h
		}
	}
	return best.Name
}
