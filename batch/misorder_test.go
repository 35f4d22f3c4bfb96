package batch

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/spool"
)

// misorder is a receiver that offers PIPELINING and answers in order,
// except where it is told to misorder:
//
//   - groupOOO: a pipelined MAIL, RCPT, DATA group that starts a
//     transaction gets MAIL's reply, then DATA's 354, then the RCPTs'
//     (as a server that lets DATA's reply overtake the RCPTs' would), and nothing is
//     delivered. With barrier > 0 those replies wait until barrier such
//     groups arrived (at most 3 s), and sessions after the first barrier
//     ones wait at the greeting until the first ones are closed (at most
//     3 s): every first session is lost before any later one can deliver.
//   - lateDot > 0: in session lateSession (1 when 0), the lateDot-th end
//     of data that has a look-ahead group behind it is accepted, but its
//     250 is written after the group's replies (250 MAIL, 250 RCPT...,
//     354), as smtp-sink -W .:N does; the session then waits for the
//     client to hang up.
//   - throttle[n]: session n answers its first MAIL with 421 and closes,
//     as a receiver that limits its clients does.
//
// Commands sent one at a time always get their replies in order.
type misorder struct {
	groupOOO    bool
	barrier     int
	lateDot     int
	lateSession int
	throttle    map[int]bool

	mu        sync.Mutex
	sessions  int
	groups    int           // pipelined groups answered out of order
	release   chan struct{} // closed once barrier groups arrived
	closed    int           // first-generation sessions ended
	firstGone chan struct{} // closed once barrier first sessions ended
	delivered []string      // the recipient of each message accepted
	piped     []int         // sessions in which a pipelined group arrived
}

func (m *misorder) init() {
	m.release, m.firstGone = make(chan struct{}), make(chan struct{})
}

func (m *misorder) deliveredCount() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := map[string]int{}
	for _, r := range m.delivered {
		n[r]++
	}
	return n
}

func (m *misorder) handle(c net.Conn) {
	m.mu.Lock()
	m.sessions++
	session := m.sessions
	m.mu.Unlock()
	first := m.barrier > 0 && session <= m.barrier
	if m.barrier > 0 && !first {
		select {
		case <-m.firstGone:
		case <-time.After(3 * time.Second):
		}
	}
	defer func() {
		if !first {
			return
		}
		m.mu.Lock()
		m.closed++
		if m.closed == m.barrier {
			close(m.firstGone)
		}
		m.mu.Unlock()
	}()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	say := func(s string) bool { _, err := fmt.Fprintf(c, "%s\r\n", s); return err == nil }
	readGroup := func() (rcpts []string, ok bool) { // the RCPTs up to DATA
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return nil, false
			}
			l = strings.TrimSpace(l)
			if strings.EqualFold(l, "DATA") {
				return rcpts, true
			}
			if strings.HasPrefix(strings.ToUpper(l), "RCPT TO:") {
				rcpts = append(rcpts, rcptArg(l))
			}
		}
	}
	if !say("220 misorder.test ESMTP") {
		return
	}
	var rcpts []string
	dots := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			say("250-misorder.test\r\n250-PIPELINING\r\n250 8BITMIME")
		case strings.HasPrefix(cmd, "MAIL") && m.throttle[session]:
			say("421 4.7.0 misorder.test too many connections, try again later")
			return
		case strings.HasPrefix(cmd, "MAIL") && r.Buffered() > 0:
			m.mu.Lock()
			m.piped = append(m.piped, session)
			m.mu.Unlock()
			if !m.groupOOO {
				rcpts = nil
				say("250 2.1.0 Ok")
				continue
			}
			n, ok := readGroup()
			if !ok {
				return
			}
			m.mu.Lock()
			m.groups++
			if m.groups == m.barrier {
				close(m.release)
			}
			m.mu.Unlock()
			if m.barrier > 0 {
				select {
				case <-m.release:
				case <-time.After(3 * time.Second):
				}
			}
			say("250 2.1.0 Ok")
			say("354 End data with <CR><LF>.<CR><LF>")
			for range n {
				say("250 2.1.5 Ok")
			}
			io.Copy(io.Discard, r) // until the client drops the session
			return
		case strings.HasPrefix(cmd, "MAIL"):
			rcpts = nil
			say("250 2.1.0 Ok")
		case strings.HasPrefix(cmd, "RCPT"):
			rcpts = append(rcpts, rcptArg(line))
			say("250 2.1.5 Ok")
		case cmd == "DATA":
			say("354 End data with <CR><LF>.<CR><LF>")
			if _, ok := testnet.ReadData(r); !ok {
				return
			}
			m.mu.Lock()
			m.delivered = append(m.delivered, rcpts...)
			n := len(m.delivered)
			m.mu.Unlock()
			dots++
			if session == max(m.lateSession, 1) && dots == m.lateDot {
				// The look-ahead group behind the dot: its replies
				// overtake the dot's.
				line, err := r.ReadString('\n')
				if err != nil || !strings.HasPrefix(strings.ToUpper(line), "MAIL") {
					return
				}
				ahead, ok := readGroup()
				if !ok {
					return
				}
				say("250 2.1.0 Ok")
				for range ahead {
					say("250 2.1.5 Ok")
				}
				say("354 End data with <CR><LF>.<CR><LF>")
				say("250 2.0.0 Ok: queued as " + strconv.Itoa(n))
				io.Copy(io.Discard, r) // until the client drops the session
				return
			}
			say("250 2.0.0 Ok: queued as " + strconv.Itoa(n))
		case cmd == "RSET":
			rcpts = nil
			say("250 2.0.0 Ok")
		case cmd == "QUIT":
			say("221 2.0.0 Bye")
			return
		default:
			say("502 5.5.2 Error: command not recognized")
		}
	}
}

// misorderWorld is a world whose a.test MX (127.0.0.2) is m.
func misorderWorld(t *testing.T, m *misorder) *world {
	t.Helper()
	m.init()
	w := newWorld(t, []string{"127.0.0.2"}, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	w.script("127.0.0.2", m.handle)
	return w
}

// A server that answers pipelined groups out of order (RFC 2920 §3.1
// wants them in order) loses the first session, which was safe to resend
// (no final dot went out); the next session speaks one command at a time
// and every message is delivered once, in the same run.
func TestOutOfOrderServerFallsBackToNoPipelining(t *testing.T) {
	m := &misorder{groupOOO: true}
	w := misorderWorld(t, m)
	const n = 6
	w.putMany(n, "a.test")
	w.cfg.ConnsPerSite = 1
	sum := w.run()
	if sum.Totals.Delivered != n || sum.Totals.Deferred != 0 || sum.Totals.Failed != 0 || len(sum.Problems) != 0 {
		t.Errorf("totals %+v, problems %v: want all %d delivered", sum.Totals, sum.Problems, n)
	}
	m.mu.Lock()
	sessions := m.sessions
	m.mu.Unlock()
	if sessions != 2 {
		t.Errorf("%d sessions, want 2 (the pipelined one, lost; then one without PIPELINING)", sessions)
	}
	onceEach(t, m.deliveredCount(), n, "a.test")
	if left := w.queued(); len(left) != 0 {
		t.Errorf("%d messages still queued, want 0", len(left))
	}
}

// With 4 sessions per domain and 400 messages, four sessions open at
// once, each with PIPELINING; a server that answers pipelined groups out
// of order loses all four before the domain is marked unordered and any
// session without PIPELINING can deliver. Those losses are no throttling
// receiver (barrenLimit): each was safe to resend and the fallback fixes
// them, so every message is delivered once, in this run, and nothing is
// deferred. (When they counted, the third loss deferred 370 to 398 of the
// 400, run after run.)
func TestOutOfOrderConcurrentSessionsDeliverAll(t *testing.T) {
	const n = 400
	m := &misorder{groupOOO: true, barrier: 4}
	w := misorderWorld(t, m)
	w.putMany(n, "a.test")
	w.cfg.ConnsPerSite, w.cfg.MaxConns = 4, 4
	sum := w.run()
	if sum.Totals.Delivered != n || sum.Totals.Deferred != 0 || sum.Totals.Failed != 0 {
		t.Errorf("totals %+v: want all %d delivered in the run, none deferred", sum.Totals, n)
	}
	got := m.deliveredCount()
	missing := 0
	for i := range n {
		rcpt := fmt.Sprintf("u%d@a.test", i)
		switch got[rcpt] {
		case 1:
		case 0:
			missing++
		default:
			t.Errorf("%s delivered %d times, want once", rcpt, got[rcpt])
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d messages not delivered in the run (want 0)", missing, n)
	}
	if left := w.queued(); len(left) != 0 {
		t.Errorf("%d messages still queued, want 0", len(left))
	}
}

// A server that answers in order for a while, then once lets the replies
// of the look-ahead group (MAIL, RCPT, DATA behind the final dot) overtake
// the reply to the final dot, as smtp-sink -W .:N does: the message whose
// dot it was is deferred (the dot went out, so it is never resent in the
// run: at most one copy), the look-ahead message is put back and delivered
// by the next session, which speaks without PIPELINING, and every other
// message is delivered once.
func TestOutOfOrderAtLookaheadDefersOnlyThatMessage(t *testing.T) {
	const n, late = 10, 3
	m := &misorder{lateDot: late}
	w := misorderWorld(t, m)
	w.putMany(n, "a.test")
	w.cfg.ConnsPerSite = 1
	sum := w.run()
	if sum.Totals.Delivered != n-1 || sum.Totals.Deferred != 1 || sum.Totals.Failed != 0 {
		t.Errorf("totals %+v: want %d delivered and one deferred", sum.Totals, n-1)
	}
	onceEach(t, m.deliveredCount(), n, "a.test")
	m.mu.Lock()
	sessions, piped := m.sessions, m.piped
	m.mu.Unlock()
	if sessions != 2 {
		t.Errorf("%d sessions, want 2 (the pipelined one, lost at the misordered dot; then one without PIPELINING)", sessions)
	}
	for _, s := range piped {
		if s != 1 {
			t.Errorf("session %d pipelined after the server answered out of order", s)
		}
	}
	// The message of the misordered dot (the third sent) is the only one
	// left: in cur/, its recipient pending, one attempt counted.
	cur := w.files(spool.QueueCur)
	if len(cur) != 1 || len(w.files(spool.QueueNew)) != 0 {
		t.Fatalf("cur/ %v, new/ %v: want only the message of the misordered dot, deferred", cur, w.files(spool.QueueNew))
	}
	if msg := w.load(spool.QueueCur, cur[0]); len(msg.To) != 1 || msg.Attempts != 1 {
		t.Errorf("deferred message %s: to %v, attempts %d; want its one recipient and 1 attempt", cur[0], msg.To, msg.Attempts)
	}
	if j := w.journal(); j != "" {
		t.Errorf("journal after the run: %q, want empty", j)
	}
}

// Sessions lost to a throttling receiver (421) count towards barrenLimit
// only in a row without a delivery: a session that delivered and was then
// lost out of order ends the row, so two throttled sessions before it and
// one after do not defer the rest of the batch. (When losses out of order
// were left out of the count altogether, that session did not end the
// row, and the third 421 deferred everything left.)
func TestOutOfOrderAfterDeliveriesEndsThrottleRow(t *testing.T) {
	const n, late = 12, 3
	m := &misorder{lateDot: late, lateSession: 3, throttle: map[int]bool{1: true, 2: true, 4: true}}
	w := misorderWorld(t, m)
	w.putMany(n, "a.test")
	w.cfg.ConnsPerSite = 1
	sum := w.run()
	// Deferred: u0, refused by both throttled sessions (a message is sent
	// again once per run), and the message of the misordered dot.
	if row := rows(t, sum)["a.test"]; strings.Contains(row.Error, "in a row") || row.Delivered != n-2 || row.Deferred != 2 || row.Failed != 0 {
		t.Errorf("a.test row %+v, want %d delivered, 2 deferred, no barren-limit error", row, n-2)
	}
	got := m.deliveredCount()
	for i := 1; i < n; i++ {
		if rcpt := fmt.Sprintf("u%d@a.test", i); got[rcpt] != 1 {
			t.Errorf("%s reached the server %d times, want once", rcpt, got[rcpt])
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sessions != 5 {
		t.Errorf("%d sessions, want 5 (421, 421, lost out of order after %d deliveries, 421, the rest)", m.sessions, late)
	}
}
