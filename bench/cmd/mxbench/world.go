package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mxflush/mxflush/bench/latency"
	"github.com/mxflush/mxflush/internal/testnet"
)

// Addresses of the benchmark's loopback network.
const (
	sinkIP  = "127.0.0.2" // smtp-sink, the one receiver
	proxyIP = "127.0.0.3" // latency proxy in front of it
)

// world is the benchmark's loopback network: one smtp-sink, a latency proxy
// in front of it on the same port, and two DNS servers whose MX answers
// for d000.test ... point at the sink (loopback) or at the proxy (WAN).
type world struct {
	cfg    config
	port   int
	sink   *sink
	proxy  *latency.Proxy
	dns    *testnet.DNS // MX -> mx.sink.test -> 127.0.0.2
	wanDNS *testnet.DNS // MX -> mx.wan.test -> 127.0.0.3
}

func startWorld(cfg config) (*world, error) {
	w := &world{cfg: cfg}
	var err error
	if w.port, err = testnet.FreePort(sinkIP, proxyIP); err != nil {
		return nil, err
	}
	maxK := 1
	for _, k := range append(append([]int(nil), cfg.ks...), cfg.wanKs...) {
		maxK = max(maxK, k)
	}
	zone := func(host, ip string) []string {
		recs := []string{host + ". A " + ip}
		for i := range maxK {
			recs = append(recs, domainName(i)+". MX 10 "+host+".")
		}
		return recs
	}
	if w.dns, err = testnet.StartDNS(zone("mx.sink.test", sinkIP)...); err != nil {
		return nil, err
	}
	if w.wanDNS, err = testnet.StartDNS(zone("mx.wan.test", proxyIP)...); err != nil {
		w.close()
		return nil, err
	}
	addr := sinkIP + ":" + strconv.Itoa(w.port)
	if w.sink, err = startSink(cfg.sinkPath, addr); err != nil {
		w.close()
		return nil, err
	}
	if w.proxy, err = latency.Start(proxyIP+":"+strconv.Itoa(w.port), addr, cfg.wanDelay); err != nil {
		w.close()
		return nil, err
	}
	logf("smtp-sink on %s, latency proxy (%v each way) on %s, DNS on %s and %s", addr, cfg.wanDelay, w.proxy.Addr(), w.dns.Addr(), w.wanDNS.Addr())
	return w, nil
}

func (w *world) close() {
	if w.proxy != nil {
		w.proxy.Close()
	}
	if w.sink != nil {
		w.sink.stop()
	}
	for _, d := range []*testnet.DNS{w.dns, w.wanDNS} {
		if d != nil {
			d.Close()
		}
	}
}

// result is one run of one contender.
type result struct {
	usage
	Conns  int  // connections opened
	InProc bool // ran inside mxbench: no open files, RSS or CPU of its own
}

func (r result) rate(n int) float64 { return float64(n) / r.Wall.Seconds() }

// counted runs f and checks that the sink counted n more messages.
func (w *world) counted(n int, f func() (result, error)) (result, error) {
	_, before := w.sink.counts()
	r, err := f()
	if err != nil {
		return r, err
	}
	if got := w.sink.settle(before+n) - before; got != n {
		return r, fmt.Errorf("smtp-sink counted %d messages, want %d", got, n)
	}
	return r, nil
}

// flush runs `mxflush flush` on a fresh spool of n messages over k domains
// in the work directory with the given DNS server, --max-conns conc and
// --conns-per-domain cpd.
func (w *world) flush(ctx context.Context, dns *testnet.DNS, n, k, cpd int) (result, error) {
	return w.flushIn(ctx, filepath.Join(w.cfg.dir, "spool"), dns, n, k, cpd)
}

// flushIn is flush with the spool at dir.
func (w *world) flushIn(ctx context.Context, dir string, dns *testnet.DNS, n, k, cpd int) (result, error) {
	if err := writeSpool(dir, n, k, w.cfg.size); err != nil {
		return result{}, err
	}
	return w.counted(n, func() (result, error) {
		return w.runFlush(ctx, dir, dns, w.port, n, w.cfg.conc, cpd)
	})
}

// runFlush runs `mxflush flush --json` on the spool at dir with the given
// DNS server, port, --max-conns and sessions per site, and checks that it
// delivered n messages; Conns is what its summary counted. The sessions
// per site are given by their old name, --conns-per-domain, which every
// mxflush reads (the -before binary has no other).
func (w *world) runFlush(ctx context.Context, dir string, dns *testnet.DNS, port, n, maxConns, cpd int) (result, error) {
	return w.runFlushWith(ctx, w.cfg.mxflush, dir, dns, port, n, maxConns, cpd)
}

// runFlushWith is runFlush with the mxflush binary bin.
func (w *world) runFlushWith(ctx context.Context, bin, dir string, dns *testnet.DNS, port, n, maxConns, cpd int) (result, error) {
	var out bytes.Buffer
	errPath := filepath.Join(w.cfg.dir, "mxflush.stderr")
	u, err := runMeasured(ctx, &out, errPath, bin, "flush", "--spool", dir,
		"--dns", dns.Addr(), "--port", strconv.Itoa(port), "--helo", "bench.test",
		"--max-conns", strconv.Itoa(maxConns), "--conns-per-domain", strconv.Itoa(cpd), "--json")
	if err != nil {
		return result{}, err
	}
	var sum struct {
		Totals struct {
			Delivered   int `json:"delivered"`
			Connections int `json:"connections"`
		} `json:"totals"`
	}
	if u.ExitCode != 0 || json.Unmarshal(out.Bytes(), &sum) != nil || sum.Totals.Delivered != n {
		return result{}, fmt.Errorf("mxflush flush: exit %d, %d delivered of %d\n%s", u.ExitCode, sum.Totals.Delivered, n, tailFile(errPath, 2000))
	}
	return result{usage: u, Conns: sum.Totals.Connections}, nil
}

// dryRun runs `mxflush flush --dry-run` on a fresh spool of n messages over
// k domains: the scan of every envelope, the plan and one MX lookup per
// domain, with no connection; the spool is left as it was.
func (w *world) dryRun(ctx context.Context, n, k int) (result, error) {
	dir := filepath.Join(w.cfg.dir, "spool")
	if err := writeSpool(dir, n, k, w.cfg.size); err != nil {
		return result{}, err
	}
	errPath := filepath.Join(w.cfg.dir, "mxflush.stderr")
	u, err := runMeasured(ctx, io.Discard, errPath, w.cfg.mxflush, "flush", "--dry-run", "--spool", dir,
		"--dns", w.dns.Addr(), "--port", strconv.Itoa(w.port), "--helo", "bench.test",
		"--max-conns", strconv.Itoa(w.cfg.conc), "--conns-per-domain", strconv.Itoa(w.cfg.conc))
	if err != nil {
		return result{}, err
	}
	if u.ExitCode != 0 {
		return result{}, fmt.Errorf("mxflush flush --dry-run: exit %d\n%s", u.ExitCode, tailFile(errPath, 2000))
	}
	return result{usage: u}, nil
}

// source runs smtp-source: n messages over conc sessions, each session
// reusing its connection (reuse) or opening one per message.
func (w *world) source(ctx context.Context, n int, reuse bool) (result, error) {
	return w.counted(n, func() (result, error) {
		args := []string{"-s", strconv.Itoa(w.cfg.conc), "-m", strconv.Itoa(n), "-l", strconv.Itoa(w.cfg.size),
			"-M", "bench.test", "-f", "bench@source.test", "-t", "u@" + domainName(0)}
		conns := n
		if reuse {
			args = append([]string{"-d"}, args...)
			conns = min(n, w.cfg.conc)
		}
		args = append(args, sinkIP+":"+strconv.Itoa(w.port))
		errPath := filepath.Join(w.cfg.dir, "smtp-source.stderr")
		u, err := runMeasured(ctx, nil, errPath, w.cfg.sourcePath, args...)
		if err != nil {
			return result{}, err
		}
		if u.ExitCode != 0 {
			return result{}, fmt.Errorf("smtp-source: exit %d\n%s", u.ExitCode, tailFile(errPath, 2000))
		}
		return result{usage: u, Conns: conns}, nil
	})
}

// contender is one thing measured in a table row.
type contender struct {
	name string
	k    int  // domains, 0 when it does not apply
	dry  bool // delivers nothing: no ratio to the limit
	run  func(ctx context.Context) (result, error)
}

// measure runs every contender runs times, rotating their order from one
// run to the next so that drift of the machine falls on all of them alike,
// and returns each one's results.
func measure(ctx context.Context, cfg config, cs []contender) ([][]result, error) {
	out := make([][]result, len(cs))
	for r := range cfg.runs {
		for j := range cs {
			i := (j + r) % len(cs)
			if !strings.Contains(cs[i].name, cfg.only) {
				continue
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			start := time.Now()
			res, err := cs[i].run(ctx)
			if err != nil {
				return nil, fmt.Errorf("%s (run %d): %w", cs[i].name, r+1, err)
			}
			logf("  run %d/%d %-40s %6.2fs", r+1, cfg.runs, cs[i].name, time.Since(start).Seconds())
			out[i] = append(out[i], res)
		}
	}
	return out, nil
}
