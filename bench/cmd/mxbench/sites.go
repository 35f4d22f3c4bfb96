package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/mxflush/mxflush/internal/testnet"
)

// siteHosts are the MX host names of site s: two, at preferences 10 and
// 20, both on the site's one receiver, as a hosting provider's MX hosts
// serve many customers' domains.
func siteHosts(s int) [2]string {
	return [2]string{fmt.Sprintf("mx1.site%d.test", s), fmt.Sprintf("mx2.site%d.test", s)}
}

// sitesZone is the DNS data of k domains on the farm's sites, domain i on
// site i mod sites.
func sitesZone(f *farm, k int) []string {
	var zone []string
	for s, ip := range f.dialIPs {
		h := siteHosts(s)
		zone = append(zone, h[0]+". A "+ip, h[1]+". A "+ip)
	}
	for i := range k {
		h := siteHosts(i % len(f.dialIPs))
		zone = append(zone, domainName(i)+". MX 10 "+h[0]+".", domainName(i)+". MX 20 "+h[1]+".")
	}
	return zone
}

// sitesSection measures mxflush on many domains hosted on few sites (MX
// hosts shared by many domains, as at large mailbox providers), on
// loopback: one smtp-sink per site. The comparison row puts the same
// messages on one domain per site.
func (w *world) sitesSection(ctx context.Context) error {
	c := w.cfg
	f, err := startFarm(farmOptions{count: c.sites, net: netSites, sinkPath: c.sinkPath})
	if err != nil {
		return err
	}
	defer f.close()
	dns, err := testnet.StartDNS(sitesZone(f, max(c.sitesK, c.sites))...)
	if err != nil {
		return err
	}
	defer dns.Close()
	n := c.sitesN
	fmt.Printf("### Sites on loopback: %d messages, %d domains on %d sites (one smtp-sink a site), mxflush --max-conns %d --conns-per-site %d (its defaults)\n\n",
		n, c.sitesK, c.sites, defaultMaxConns, defaultConnsPerSite)
	fmt.Println("Each domain's MX records name its site's two host names (preferences 10 and 20), both on the site's sink. Connections are counted at the sinks.")
	fmt.Println()
	fmt.Println("| contender | domains | sites | spool | msgs/s | × one domain a site | connections | CPU s | wall s |")
	fmt.Println("|---|---:|---:|---|---:|---:|---:|---:|---:|")
	type row struct {
		k      int
		memory bool
	}
	var rows []row
	for _, memory := range []bool{false, true} {
		if memory && c.memSpool == "" {
			continue
		}
		rows = append(rows, row{c.sitesK, memory}, row{c.sites, memory})
	}
	var cs []contender
	for _, r := range rows {
		name := fmt.Sprintf("mxflush flush, %d domains on %d sites", r.k, c.sites)
		if r.k == c.sites {
			name = fmt.Sprintf("mxflush flush, %d domains (one a site)", r.k)
		}
		dir := filepath.Join(c.dir, "spool")
		if r.memory {
			name += ", spool on tmpfs"
			dir = c.memSpool
		}
		cs = append(cs, contender{name: name, k: r.k, run: func(ctx context.Context) (result, error) {
			return w.farmFlush(ctx, f, dir, dns, n, r.k, defaultMaxConns, defaultConnsPerSite)
		}})
	}
	if c.before != "" {
		// The same 500 domains with the mxflush of -before, which has
		// sessions per domain: the row sites replace.
		rows = append(rows, row{c.sitesK, false})
		cs = append(cs, contender{name: fmt.Sprintf("mxflush before sites (sessions per domain), %d domains", c.sitesK), k: c.sitesK,
			run: func(ctx context.Context) (result, error) {
				return w.farmFlushWith(ctx, c.before, f, filepath.Join(c.dir, "spool"), dns, n, c.sitesK, defaultMaxConns, 4)
			}})
	}
	logf("sites, %d messages, %d domains on %d sites", n, c.sitesK, c.sites)
	res, err := measure(ctx, c, cs)
	if err != nil {
		return err
	}
	for i, r := range rows {
		if len(res[i]) == 0 {
			continue
		}
		base := 0.0 // the row of one domain a site with the same spool
		if j := i - i%2 + 1; j < len(res) && len(res[j]) > 0 && cs[j].k == c.sites {
			base = medianRate(res[j], n)
		} else if len(res) > 1 && len(res[1]) > 0 {
			base = medianRate(res[1], n) // the -before row: against the disk row
		}
		spool := "disk"
		if r.memory {
			spool = "tmpfs"
		}
		rate := medianRate(res[i], n)
		fmt.Printf("| %s | %d | %d | %s | %.0f | %s | %d | %.2f | %.2f |\n", cs[i].name, r.k, c.sites, spool, rate, ratio(rate, base),
			medianInt(res[i], func(r result) int { return r.Conns }),
			medianDur(res[i], func(r result) time.Duration { return r.CPU }).Seconds(),
			medianDur(res[i], func(r result) time.Duration { return r.Wall }).Seconds())
	}
	fmt.Println()
	return nil
}

// sitesWANSection is sitesSection over the simulated WAN with STARTTLS:
// one go-smtp receiver a site offering STARTTLS (smtp-sink has none), each
// behind a latency proxy.
func (w *world) sitesWANSection(ctx context.Context) error {
	c := w.cfg
	ca, err := testnet.NewCA("mxbench CA")
	if err != nil {
		return err
	}
	var names []string
	for s := range c.sites {
		h := siteHosts(s)
		names = append(names, h[0], h[1])
	}
	cert, err := ca.Issue(names...)
	if err != nil {
		return err
	}
	f, err := startFarm(farmOptions{count: c.sites, net: netSitesTLS, proxyNet: netSitesTLSProxy, delay: c.wanDelay,
		tls: testnet.ServerTLS(cert), domain: func(i int) string { return siteHosts(i)[0] }})
	if err != nil {
		return err
	}
	defer f.close()
	dns, err := testnet.StartDNS(sitesZone(f, max(c.sitesWanK, c.sites))...)
	if err != nil {
		return err
	}
	defer dns.Close()
	n := c.sitesWanN
	fmt.Printf("### Sites over the simulated WAN with STARTTLS: %v round trip, %d messages, %d domains on %d sites, mxflush --max-conns %d --conns-per-site %d --tls may (its defaults) for every row\n\n",
		2*c.wanDelay, n, c.sitesWanK, c.sites, defaultMaxConns, defaultConnsPerSite)
	fmt.Println("One go-smtp receiver a site offers STARTTLS with a certificate from a test CA, behind a latency proxy; every message arrived over TLS. Connections are counted at the proxies.")
	fmt.Println()
	fmt.Println("| contender | domains | sites | msgs/s | × one domain a site | connections | CPU s | wall s |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|")
	ks := []int{c.sitesWanK, c.sites}
	var cs []contender
	for _, k := range ks {
		name := fmt.Sprintf("mxflush flush, %d domains on %d sites", k, c.sites)
		if k == c.sites {
			name = fmt.Sprintf("mxflush flush, %d domains (one a site)", k)
		}
		cs = append(cs, contender{name: name, k: k, run: func(ctx context.Context) (result, error) {
			return w.farmFlush(ctx, f, filepath.Join(c.dir, "spool"), dns, n, k, defaultMaxConns, defaultConnsPerSite)
		}})
	}
	if c.before != "" {
		// Today's sessions per domain, with the same --max-conns: the
		// mxflush of -before on the same 500 domains.
		ks = append(ks, c.sitesWanK)
		cs = append(cs, contender{name: fmt.Sprintf("mxflush before sites (sessions per domain, --max-conns %d --conns-per-domain 4), %d domains", defaultMaxConns, c.sitesWanK), k: c.sitesWanK,
			run: func(ctx context.Context) (result, error) {
				return w.farmFlushWith(ctx, c.before, f, filepath.Join(c.dir, "spool"), dns, n, c.sitesWanK, defaultMaxConns, 4)
			}})
	}
	logf("sites over the WAN, %d messages, %d domains on %d sites", n, c.sitesWanK, c.sites)
	res, err := measure(ctx, c, cs)
	if err != nil {
		return err
	}
	if !f.allTLS() {
		return fmt.Errorf("sites-wan: a message reached a receiver without TLS")
	}
	base := 0.0
	if len(res[1]) > 0 {
		base = medianRate(res[1], n)
	}
	for i, k := range ks {
		if len(res[i]) == 0 {
			continue
		}
		rate := medianRate(res[i], n)
		fmt.Printf("| %s | %d | %d | %.0f | %s | %d | %.2f | %.2f |\n", cs[i].name, k, c.sites, rate, ratio(rate, base),
			medianInt(res[i], func(r result) int { return r.Conns }),
			medianDur(res[i], func(r result) time.Duration { return r.CPU }).Seconds(),
			medianDur(res[i], func(r result) time.Duration { return r.Wall }).Seconds())
	}
	fmt.Println()
	return nil
}
