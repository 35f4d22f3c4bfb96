package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mxflush/mxflush/internal/testnet"
)

// mxflush's own defaults (mxflush flush --help): the "defaults" rows pass
// them explicitly, so that each row is what its name says.
const (
	defaultMaxConns     = 32
	defaultConnsPerSite = 16
)

// Postfix's defaults that bound its sessions: default_process_limit (the
// smtp service's maxproc) and default_destination_concurrency_limit.
const (
	postfixProcLimit = 100
	postfixDestConc  = 20
)

// Third octets of the benchmark's extra loopback networks.
const (
	netPostfixSinks  = 5  // one smtp-sink per domain (loopback rows)
	netPostfixWAN    = 6  // one smtp-sink per domain (WAN rows) ...
	netPostfixProxy  = 16 // ... behind one latency proxy each
	netPostfixSMTPD  = 7  // the private Postfix instances' smtpd
	netSites         = 8  // one smtp-sink per site
	netSitesTLS      = 9  // one go-smtp receiver with STARTTLS per site ...
	netSitesTLSProxy = 10 // ... behind one latency proxy each
)

// relayer is one configuration of mxflush or Postfix in the postfix
// section.
type relayer struct {
	name     string
	postfix  bool
	procs    int // Postfix: smtp maxproc; mxflush: --max-conns
	conc     int // Postfix: default_destination_concurrency_limit; mxflush: --conns-per-site
	memory   bool
	instance *postfixInstance
}

// relayers are the four configurations of each storage: both at their
// defaults, and each at the other's session limits.
func relayers(memory bool) []*relayer {
	return []*relayer{
		{name: fmt.Sprintf("mxflush at its defaults (--max-conns %d --conns-per-site %d)", defaultMaxConns, defaultConnsPerSite),
			procs: defaultMaxConns, conc: defaultConnsPerSite, memory: memory},
		{name: fmt.Sprintf("mxflush at Postfix's session limits (--max-conns %d --conns-per-site %d)", postfixProcLimit, postfixDestConc),
			procs: postfixProcLimit, conc: postfixDestConc, memory: memory},
		{name: fmt.Sprintf("Postfix at its defaults (smtp maxproc %d, destination concurrency %d)", postfixProcLimit, postfixDestConc),
			postfix: true, procs: postfixProcLimit, conc: postfixDestConc, memory: memory},
		{name: fmt.Sprintf("Postfix at mxflush's session limits (smtp maxproc %d, destination concurrency %d)", defaultMaxConns, defaultConnsPerSite),
			postfix: true, procs: defaultMaxConns, conc: defaultConnsPerSite, memory: memory},
	}
}

// postfixSection measures mxflush beside a private Postfix 3.7 instance
// relaying the same messages to the same receivers: one smtp-sink per
// domain on loopback, then behind a latency proxy each.
func (w *world) postfixSection(ctx context.Context) error {
	c := w.cfg
	tools, err := lookPostfix()
	if err != nil {
		return err
	}
	maxK := 1
	for _, k := range c.postfixKs {
		maxK = max(maxK, k)
	}
	fmt.Printf("### mxflush beside Postfix %s as a relayer, %d-octet bodies, one smtp-sink per domain\n\n", postfixVersion(), c.size)
	fmt.Print("Each Postfix run injects the messages over SMTP into a private instance, whose header_checks put them on hold, syncs, then starts the clock at `postsuper -H ALL; postqueue -f` and stops it when its maillog shows every message removed, its queue directories are empty and the sinks counted every message. Connections are counted at the sinks (loopback) or the proxies (WAN). ")
	fmt.Printf("Postfix's CPU is %s summed over all its processes; mxflush's is its rusage.\n\n", newCPUGroupProbe())
	fmt.Println("| network | messages | domains | queue | contender | msgs/s | × Postfix at its defaults | connections | CPU ms per message | wall s |")
	fmt.Println("|---|---:|---:|---|---|---:|---:|---:|---:|---:|")
	if err := w.postfixPart(ctx, tools, false, c.postfixN, maxK); err != nil {
		return err
	}
	if err := w.postfixPart(ctx, tools, true, c.wanN, maxK); err != nil {
		return err
	}
	fmt.Println()
	return nil
}

// postfixVersion is mail_version of the installed Postfix.
func postfixVersion() string {
	out, err := exec.Command("postconf", "-h", "-d", "mail_version").Output()
	if err != nil {
		return "(version unknown)"
	}
	return strings.TrimSpace(string(out))
}

// newCPUGroupProbe names how Postfix's CPU will be measured here.
func newCPUGroupProbe() string {
	if cgroup2Mount() != "" {
		return "its cgroup's (v2) cpu.stat"
	}
	return "from /proc/PID/stat of its master and the master's children"
}

// postfixPart measures one network (loopback or WAN) with n messages for
// every domain count, on disk and (loopback, with -tmpfs) on tmpfs.
func (w *world) postfixPart(ctx context.Context, tools postfixTools, wan bool, n, maxK int) error {
	c := w.cfg
	o := farmOptions{count: maxK, net: netPostfixSinks, sinkPath: c.sinkPath}
	network := "loopback"
	if wan {
		o.net, o.proxyNet, o.delay = netPostfixWAN, netPostfixProxy, c.wanDelay
		network = fmt.Sprintf("WAN, %v round trip", 2*c.wanDelay)
	}
	f, err := startFarm(o)
	if err != nil {
		return err
	}
	defer f.close()
	var zone []string
	var transport strings.Builder
	for i := range maxK {
		host := "mx." + domainName(i)
		zone = append(zone, domainName(i)+". MX 10 "+host+".", host+". A "+f.dialIPs[i])
		fmt.Fprintf(&transport, "%s smtp:[%s]:%d\n", domainName(i), f.dialIPs[i], f.port)
	}
	dns, err := testnet.StartDNS(zone...)
	if err != nil {
		return err
	}
	defer dns.Close()

	var rs []*relayer
	rs = append(rs, relayers(false)...)
	if !wan && c.memSpool != "" {
		rs = append(rs, relayers(true)...)
	}
	var smtpdIPs []string
	for i := range rs {
		smtpdIPs = append(smtpdIPs, fmt.Sprintf("127.0.%d.%d", netPostfixSMTPD, i+1))
	}
	smtpdPort, err := testnet.FreePort(smtpdIPs...)
	if err != nil {
		return err
	}
	for i, r := range rs {
		if !r.postfix || !strings.Contains(r.name, c.only) {
			continue
		}
		queueBase := c.dir
		if r.memory {
			queueBase = filepath.Dir(c.memSpool)
		}
		name := fmt.Sprintf("postfix-%s-%d", map[bool]string{false: "loop", true: "wan"}[wan], i)
		logf("starting a private Postfix in %s", filepath.Join(c.dir, name))
		inst, err := startPostfix(ctx, tools, postfixOptions{name: name, base: c.dir, queueBase: queueBase,
			listen: smtpdIPs[i] + ":" + strconv.Itoa(smtpdPort), transport: transport.String(),
			procLimit: r.procs, destConc: r.conc})
		if err != nil {
			return err
		}
		defer inst.stop()
		r.instance = inst
	}
	for _, k := range w.cfg.postfixKs {
		logf("postfix section, %s, %d messages, %d domains", network, n, k)
		var cs []contender
		for _, r := range rs {
			cs = append(cs, contender{name: r.name, k: k, run: func(ctx context.Context) (result, error) {
				if r.postfix {
					return w.postfixRun(ctx, f, r.instance, n, k)
				}
				dir := filepath.Join(c.dir, "spool")
				if r.memory {
					dir = c.memSpool
				}
				return w.farmFlush(ctx, f, dir, dns, n, k, r.procs, r.conc)
			}})
		}
		res, err := measure(ctx, c, cs)
		if err != nil {
			return err
		}
		for i, r := range rs {
			if len(res[i]) == 0 {
				continue
			}
			base := 0.0
			for j, b := range rs {
				if b.postfix && b.procs == postfixProcLimit && b.memory == r.memory {
					base = medianRate(res[j], n)
				}
			}
			queue := "disk"
			if r.memory {
				queue = "tmpfs"
			}
			rate := medianRate(res[i], n)
			fmt.Printf("| %s | %d | %d | %s | %s | %.0f | %s | %d | %.3f | %.2f |\n", network, n, k, queue, r.name, rate, ratio(rate, base),
				medianInt(res[i], func(r result) int { return r.Conns }),
				medianDur(res[i], func(r result) time.Duration { return r.CPU }).Seconds()*1000/float64(n),
				medianDur(res[i], func(r result) time.Duration { return r.Wall }).Seconds())
		}
	}
	return nil
}

// farmFlush writes a spool of n messages over k domains at dir and runs
// mxflush flush on it against the farm; connections are counted at the
// farm.
func (w *world) farmFlush(ctx context.Context, f *farm, dir string, dns *testnet.DNS, n, k, maxConns, cpd int) (result, error) {
	return w.farmFlushWith(ctx, w.cfg.mxflush, f, dir, dns, n, k, maxConns, cpd)
}

// farmFlushWith is farmFlush with another mxflush binary (-before).
func (w *world) farmFlushWith(ctx context.Context, bin string, f *farm, dir string, dns *testnet.DNS, n, k, maxConns, cpd int) (result, error) {
	if err := writeSpool(dir, n, k, w.cfg.size); err != nil {
		return result{}, err
	}
	c0, m0, err := f.idle(time.Minute)
	if err != nil {
		return result{}, err
	}
	r, err := w.runFlushWith(ctx, bin, dir, dns, f.port, n, maxConns, cpd)
	if err != nil {
		return r, err
	}
	return settled(f, r, c0, m0, n)
}

// postfixRun injects n messages over k domains into the instance, and
// times their delivery to the farm.
func (w *world) postfixRun(ctx context.Context, f *farm, p *postfixInstance, n, k int) (result, error) {
	c0, m0, err := f.idle(time.Minute)
	if err != nil {
		return result{}, err
	}
	if err := p.inject(ctx, n, k, w.cfg.size, w.cfg.conc); err != nil {
		return result{}, err
	}
	u, err := p.relay(ctx, n, func() int { _, m := f.counts(); return m - m0 })
	if err != nil {
		return result{}, err
	}
	return settled(f, result{usage: u}, c0, m0, n)
}

// settled waits for the farm to be idle and fills in the connections the
// run opened, checking that it received n messages.
func settled(f *farm, r result, c0, m0, n int) (result, error) {
	c1, m1, err := f.idle(time.Minute)
	if err != nil {
		return r, err
	}
	if m1-m0 != n {
		return r, fmt.Errorf("the receivers counted %d messages, want %d", m1-m0, n)
	}
	r.Conns = c1 - c0
	return r, nil
}
