package main

import (
	"encoding/json"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxflush/mxflush/batch"
	"github.com/mxflush/mxflush/internal/testnet"
)

// A large batch to one domain is shared by up to --conns-per-site
// sessions, gained while they deliver (one per 20 messages left), all
// within --max-conns; a small batch keeps one session; the summary keeps
// one row per domain, with the sessions added up.
func TestFlushSplitsLargeDomain(t *testing.T) {
	tests := []struct {
		name               string
		perDomain, maxConn int
		wantBig            int // sessions for 300 messages to big.test
	}{
		{"three sessions for 300 messages", 3, 4, 3},
		{"capped by max-conns", 3, 2, 2},
		{"one when told one", 1, 4, 1},
		{"grows to the cap while it delivers", 8, 8, 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A slow end of data keeps every session busy long enough for
			// all workers to start before the queue empties.
			slow := func(string) testnet.SMTPOptions { return testnet.SMTPOptions{DataDelay: 3 * time.Millisecond} }
			w := newWorld(t, []string{"127.0.0.2", "127.0.0.3"}, slow,
				"big.test. MX 10 mx.big.test.", "mx.big.test. A 127.0.0.2",
				"small.test. MX 10 mx.small.test.", "mx.small.test. A 127.0.0.3")
			// 305 messages, every 61st to small.test: 300 to big.test, 5 to small.test.
			domains := append(slices.Repeat([]string{"big.test"}, 60), "small.test")
			spoolMany(t, w.spool, 305, domains)

			code, out, errs := w.flush("--max-conns", strconv.Itoa(tc.maxConn),
				"--conns-per-site", strconv.Itoa(tc.perDomain), "--json")
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, tail(errs, 2000))
			}
			big, small := w.recv["127.0.0.2"], w.recv["127.0.0.3"]
			if big.Sessions() != tc.wantBig || len(big.Messages()) != 300 {
				t.Errorf("big.test: %d messages over %d sessions, want 300 over %d", len(big.Messages()), big.Sessions(), tc.wantBig)
			}
			if small.Sessions() != 1 || len(small.Messages()) != 5 {
				t.Errorf("small.test: %d messages over %d sessions, want 5 over 1", len(small.Messages()), small.Sessions())
			}
			if m := w.gauge.Max(); m > tc.maxConn {
				t.Errorf("%d sessions at once, want at most --max-conns %d", m, tc.maxConn)
			}
			rows := summaryRows(t, out)
			if r := rows["big.test"]; len(rows) != 2 || r.Messages != 300 || r.Delivered != 300 || r.Connections != tc.wantBig {
				t.Errorf("summary rows %+v, want one big.test row with 300 messages delivered over %d connections", rows, tc.wantBig)
			}
		})
	}
}

// Once every domain has its sessions, a slot that frees up goes to the
// domain with the longest queue left: fast.test and slow.test get one
// session each under --max-conns 2 (each is half the run), and when
// fast.test is done, slow.test, with most of its 300 messages still
// queued, takes the free slot for a second session.
func TestFlushLateWorkerTakesFreedSlot(t *testing.T) {
	opts := func(ip string) testnet.SMTPOptions {
		if ip == "127.0.0.2" {
			return testnet.SMTPOptions{DataDelay: 4 * time.Millisecond}
		}
		return testnet.SMTPOptions{}
	}
	w := newWorld(t, []string{"127.0.0.2", "127.0.0.3"}, opts,
		"slow.test. MX 10 mx.slow.test.", "mx.slow.test. A 127.0.0.2",
		"fast.test. MX 10 mx.fast.test.", "mx.fast.test. A 127.0.0.3")
	spoolMany(t, w.spool, 600, []string{"slow.test", "fast.test"})
	code, out, errs := w.flush("--max-conns", "2", "--conns-per-site", "2", "--json")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, tail(errs, 2000))
	}
	slow, fast := w.recv["127.0.0.2"], w.recv["127.0.0.3"]
	if slow.Sessions() != 2 || fast.Sessions() != 1 {
		t.Errorf("sessions: slow.test %d, fast.test %d; want 2 (a late second one) and 1", slow.Sessions(), fast.Sessions())
	}
	if m := w.gauge.Max(); m > 2 {
		t.Errorf("%d sessions at once, want at most --max-conns 2", m)
	}
	got := map[string]int{}
	for _, r := range []*testnet.Receiver{slow, fast} {
		for _, m := range r.Messages() {
			for _, to := range m.To {
				got[to]++
			}
		}
	}
	for i := range 600 {
		rcpt := "u" + strconv.Itoa(i) + "@" + []string{"slow.test", "fast.test"}[i%2]
		if got[rcpt] != 1 {
			t.Errorf("%s received %d times, want once", rcpt, got[rcpt])
		}
	}
	if left := append(w.files("new"), w.files("cur")...); len(left) > 0 {
		t.Errorf("%d messages left in the spool", len(left))
	}
	rows := summaryRows(t, out)
	if r := rows["slow.test"]; r.Delivered != 300 || r.Connections != 2 {
		t.Errorf("slow.test row %+v, want 300 delivered over 2 connections", r)
	}
}

// A receiver that refuses a second concurrent connection from us (421 at
// the greeting, as many do per client address): the session it accepted
// carries the whole batch and nothing is deferred.
func TestFlushSplitThrottledReceiver(t *testing.T) {
	w := newWorld(t, []string{"127.0.0.5"}, func(string) testnet.SMTPOptions {
		return testnet.SMTPOptions{DataDelay: 2 * time.Millisecond}
	}, "big.test. MX 10 mx.big.test.", "mx.big.test. A 127.0.0.2")
	backend := w.recv["127.0.0.5"].Addr()
	var mu sync.Mutex
	open := 0
	gate, err := testnet.StartScript("127.0.0.2:"+strconv.Itoa(w.port), func(c net.Conn) {
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
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gate.Close() })
	spoolMany(t, w.spool, 300, []string{"big.test"})

	code, out, errs := w.flush("--max-conns", "3", "--conns-per-site", "3", "--json")
	if code != 0 {
		t.Fatalf("exit %d, want 0: nothing deferred\n%s", code, tail(errs, 2000))
	}
	r := w.recv["127.0.0.5"]
	if len(r.Messages()) != 300 || r.Sessions() != 1 {
		t.Errorf("receiver got %d messages over %d sessions, want 300 over the 1 allowed", len(r.Messages()), r.Sessions())
	}
	if gate.Sessions() != 3 {
		t.Errorf("%d connection attempts, want 3 (one per worker)", gate.Sessions())
	}
	if row := summaryRows(t, out)["big.test"]; row.Delivered != 300 || row.Deferred != 0 || row.Connections != 1 {
		t.Errorf("big.test row %+v, want 300 delivered over 1 connection", row)
	}
}

// summaryRows decodes the --json summary into its rows by domain.
func summaryRows(t *testing.T, out string) map[string]batch.DomainStats {
	t.Helper()
	var sum struct {
		Domains []batch.DomainStats `json:"domains"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, out)
	}
	rows := map[string]batch.DomainStats{}
	for _, d := range sum.Domains {
		if _, dup := rows[d.Domain]; dup {
			t.Errorf("two summary rows for %s", d.Domain)
		}
		rows[d.Domain] = d
	}
	return rows
}

// --conns-per-site below 1 is a usage error (64), found before any work.
func TestFlushConnsPerSiteUsage(t *testing.T) {
	w := newWorld(t, nil, nil, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	spoolMany(t, w.spool, 1, []string{"a.test"})
	if code, _, errs := w.flush("--conns-per-site", "0"); code != 64 || !strings.Contains(errs, "--conns-per-site") {
		t.Errorf("exit %d, stderr %q; want 64 naming --conns-per-site", code, errs)
	}
	if got := w.files("new"); len(got) != 1 || w.recv["127.0.0.2"].Sessions() != 0 {
		t.Errorf("files in new/ %v, sessions %d: want the message untouched, no session", got, w.recv["127.0.0.2"].Sessions())
	}
}
