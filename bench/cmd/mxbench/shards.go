package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mxflush/mxflush/internal/testnet"
)

// shardsSection measures one flush against -shards flushes with
// --shard i/N started at once over the same spool, both at mxflush's
// defaults: -shards-n messages to 20 domains, each on its own smtp-sink
// behind a latency proxy. On one host the shards share its cores and
// disk; what they add is sessions (each shard grows its own per site).
func (w *world) shardsSection(ctx context.Context) error {
	c := w.cfg
	const k = 20
	f, err := startFarm(farmOptions{count: k, net: netPostfixWAN, proxyNet: netPostfixProxy, delay: c.wanDelay, sinkPath: c.sinkPath})
	if err != nil {
		return err
	}
	defer f.close()
	var zone []string
	for i := range k {
		host := "mx." + domainName(i)
		zone = append(zone, domainName(i)+". MX 10 "+host+".", host+". A "+f.dialIPs[i])
	}
	dns, err := testnet.StartDNS(zone...)
	if err != nil {
		return err
	}
	defer dns.Close()
	n := c.shardsN
	fmt.Printf("### Shards over the simulated WAN: %v round trip, %d messages to %d domains (one smtp-sink each, behind a proxy), mxflush at its defaults (--max-conns %d --conns-per-site %d)\n\n",
		2*c.wanDelay, n, k, defaultMaxConns, defaultConnsPerSite)
	fmt.Println("The sharded row starts every `flush --shard i/N` at once on this one host, over one spool; its wall time is the last one's end, its CPU the sum, its connections counted at the proxies.")
	fmt.Println()
	fmt.Println("| contender | msgs/s | × one flush | connections | CPU s | wall s |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	dir := filepath.Join(c.dir, "spool")
	cs := []contender{
		{name: "one flush", k: k, run: func(ctx context.Context) (result, error) {
			return w.farmFlush(ctx, f, dir, dns, n, k, defaultMaxConns, defaultConnsPerSite)
		}},
		{name: fmt.Sprintf("%d shards at once (--shard i/%d)", c.shards, c.shards), k: k, run: func(ctx context.Context) (result, error) {
			return w.shardedFlush(ctx, f, dir, dns, n, k)
		}},
	}
	logf("shards, %d messages, %d domains, 1 flush against %d shards", n, k, c.shards)
	res, err := measure(ctx, c, cs)
	if err != nil {
		return err
	}
	base := 0.0
	if len(res[0]) > 0 {
		base = medianRate(res[0], n)
	}
	for i := range cs {
		if len(res[i]) == 0 {
			continue
		}
		rate := medianRate(res[i], n)
		fmt.Printf("| %s | %.0f | %s | %d | %.2f | %.2f |\n", cs[i].name, rate, ratio(rate, base),
			medianInt(res[i], func(r result) int { return r.Conns }),
			medianDur(res[i], func(r result) time.Duration { return r.CPU }).Seconds(),
			medianDur(res[i], func(r result) time.Duration { return r.Wall }).Seconds())
	}
	fmt.Println()
	return nil
}

// shardedFlush writes n messages over k domains into the spool at dir and
// runs -shards flushes with --shard i/N at once; every one must exit 0 and
// together they must deliver all n.
func (w *world) shardedFlush(ctx context.Context, f *farm, dir string, dns *testnet.DNS, n, k int) (result, error) {
	c := w.cfg
	if err := writeSpool(dir, n, k, c.size); err != nil {
		return result{}, err
	}
	c0, m0, err := f.idle(time.Minute)
	if err != nil {
		return result{}, err
	}
	us := make([]usage, c.shards)
	delivered := make([]int, c.shards)
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for i := range c.shards {
		g.Go(func() error {
			var out bytes.Buffer
			errPath := filepath.Join(c.dir, "mxflush-shard"+strconv.Itoa(i)+".stderr")
			u, err := runMeasured(gctx, &out, errPath, c.mxflush, "flush", "--spool", dir, "--shard", fmt.Sprintf("%d/%d", i, c.shards),
				"--dns", dns.Addr(), "--port", strconv.Itoa(f.port), "--helo", "bench.test", "--json")
			if err != nil {
				return err
			}
			var sum struct {
				Totals struct {
					Delivered int `json:"delivered"`
				} `json:"totals"`
			}
			if u.ExitCode != 0 || json.Unmarshal(out.Bytes(), &sum) != nil {
				return fmt.Errorf("mxflush flush --shard %d/%d: exit %d\n%s", i, c.shards, u.ExitCode, tailFile(errPath, 2000))
			}
			us[i], delivered[i] = u, sum.Totals.Delivered
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return result{}, err
	}
	r := result{usage: usage{Wall: time.Since(start)}}
	total := 0
	for i, u := range us {
		r.CPU += u.CPU
		r.PeakRSS = max(r.PeakRSS, u.PeakRSS)
		r.PeakFDs = max(r.PeakFDs, u.PeakFDs)
		total += delivered[i]
	}
	if total != n {
		return r, fmt.Errorf("the shards delivered %d of %d", total, n)
	}
	return settled(f, r, c0, m0, n)
}
