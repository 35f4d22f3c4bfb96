package main

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// loopback measures, for each message count, mxflush over each domain count
// (with the spool on disk, and again on tmpfs when -tmpfs names one) and
// smtp-source with and without connection reuse, all to the same smtp-sink
// with the same message size and concurrency, plus the disk floor (see
// unlinkFloor), and prints one table.
func (w *world) loopback(ctx context.Context) error {
	c := w.cfg
	fmt.Printf("### Loopback: %d sessions at once (mxflush --max-conns %d --conns-per-site %d, smtp-source -s %d), %d-octet bodies, one smtp-sink\n\n",
		c.conc, c.conc, c.conc, c.conc, c.size)
	fmt.Printf("Spool on disk: %s, %s.", w.cfg.dir, fsInfo(w.cfg.dir))
	if c.memSpool != "" {
		fmt.Printf(" Spool in memory: %s, %s.", c.memSpool, fsInfo(c.memSpool))
	}
	fmt.Print("\n\n")
	fmt.Println("| messages | contender | domains | msgs/s | × limit | connections | peak open files | peak RSS MB | CPU s | wall s |")
	fmt.Println("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, n := range c.ns {
		logf("loopback, %d messages", n)
		var cs []contender
		for _, k := range c.ks {
			cs = append(cs, contender{name: fmt.Sprintf("mxflush flush, %d domains", k), k: k,
				run: func(ctx context.Context) (result, error) { return w.flush(ctx, w.dns, n, k, c.conc) }})
		}
		if c.memSpool != "" {
			for _, k := range c.ks {
				cs = append(cs, contender{name: fmt.Sprintf("mxflush flush, %d domains, spool on tmpfs", k), k: k,
					run: func(ctx context.Context) (result, error) { return w.flushIn(ctx, c.memSpool, w.dns, n, k, c.conc) }})
			}
		}
		limit := len(cs) + 1
		cs = append(cs,
			contender{name: "mxflush flush --dry-run (scan, plan, MX lookups: no delivery)", k: 1, dry: true,
				run: func(ctx context.Context) (result, error) { return w.dryRun(ctx, n, 1) }},
			contender{name: fmt.Sprintf("smtp-source -d -s %d (limit)", c.conc),
				run: func(ctx context.Context) (result, error) { return w.source(ctx, n, true) }},
			contender{name: fmt.Sprintf("smtp-source -s %d (new connection per message)", c.conc),
				run: func(ctx context.Context) (result, error) { return w.source(ctx, n, false) }},
			contender{name: fmt.Sprintf("disk floor: unlink %d spool files on %d threads, no SMTP", n, floorThreads),
				run: func(ctx context.Context) (result, error) { return w.unlinkFloor(ctx, n) }})
		res, err := measure(ctx, c, cs)
		if err != nil {
			return err
		}
		lim := medianRate(res[limit], n)
		for i, ct := range cs {
			printRow(n, ct, res[i], lim)
		}
	}
	fmt.Println()
	return nil
}

func printRow(n int, ct contender, rs []result, limit float64) {
	if len(rs) == 0 { // left out by -only
		return
	}
	rate := medianRate(rs, n)
	if ct.dry {
		limit = 0
	}
	dom := "–"
	if ct.k > 0 {
		dom = fmt.Sprint(ct.k)
	}
	fmt.Printf("| %d | %s | %s | %.0f | %s | %d | %s | %s | %s | %.2f |\n", n, ct.name, dom, rate, ratio(rate, limit),
		medianInt(rs, func(r result) int { return r.Conns }),
		ifProc(rs, func() string { return fmt.Sprint(medianInt(rs, func(r result) int { return r.PeakFDs })) }),
		ifProc(rs, func() string {
			return fmt.Sprintf("%.1f", float64(medianInt(rs, func(r result) int { return int(r.PeakRSS) }))/(1<<20))
		}),
		ifProc(rs, func() string {
			return fmt.Sprintf("%.2f", medianDur(rs, func(r result) time.Duration { return r.CPU }).Seconds())
		}),
		medianDur(rs, func(r result) time.Duration { return r.Wall }).Seconds())
}

// ratio renders a/b, or "–" without b.
func ratio(a, b float64) string {
	if b <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// ifProc renders a per-process figure, or "–" for a contender that ran
// inside mxbench.
func ifProc(rs []result, f func() string) string {
	if len(rs) == 0 || rs[0].InProc {
		return "–"
	}
	return f()
}

// medianRate is the median of n / wall over the runs.
func medianRate(rs []result, n int) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = r.rate(n)
	}
	return median(v)
}

func medianInt(rs []result, f func(result) int) int {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = float64(f(r))
	}
	return int(median(v) + 0.5)
}

func medianDur(rs []result, f func(result) time.Duration) time.Duration {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = float64(f(r))
	}
	return time.Duration(median(v))
}

// median of v (the mean of the middle two for an even count); 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
