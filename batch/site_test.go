package batch

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/mx"
	"github.com/mxflush/mxflush/route"
	"github.com/mxflush/mxflush/spool"
)

// Thirty domains whose MX is the same host form one site: their 90
// messages share the site's sessions (at most ConnsPerSite of them, not
// one per domain), each domain keeps its own row naming the site, and
// the connections are counted once, on the site.
func TestRunDomainsOfOneSiteShareSessions(t *testing.T) {
	var recs, domains []string
	for i := range 30 {
		d := fmt.Sprintf("d%02d.test", i)
		domains = append(domains, d)
		recs = append(recs, d+". MX 10 mx.a.test.")
	}
	w := newTestWorld(t, testnet.SMTPOptions{}, recs...)
	w.cfg.MaxConns, w.cfg.ConnsPerSite = 8, 2
	for i := range 90 {
		w.put(t, "new", fmt.Sprintf("m%02d", i), fmt.Sprintf("X-Envelope-From: <alice@a.test>\nX-Envelope-To: <bob@%s>\nSubject: %d\n\nhi\n", domains[i%30], i))
	}
	sum := runLive(t, w.sp, w.cfg)
	if got := len(w.recv.Messages()); got != 90 || sum.Totals.Delivered != 90 {
		t.Fatalf("received %d, delivered %d; want 90", got, sum.Totals.Delivered)
	}
	if n := w.recv.Sessions(); n < 1 || n > 2 {
		t.Errorf("%d sessions for 30 domains of one site, want 1 or 2 (ConnsPerSite 2)", n)
	}
	if len(sum.Sites) != 1 {
		t.Fatalf("sites %+v, want one", sum.Sites)
	}
	site := sum.Sites[0]
	slices.Sort(site.Domains)
	if site.Name != "mx.a.test" || !slices.Equal(site.Domains, domains) || site.Messages != 90 || site.Connections != w.recv.Sessions() {
		t.Errorf("site %s: %d domains, %d messages, %d connections; want mx.a.test, the 30 domains, 90, %d",
			site.Name, len(site.Domains), site.Messages, site.Connections, w.recv.Sessions())
	}
	if len(sum.Domains) != 30 {
		t.Fatalf("%d rows, want one per domain", len(sum.Domains))
	}
	for _, row := range sum.Domains {
		if row.Site != "mx.a.test" || row.Messages != 3 || row.Delivered != 3 || row.Connections != 0 {
			t.Errorf("row %s: site %q, %d messages, %d delivered, %d connections; want mx.a.test, 3, 3, 0 (the site's)",
				row.Domain, row.Site, row.Messages, row.Delivered, row.Connections)
		}
	}
	if sum.Totals.Connections != w.recv.Sessions() {
		t.Errorf("total connections %d, receiver saw %d sessions", sum.Totals.Connections, w.recv.Sessions())
	}
}

// Sites are keyed by the whole host set with preferences: a domain whose
// MX adds a backup host, or names the same host at another preference,
// is a site of its own. A domain alone on its site keeps its connections
// in its row, as before sites.
func TestRunSitesDifferByHostSet(t *testing.T) {
	w := newTestWorld(t, testnet.SMTPOptions{},
		"b.test. MX 10 mx.a.test.",
		"c.test. MX 10 mx.a.test.", "c.test. MX 20 backup.a.test.", "backup.a.test. A 127.0.0.2",
		"d.test. MX 20 mx.a.test.")
	for i, d := range []string{"a.test", "b.test", "c.test", "d.test"} {
		w.put(t, "new", fmt.Sprintf("m%d", i), fmt.Sprintf("X-Envelope-From: <alice@a.test>\nX-Envelope-To: <bob@%s>\nSubject: x\n\nhi\n", d))
	}
	sum := runLive(t, w.sp, w.cfg)
	got := map[string][]string{}
	for _, s := range sum.Sites {
		d := slices.Clone(s.Domains)
		slices.Sort(d)
		got[s.Name] = append(got[s.Name], fmt.Sprint(d))
	}
	want := map[string][]string{"mx.a.test": {"[a.test b.test]"}, "mx.a.test#2": {"[c.test]"}, "mx.a.test#3": {"[d.test]"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		// The names after the first depend on the order of the batches:
		// compare the groups only.
		var g, wnt []string
		for _, v := range got {
			g = append(g, v...)
		}
		for _, v := range want {
			wnt = append(wnt, v...)
		}
		slices.Sort(g)
		slices.Sort(wnt)
		if !slices.Equal(g, wnt) {
			t.Errorf("sites %v, want the groups %v", got, wnt)
		}
	}
	for _, row := range sum.Domains {
		if (row.Domain == "c.test" || row.Domain == "d.test") && row.Connections != 1 {
			t.Errorf("row %s alone on its site: %d connections, want 1", row.Domain, row.Connections)
		}
	}
}

// MaxMessagesPerSession 3: ten messages to one domain go over four
// sessions, none carrying more than three, each ended with QUIT; the
// look-ahead never puts a fourth on a session.
func TestRunMaxMessagesPerSession(t *testing.T) {
	w := newTestWorld(t, testnet.SMTPOptions{})
	w.cfg.MaxConns, w.cfg.ConnsPerSite, w.cfg.MaxMessagesPerSession = 1, 1, 3
	for i := range 10 {
		w.put(t, "new", fmt.Sprintf("m%d", i), fmt.Sprintf("X-Envelope-From: <alice@a.test>\nX-Envelope-To: <bob@a.test>\nSubject: %d\n\nhi\n", i))
	}
	sum := runLive(t, w.sp, w.cfg)
	per := map[int]int{}
	for _, m := range w.recv.Messages() {
		per[m.Session]++
	}
	if sum.Totals.Delivered != 10 || w.recv.Sessions() != 4 || sum.Totals.Connections != 4 {
		t.Errorf("delivered %d over %d sessions (%d counted); want 10 over 4", sum.Totals.Delivered, w.recv.Sessions(), sum.Totals.Connections)
	}
	for s, n := range per {
		if n > 3 {
			t.Errorf("session %d carried %d messages, want at most 3", s, n)
		}
	}
	quits := 0
	for _, c := range w.recv.Commands() {
		if c == "QUIT" {
			quits++
		}
	}
	if quits != 4 {
		t.Errorf("%d QUITs, want one per session (4)", quits)
	}
}

// A receiver that takes two sessions from us and refuses any more with
// 421 4.7.0 (too many connections): the site, which starts with four and
// grows while it delivers, loses the refused ones and gives them up for
// the rest of the run instead of trying a new one after every delivery.
// Every message arrives once.
func TestRunThrottlingReplyShrinksSite(t *testing.T) {
	active := &testnet.Gauge{}
	w := newTestWorld(t, testnet.SMTPOptions{Active: active, MaxSessions: 2, DataDelay: 2 * time.Millisecond})
	w.cfg.MaxConns, w.cfg.ConnsPerSite = 8, 8
	for i := range 200 {
		w.put(t, "new", fmt.Sprintf("m%03d", i), fmt.Sprintf("X-Envelope-From: <alice@a.test>\nX-Envelope-To: <bob@a.test>\nSubject: %d\n\nhi\n", i))
	}
	sum := runLive(t, w.sp, w.cfg)
	if got := len(w.recv.Messages()); got != 200 || sum.Totals.Delivered != 200 {
		t.Fatalf("received %d, delivered %d; want 200 (%+v) %q", got, sum.Totals.Delivered, sum.Totals, sum.Domains[0].Error)
	}
	// Four at the start, two of them refused; then none more (without
	// the shrinking, a site that delivers would try a new session after
	// each round of deliveries, refused every time).
	if n := w.recv.Sessions(); n > 6 {
		t.Errorf("%d connections for 200 messages to a receiver that takes 2; want the refused ones given up (at most 6)", n)
	}
}

// A receiver that answers every RCPT with 450 4.7.1 (rate limited) has
// the rest of the site's mail deferred after three such transactions in a
// row, not one attempt per message.
func TestRunThrottledSiteDeferredAfterThree(t *testing.T) {
	var mu sync.Mutex
	rcpts := 0
	w := newTestWorld(t, testnet.SMTPOptions{
		Rcpt: func(string) error {
			mu.Lock()
			rcpts++
			mu.Unlock()
			return &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "rate limited, try again later"}
		},
	})
	w.cfg.MaxConns, w.cfg.ConnsPerSite = 1, 1
	for i := range 50 {
		w.put(t, "new", fmt.Sprintf("m%02d", i), fmt.Sprintf("X-Envelope-From: <alice@a.test>\nX-Envelope-To: <bob@a.test>\nSubject: %d\n\nhi\n", i))
	}
	var evMu sync.Mutex
	notTried := 0
	w.cfg.OnResult = func(e Event) {
		evMu.Lock()
		defer evMu.Unlock()
		if strings.HasPrefix(e.Reply, "4.4.0 not tried in this run: ") {
			notTried++
			if e.Relay != "none" || !strings.Contains(e.Reply, "last: 450 4.7.1 rate limited") {
				t.Errorf("a recipient never offered: relay %q, reply %q; want none, and the last reply quoted as such", e.Relay, e.Reply)
			}
		}
	}
	sum := runLive(t, w.sp, w.cfg)
	if notTried < 50-barrenLimit-1 {
		t.Errorf("%d recipients deferred as not tried, want the %d or so never offered to the server", notTried, 50-barrenLimit)
	}
	if sum.Totals.Deferred != 50 || sum.Totals.Delivered != 0 {
		t.Fatalf("deferred %d, delivered %d; want all 50 deferred", sum.Totals.Deferred, sum.Totals.Delivered)
	}
	mu.Lock()
	defer mu.Unlock()
	// The look-ahead may have one more transaction in flight when the
	// third refusal is read.
	if rcpts > barrenLimit+1 {
		t.Errorf("%d RCPTs tried, want at most %d: the site is given up after %d throttled transactions", rcpts, barrenLimit+1, barrenLimit)
	}
	if !strings.Contains(sum.Domains[0].Error, "throttling replies in a row") {
		t.Errorf("row error %q, want it to say why the rest waits", sum.Domains[0].Error)
	}
}

// One copy per site: a message to three domains of one site crosses the
// network once, in one transaction naming all three recipients (RFC 5321
// §3.3); each domain's row counts its own recipient, and the site says it
// carried one message and saved two DATA transfers.
func TestRunOneCopyPerSite(t *testing.T) {
	w := newTestWorld(t, testnet.SMTPOptions{}, "d1.test. MX 10 mx.a.test.", "d2.test. MX 10 mx.a.test.", "d3.test. MX 10 mx.a.test.")
	w.put(t, "new", "m1", "X-Envelope-From: <alice@a.test>\nX-Envelope-To: <bob@d1.test>\nX-Envelope-To: <carol@d2.test>\nX-Envelope-To: <dave@d3.test>\nSubject: three\n\nhi\n")
	sum := runLive(t, w.sp, w.cfg)
	got := w.recv.Messages()
	if len(got) != 1 || !slices.Equal(got[0].To, []string{"bob@d1.test", "carol@d2.test", "dave@d3.test"}) {
		t.Fatalf("received %d transactions (%v), want one to all three", len(got), got)
	}
	if len(sum.Domains) != 3 || sum.Totals.Delivered != 3 {
		t.Errorf("rows %+v, want three rows, one delivered each", sum.Domains)
	}
	if len(sum.Sites) != 1 || sum.Sites[0].CopiesSaved != 2 || sum.Sites[0].Messages != 1 {
		t.Errorf("sites %+v, want one that carried one message and saved two copies", sum.Sites)
	}
	if _, err := w.sp.Load(spool.QueueNew, "m1"); err == nil {
		t.Errorf("m1 still queued after every recipient was delivered")
	}
}

// A refusal that may mean "not for this server" in a transaction for
// several domains (here 554 without an enhanced code) is not final there:
// the recipient is sent again in a transaction of its own domain, where
// the same refusal bounces it, and the site sends one transaction per
// domain from then on. Nobody gets two copies.
func TestRunMixedRefusalFallsBackToOwnDomain(t *testing.T) {
	var mu sync.Mutex
	tries := map[string]int{}
	w := newTestWorld(t, testnet.SMTPOptions{
		Rcpt: func(to string) error {
			mu.Lock()
			tries[to]++
			mu.Unlock()
			if strings.HasSuffix(to, "@d2.test") {
				return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.NoEnhancedCode, Message: "no"}
			}
			return nil
		},
	}, "d1.test. MX 10 mx.a.test.", "d2.test. MX 10 mx.a.test.")
	w.cfg.MaxConns, w.cfg.ConnsPerSite = 1, 1
	for i := range 4 {
		w.put(t, "new", fmt.Sprintf("m%d", i), fmt.Sprintf("X-Envelope-From: <alice@a.test>\nX-Envelope-To: <bob%d@d1.test>\nX-Envelope-To: <carol%d@d2.test>\nSubject: %d\n\nhi\n", i, i, i))
	}
	sum := runLive(t, w.sp, w.cfg)
	delivered := map[string]int{}
	for _, m := range w.recv.Messages() {
		for _, to := range m.To {
			delivered[to]++
		}
	}
	for i := range 4 {
		if n := delivered[fmt.Sprintf("bob%d@d1.test", i)]; n != 1 {
			t.Errorf("bob%d got %d copies, want 1", i, n)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// m0 (and m1, already pipelined behind it) were mixed: carol0 and
	// carol1 are tried twice; m2 and m3 go per domain, so once.
	for i := range 4 {
		want := 1
		if i < 2 {
			want = 2
		}
		if n := tries[fmt.Sprintf("carol%d@d2.test", i)]; n < 1 || n > want {
			t.Errorf("carol%d tried %d times, want %d at most", i, n, want)
		}
	}
	if n := tries["carol0@d2.test"]; n != 2 {
		t.Errorf("carol0 tried %d times, want 2: refused in the mixed transaction, then alone", n)
	}
	if n := tries["carol3@d2.test"]; n != 1 {
		t.Errorf("carol3 tried %d times: the site should send one transaction per domain after the first refusal", n)
	}
	// Each carol bounces once, with one DSN per message.
	if sum.Totals.Failed != 4 || sum.Bounces != 4 {
		t.Errorf("failed %d, bounces %d; want 4 and 4", sum.Totals.Failed, sum.Bounces)
	}
}

// A route rule's conns=N caps the site its domain is on: with
// ConnsPerSite 8, a site of two domains of which one has conns=1 keeps to
// one session, the smallest cap of its domains.
func TestRunRouteRuleCapsSite(t *testing.T) {
	active := &testnet.Gauge{}
	w := newTestWorld(t, testnet.SMTPOptions{Active: active, DataDelay: time.Millisecond}, "b.test. MX 10 mx.a.test.")
	rules, err := route.ParseRoutes(strings.NewReader("b.test smtp: conns=1\n"), "routes")
	if err != nil {
		t.Fatal(err)
	}
	tab, err := route.New(route.Config{Rules: rules, Resolver: w.cfg.Resolver.(*mx.Resolver), Port: w.cfg.Deliver.Port})
	if err != nil {
		t.Fatal(err)
	}
	w.cfg.Resolver, w.cfg.MaxConns, w.cfg.ConnsPerSite = tab, 8, 8
	for i := range 200 {
		w.put(t, "new", fmt.Sprintf("m%03d", i), fmt.Sprintf("X-Envelope-From: <alice@a.test>\nX-Envelope-To: <bob@%s>\nSubject: %d\n\nhi\n", []string{"a.test", "b.test"}[i%2], i))
	}
	sum := runLive(t, w.sp, w.cfg)
	if sum.Totals.Delivered != 200 || len(sum.Sites) != 1 {
		t.Fatalf("delivered %d over sites %+v; want 200 over one site", sum.Totals.Delivered, sum.Sites)
	}
	if m := active.Max(); m != 1 {
		t.Errorf("%d sessions at once, want 1 (conns=1 of b.test caps the site)", m)
	}
}

// A throttling reply to the final dot of one message (451 4.7.1) takes a
// session from the site while its queue is still long: over a server with
// PIPELINING, where the next message's commands are in flight behind that
// dot, one session still ends (QUIT) after its message, and most of the
// queue comes after that over the sessions left. (Without it, no session
// ends before the queue is empty.)
func TestRunThrottlingReplyEndsPipelinedSession(t *testing.T) {
	active := &testnet.Gauge{}
	var mu sync.Mutex
	throttled := false
	peak := 0      // most sessions open at a message so far
	ended := false // fewer sessions open at a message than before
	after := 0     // messages received once a session ended
	w := newTestWorld(t, testnet.SMTPOptions{
		Active: active,
		Data: func(string, []string, []byte) error {
			mu.Lock()
			defer mu.Unlock()
			n := active.Now()
			if !throttled && n >= 3 {
				throttled, peak = true, n
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "slow down"}
			}
			if ended = ended || n < peak; ended {
				after++
			}
			peak = max(peak, n)
			return nil
		},
	})
	// Three sessions at most: none is being opened when the third one's
	// message is refused, so one of the three is to end.
	w.cfg.MaxConns, w.cfg.ConnsPerSite = 8, 3
	for i := range 400 {
		w.put(t, "new", fmt.Sprintf("m%03d", i), fmt.Sprintf("X-Envelope-From: <alice@a.test>\nX-Envelope-To: <bob@a.test>\nSubject: %d\n\nhi\n", i))
	}
	sum := runLive(t, w.sp, w.cfg)
	if sum.Totals.Delivered != 399 || sum.Totals.Deferred != 1 {
		t.Fatalf("totals %+v, want 399 delivered and the throttled one deferred", sum.Totals)
	}
	mu.Lock()
	defer mu.Unlock()
	if !throttled {
		t.Fatalf("the site never had three sessions open at once")
	}
	if after < 200 {
		t.Errorf("%d of 399 messages came after the first session ended, want most: no session ended after the throttling reply", after)
	}
}

// Two host sets with the same first host are told apart by the order of
// their keys, not by which has more mail: the name each gets (and labels
// the metrics with) is the same in a run where b.test has more mail and
// in one where c.test has.
func TestSiteNamesStableAcrossRuns(t *testing.T) {
	names := func(bMsgs, cMsgs int) map[string]string {
		w := newTestWorld(t, testnet.SMTPOptions{},
			"b.test. MX 10 mx.a.test.",
			"c.test. MX 10 mx.a.test.", "c.test. MX 20 backup.a.test.", "backup.a.test. A 127.0.0.2")
		n := 0
		for _, c := range []struct {
			dom string
			k   int
		}{{"b.test", bMsgs}, {"c.test", cMsgs}} {
			for range c.k {
				w.put(t, "new", fmt.Sprintf("m%d", n), fmt.Sprintf("X-Envelope-From: <alice@a.test>\nX-Envelope-To: <bob@%s>\nSubject: x\n\nhi\n", c.dom))
				n++
			}
		}
		sum := runLive(t, w.sp, w.cfg)
		got := map[string]string{}
		for _, row := range sum.Domains {
			got[row.Domain] = row.Site
		}
		return got
	}
	first, second := names(3, 1), names(1, 3)
	if first["b.test"] == first["c.test"] || first["b.test"] != second["b.test"] || first["c.test"] != second["c.test"] {
		t.Errorf("site names %v with more mail to b.test, %v with more to c.test; want two names, the same in both runs", first, second)
	}
}
