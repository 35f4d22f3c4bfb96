package batch

import (
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mxflush/mxflush/internal/testnet"
)

// A large batch to one domain is shared by up to ConnsPerSite sessions,
// gained one at a time while they deliver (see grow), all within
// MaxConns; a small batch keeps one session; the summary keeps one row per
// domain, with the sessions added up.
func TestSplitLargeDomain(t *testing.T) {
	tests := []struct {
		name             string
		perSite, maxConn int
		wantBig          int // sessions for 300 messages to big.test
	}{
		{"three sessions for 300 messages", 3, 4, 3},
		{"capped by MaxConns", 3, 2, 2},
		{"one when told one", 1, 4, 1},
		{"grows to the cap while it delivers", 8, 8, 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each case waits on its receivers' slow end of data
			w := newWorld(t, []string{"127.0.0.2", "127.0.0.3"},
				"big.test. MX 10 mx.big.test.", "mx.big.test. A 127.0.0.2",
				"small.test. MX 10 mx.small.test.", "mx.small.test. A 127.0.0.3")
			// A slow end of data keeps every session busy long enough for
			// all workers to start before the queue empties.
			big := w.receive("127.0.0.2", testnet.SMTPOptions{DataDelay: 3 * time.Millisecond})
			small := w.receive("127.0.0.3", testnet.SMTPOptions{DataDelay: 3 * time.Millisecond})
			// 305 messages, every 61st to small.test: 300 to big.test, 5 to small.test.
			w.putMany(305, append(slices.Repeat([]string{"big.test"}, 60), "small.test")...)
			w.cfg.MaxConns, w.cfg.ConnsPerSite = tc.maxConn, tc.perSite
			sum := w.run()
			if sum.Totals.Delivered != 305 || sum.Totals.Deferred != 0 || sum.Totals.Failed != 0 {
				t.Fatalf("totals %+v, want all 305 delivered", sum.Totals)
			}
			if big.Sessions() != tc.wantBig || len(big.Messages()) != 300 {
				t.Errorf("big.test: %d messages over %d sessions, want 300 over %d", len(big.Messages()), big.Sessions(), tc.wantBig)
			}
			if small.Sessions() != 1 || len(small.Messages()) != 5 {
				t.Errorf("small.test: %d messages over %d sessions, want 5 over 1", len(small.Messages()), small.Sessions())
			}
			if m := w.gauge.Max(); m > tc.maxConn {
				t.Errorf("%d sessions at once, want at most MaxConns %d", m, tc.maxConn)
			}
			rs := rows(t, sum)
			if r := rs["big.test"]; len(rs) != 2 || r.Messages != 300 || r.Delivered != 300 || r.Connections != tc.wantBig {
				t.Errorf("summary rows %+v, want one big.test row with 300 messages delivered over %d connections", rs, tc.wantBig)
			}
		})
	}
}

// Once every domain has its sessions, a slot that frees up goes to the
// domain with the longest queue left: fast.test and slow.test get one
// session each under MaxConns 2 (each is half the run), and when
// fast.test is done, slow.test, with most of its 300 messages still
// queued, takes the free slot for a second session.
func TestSplitLateWorkerTakesFreedSlot(t *testing.T) {
	w := newWorld(t, []string{"127.0.0.2", "127.0.0.3"},
		"slow.test. MX 10 mx.slow.test.", "mx.slow.test. A 127.0.0.2",
		"fast.test. MX 10 mx.fast.test.", "mx.fast.test. A 127.0.0.3")
	slow := w.receive("127.0.0.2", testnet.SMTPOptions{DataDelay: 4 * time.Millisecond})
	fast := w.receive("127.0.0.3", testnet.SMTPOptions{})
	w.putMany(600, "slow.test", "fast.test")
	w.cfg.MaxConns, w.cfg.ConnsPerSite = 2, 2
	sum := w.run()
	if sum.Totals.Delivered != 600 || sum.Totals.Deferred != 0 || sum.Totals.Failed != 0 {
		t.Fatalf("totals %+v, want all 600 delivered", sum.Totals)
	}
	if slow.Sessions() != 2 || fast.Sessions() != 1 {
		t.Errorf("sessions: slow.test %d, fast.test %d; want 2 (a late second one) and 1", slow.Sessions(), fast.Sessions())
	}
	if m := w.gauge.Max(); m > 2 {
		t.Errorf("%d sessions at once, want at most MaxConns 2", m)
	}
	onceEach(t, w.rcptCount(), 600, "slow.test", "fast.test")
	if left := w.queued(); len(left) > 0 {
		t.Errorf("%d messages left in the spool", len(left))
	}
	if r := rows(t, sum)["slow.test"]; r.Delivered != 300 || r.Connections != 2 {
		t.Errorf("slow.test row %+v, want 300 delivered over 2 connections", r)
	}
}

// A receiver that refuses a second concurrent connection from us (421 at
// the greeting, as many do per client address): the session it accepted
// carries the whole batch and nothing is deferred.
func TestSplitThrottledReceiver(t *testing.T) {
	w := newWorld(t, []string{"127.0.0.2", "127.0.0.5"}, "big.test. MX 10 mx.big.test.", "mx.big.test. A 127.0.0.2")
	r := w.receive("127.0.0.5", testnet.SMTPOptions{DataDelay: 2 * time.Millisecond})
	backend := r.Addr()
	var mu sync.Mutex
	open := 0
	gate := w.script("127.0.0.2", func(c net.Conn) {
		mu.Lock()
		open++
		n := open
		mu.Unlock()
		defer func() { mu.Lock(); open--; mu.Unlock() }()
		if n > 1 {
			io.WriteString(c, "421 4.7.0 too many connections from your address\r\n")
			return
		}
		b, err := net.Dial("tcp", backend)
		if err != nil {
			return
		}
		defer b.Close()
		go func() { io.Copy(b, c); b.(*net.TCPConn).CloseWrite() }()
		io.Copy(c, b)
	})
	w.putMany(300, "big.test")
	w.cfg.MaxConns, w.cfg.ConnsPerSite = 3, 3
	sum := w.run()
	if sum.Totals.Deferred != 0 || sum.Totals.Failed != 0 {
		t.Fatalf("totals %+v: want nothing deferred", sum.Totals)
	}
	if len(r.Messages()) != 300 || r.Sessions() != 1 {
		t.Errorf("receiver got %d messages over %d sessions, want 300 over the 1 allowed", len(r.Messages()), r.Sessions())
	}
	if gate.Sessions() != 3 {
		t.Errorf("%d connection attempts, want 3 (one per worker)", gate.Sessions())
	}
	if row := rows(t, sum)["big.test"]; row.Delivered != 300 || row.Deferred != 0 || row.Connections != 1 {
		t.Errorf("big.test row %+v, want 300 delivered over 1 connection", row)
	}
}

// More domains than MaxConns: never more concurrent sessions than the
// limit, and exactly one session per domain when nothing fails; the spool
// is empty afterwards.
func TestConnectionLimitAndOneSessionPerDomain(t *testing.T) {
	ips := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7"}
	var zone, domains []string
	for i, ip := range ips {
		d := "d" + strconv.Itoa(i) + ".test"
		domains = append(domains, d)
		zone = append(zone, d+". MX 10 mx."+d+".", "mx."+d+". A "+ip)
	}
	w := newWorld(t, ips, zone...)
	for _, ip := range ips {
		w.receive(ip, testnet.SMTPOptions{})
	}
	w.putMany(5*len(ips), domains...)
	w.cfg.MaxConns = 2
	sum := w.run()
	if sum.Totals.Delivered != 30 || sum.Totals.Deferred != 0 || sum.Totals.Failed != 0 {
		t.Fatalf("totals %+v, want all 30 delivered", sum.Totals)
	}
	if got := w.gauge.Max(); got > 2 || got < 1 {
		t.Errorf("peak concurrent sessions = %d, want 1..2 (MaxConns 2)", got)
	}
	for ip, r := range w.recv {
		if r.Sessions() != 1 || len(r.Messages()) != 5 {
			t.Errorf("%s: %d sessions and %d messages, want 1 session carrying 5", ip, r.Sessions(), len(r.Messages()))
		}
	}
	if left := w.queued(); len(left) != 0 {
		t.Errorf("spool still holds %v after delivering everything", left)
	}
	for _, d := range domains {
		if r := rows(t, sum)[d]; r.Messages != 5 || r.Delivered != 5 || r.Connections != 1 {
			t.Errorf("%s row %+v, want 5 delivered over 1 connection", d, r)
		}
	}
}
