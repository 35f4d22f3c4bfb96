package batch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/spool"
)

// chaos is a scripted receiver for one site of several domains that
// fails at random: 421 at the greeting or MAIL, throttling replies, 452
// after three recipients, a drop in the middle of DATA or after the final
// dot (the message then counts as not received), and refusals that may
// mean "not for this server". It counts every recipient of every message
// whose final dot it answered with 250.
type chaos struct {
	mu    sync.Mutex
	rng   *rand.Rand
	off   bool           // no random faults
	got   map[string]int // accepted copies per recipient
	dsns  []string       // bodies of the messages from <>
	conns int
}

func (c *chaos) roll(p float64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.off && c.rng.Float64() < p
}

func (c *chaos) handle(conn net.Conn) {
	c.mu.Lock()
	c.conns++
	c.mu.Unlock()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	say := func(s string) bool {
		_, err := fmt.Fprintf(conn, "%s\r\n", s)
		return err == nil
	}
	if c.roll(0.03) {
		say("421 4.7.0 too many connections")
		return
	}
	if !say("220 chaos.test ESMTP") {
		return
	}
	var from string
	var rcpts []string
	inMail := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			if !say("250-chaos.test\r\n250-PIPELINING\r\n250 8BITMIME") {
				return
			}
		case strings.HasPrefix(cmd, "MAIL"):
			if c.roll(0.03) {
				say("421 4.7.0 slow down")
				return
			}
			if c.roll(0.03) {
				say("451 4.7.1 rate limited")
				continue
			}
			from = line[strings.IndexByte(line, '<')+1 : strings.IndexByte(line, '>')]
			rcpts, inMail = nil, true
			say("250 2.1.0 ok")
		case strings.HasPrefix(cmd, "RCPT"):
			to := rcptArg(line)
			dom := to[strings.IndexByte(to, '@')+1:]
			mixed := false
			for _, x := range rcpts {
				if !strings.HasSuffix(x, "@"+dom) {
					mixed = true
				}
			}
			switch {
			case !inMail:
				say("503 5.5.1 MAIL first")
			case len(rcpts) >= 3:
				say("452 4.5.3 too many recipients")
			case dom == "d4.test":
				say("554 5.7.1 relay access denied")
			case dom == "d3.test" && mixed:
				say("550 not here")
			case strings.HasPrefix(to, "bad"):
				say("550 5.1.1 no such user")
			case c.roll(0.02):
				say("421 4.3.2 shutting down")
				return
			case c.roll(0.03):
				say("450 4.2.0 try later")
			case c.roll(0.02):
				say("450 4.7.1 greylisted")
			default:
				rcpts = append(rcpts, to)
				say("250 2.1.5 ok")
			}
		case cmd == "DATA":
			if !inMail || len(rcpts) == 0 {
				say("554 5.5.1 no valid recipients")
				continue
			}
			if c.roll(0.02) {
				return // dropped before the message
			}
			if !say("354 go ahead") {
				return
			}
			if c.roll(0.03) {
				r.ReadString('\n')
				return // dropped in the middle of the message
			}
			data, ok := testnet.ReadData(r)
			if !ok {
				return
			}
			switch {
			case c.roll(0.03):
				return // dropped after the dot: not received
			case c.roll(0.02):
				say("451 4.3.0 local problem")
			case from != "" && c.roll(0.02): // a DSN is never refused: it would not bounce
				say("554 5.7.1 message refused")
			default:
				c.mu.Lock()
				for _, to := range rcpts {
					c.got[to]++
				}
				if from == "" {
					c.dsns = append(c.dsns, data)
				}
				c.mu.Unlock()
				if !say("250 2.0.0 queued") {
					return
				}
			}
			rcpts, inMail = nil, false
		case cmd == "RSET":
			rcpts, inMail = nil, false
			say("250 2.0.0 ok")
		case cmd == "NOOP":
			say("250 2.0.0 ok")
		case cmd == "QUIT":
			say("221 2.0.0 bye")
			return
		default:
			say("502 5.5.2 unknown command")
		}
	}
}

// Runs against a site of five domains (and a site of one) whose server
// fails at random, some of them stopped part way (--max-runtime), then
// runs with the faults off until the queue is empty: no recipient is
// accepted twice, every recipient is delivered once or bounced once (in
// one DSN), no message gets two delay warnings, each run gives each
// recipient at most one outcome and counts it once, and the crash journal
// is emptied. The messages are for several domains of the site at once;
// one in five is on its final try (past the queue lifetime) and one in
// five is old enough for a delay warning. Each seed picks the connection
// limits and the messages; the faults come in whatever order the
// sessions meet them.
func TestChaosSiteNeverLosesOrDuplicates(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) { chaosRuns(t, seed, 80) })
	}
}

func chaosRuns(t *testing.T, seed uint64, msgs int) {
	rng := rand.New(rand.NewPCG(seed, 1))
	var zone []string
	for _, d := range []string{"d1", "d2", "d3", "d4", "src"} {
		zone = append(zone, d+".test. MX 10 mx.site.test.")
	}
	zone = append(zone, "mx.site.test. A 127.0.0.2", "e1.test. MX 10 mx.other.test.", "mx.other.test. A 127.0.0.3")
	w := newWorld(t, []string{"127.0.0.2", "127.0.0.3"}, zone...)
	c := &chaos{rng: rand.New(rand.NewPCG(seed, 2)), got: map[string]int{}}
	w.script("127.0.0.2", c.handle)
	w.script("127.0.0.3", c.handle)
	w.cfg.All = true
	w.cfg.WarnAfter = time.Hour
	w.cfg.MaxConns = 1 + rng.IntN(8)
	w.cfg.ConnsPerSite = 1 + rng.IntN(8)
	w.cfg.MaxMessagesPerSession = rng.IntN(4)
	t.Logf("max conns %d, per site %d, per session %d", w.cfg.MaxConns, w.cfg.ConnsPerSite, w.cfg.MaxMessagesPerSession)
	want := map[string]bool{} // every recipient
	for i := range msgs {
		var rcpts []string
		for _, d := range []string{"d1", "d2", "d3", "d4", "src", "e1"} {
			if rng.IntN(3) == 0 {
				continue
			}
			for j := range 1 + rng.IntN(3) {
				user := "u"
				if rng.IntN(15) == 0 {
					user = "bad"
				}
				rcpts = append(rcpts, fmt.Sprintf("%s%d.%d@%s.test", user, i, j, d))
			}
		}
		if len(rcpts) == 0 {
			rcpts = []string{fmt.Sprintf("u%d@d1.test", i)}
		}
		for _, r := range rcpts {
			want[r] = true
		}
		id := fmt.Sprintf("1700000000.M%d.P1.test", i)
		var b strings.Builder
		b.WriteString("X-Envelope-From: <alice@src.test>\n")
		for _, r := range rcpts {
			fmt.Fprintf(&b, "X-Envelope-To: <%s>\n", r)
		}
		switch rng.IntN(5) {
		case 0: // past the queue lifetime: its final try
			fmt.Fprintf(&b, "X-Envelope-Arrival: %s\nX-Envelope-Attempts: 3\n", time.Now().Add(-10*24*time.Hour).UTC().Format(time.RFC3339))
		case 1: // old enough for the delay warning
			fmt.Fprintf(&b, "X-Envelope-Arrival: %s\n", time.Now().Add(-2*time.Hour).UTC().Format(time.RFC3339))
		}
		fmt.Fprintf(&b, "From: alice@src.test\r\nSubject: %d\r\n\r\nbody %d\r\n", i, i)
		w.put("new", id, b.String())
	}
	onResult := w.cfg.OnResult
	history := map[string][]string{}
	for run := 0; run < 30 && len(w.queued()) > 0; run++ {
		if run == 6 {
			c.mu.Lock()
			c.off = true
			c.mu.Unlock()
		}
		w.cfg.Stop, w.cfg.OnResult = nil, onResult
		if run < 6 && rng.IntN(2) == 0 {
			stop, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			after, n := rng.IntN(200), 0
			var mu sync.Mutex
			w.cfg.Stop = stop
			w.cfg.OnResult = func(e Event) {
				onResult(e)
				mu.Lock()
				defer mu.Unlock()
				if n++; n == after {
					cancel(errors.New("after --max-runtime 1s"))
				}
			}
		}
		sum := w.run()
		seen := map[string]bool{}
		w.mu.Lock()
		for _, e := range w.events {
			history[e.Rcpt] = append(history[e.Rcpt], fmt.Sprintf("run %d %s %s %s: %s", run, e.ID, e.Status, e.DSN, e.Reply))
			k := e.ID + " " + e.Rcpt
			if seen[k] {
				t.Errorf("run %d: two outcomes for %s", run, k)
			}
			seen[k] = true
		}
		n := len(w.events)
		w.mu.Unlock()
		tot := sum.Totals
		if tot.Delivered+tot.Deferred+tot.Failed != n {
			t.Errorf("run %d: totals %d+%d+%d, but %d events", run, tot.Delivered, tot.Deferred, tot.Failed, n)
		}
		if j := w.journal(); j != "" && len(sum.Problems) == 0 {
			t.Errorf("run %d: journal left without a problem:\n%s", run, j)
		}
		for _, p := range sum.Problems {
			t.Errorf("run %d: problem %+v", run, p)
		}
	}
	if q := w.queued(); len(q) > 0 {
		t.Fatalf("still queued after the runs: %v", q)
	}
	if b := w.files("bad"); len(b) > 0 {
		t.Errorf("moved aside to bad/: %v", b)
	}
	bounced := map[string]int{}
	warned := map[string]int{}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range c.dsns {
		rep := parseDSN(t, []byte(d))
		delayed := false
		for _, h := range rep.perRcpt {
			switch h.Get("Action") {
			case "failed":
				bounced[strings.TrimPrefix(h.Get("Final-Recipient"), "rfc822; ")]++
			case "delayed":
				delayed = true
			}
		}
		if delayed {
			id := rep.perMsg.Get("X-Mxflush-Queue-ID")
			if warned[id]++; warned[id] > 1 {
				t.Errorf("message %s: two delay warnings", id)
			}
		}
	}
	for r := range want {
		got, b := c.got[r], bounced[r]
		switch {
		case got > 1:
			t.Errorf("%s accepted %d times", r, got)
		case b > 1:
			t.Errorf("%s bounced %d times", r, b)
		case got+b != 1:
			t.Errorf("%s accepted %d times and bounced %d times, want one of them once; its outcomes:\n%s", r, got, b, strings.Join(history[r], "\n"))
		case strings.HasPrefix(r, "bad") || strings.HasSuffix(r, "@d4.test"):
			if b != 1 {
				t.Errorf("%s delivered, want it bounced", r)
			}
		}
	}
	fails := w.files(spool.QueueFailed)
	t.Logf("%d connections, %d DSNs, %d in failed/", c.conns, len(c.dsns), len(fails))
}
