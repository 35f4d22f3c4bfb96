package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/mxflush/mxflush/addr"
	"github.com/mxflush/mxflush/batch"
	"github.com/mxflush/mxflush/deliver"
	"github.com/mxflush/mxflush/mx"
	"github.com/mxflush/mxflush/report"
	"github.com/mxflush/mxflush/spool"
)

// FlushCmd is `mxflush flush`: one batch run over the spool, or over the
// messages and domains it names (as Postfix's postqueue -i and -s).
type FlushCmd struct {
	FlushFlags `embed:""`

	IDs     []string `arg:"" optional:"" name:"id" help:"Deliver only these messages (IDs as mxflush queue prints them), now, whatever their next attempt."`
	Domains []string `name:"domain" help:"Deliver only the recipients in this domain (repeatable), now, whatever their next attempt; their messages' other recipients are left as they are." placeholder:"D" env:"-"`

	// Command line only, as the selections: a stray variable or config key
	// must never make a manual flush send 1/N of the queue.
	Shard          string `help:"Flush only shard I of N (I from 0 to N-1, as Kubernetes' JOB_COMPLETION_INDEX): the messages whose file names hash to I; the N shards of one spool run at once, each with its own lock and crash journal (command line only; see README, Scaling past one host)." placeholder:"I/N" env:"-"`
	MailOutcomesOK bool   `name:"mail-outcomes-ok" help:"Exit 0 when the run itself worked although mail was deferred (75) or bounced (69), which are normal outcomes: for a Kubernetes Job, whose podFailurePolicy cannot count an exit code as success. The summary (exit_code in --json) keeps the run's own code (command line only)." env:"-"`
}

// FlushFlags are flush's settings, which mxflush config shows too.
type FlushFlags struct {
	MaxConns int    `help:"Concurrent SMTP sessions at most, over every site; each site starts with up to four and gains more while it delivers (see --conns-per-site)." default:"32" placeholder:"N"`
	Port     int    `help:"TCP port of every MX host." default:"25" placeholder:"P"`
	DNS      string `name:"dns" help:"DNS server for every query, HOST:PORT; HOST is an IP address or a name in /etc/hosts, never looked up in DNS (default: the first nameserver in /etc/resolv.conf)." placeholder:"HOST:PORT"`
	Helo     string `help:"Name to send in EHLO/HELO (default: this host's name)." placeholder:"NAME"`
	Quiet    bool   `help:"Print nothing when the run exits 0, and no log line for a delivered recipient: for cron, which mails whatever a job prints (and would mail it through this relayer, every run). A run that exits otherwise prints its summary and the lines of what was deferred or bounced."`
	DryRun   bool   `env:"-" help:"Resolve and print the plan; connect to no SMTP server and change nothing (command line only: no variable or config key may make a flush send nothing)."`
	JSON     bool   `name:"json" help:"Print the summary as one JSON object on stdout."`
	All      bool   `help:"Send every message now, even those whose next attempt is later."`

	RetryMin  time.Duration `help:"Wait before the first retry of a deferred message; doubles per attempt up to --retry-max, with ±10% jitter." default:"5m"`
	RetryMax  time.Duration `help:"Longest wait between retries; a next attempt further away than this (a clock that went back) is due now." default:"4h"`
	MaxAge    time.Duration `help:"Queue lifetime, counted from when the spool first saw a message (never expired on its first attempt): a message older than this gets one final try, then its recipients still deferred fail with 4.4.7 and are bounced (durations take s, m, h, d and w: 5d is 120h)." default:"5d"`
	WarnAfter time.Duration `help:"Send the sender one 'delayed' DSN when a message is still queued after this long; 0 never does." default:"0s"`
	NoBounce  bool          `help:"Record and report permanent failures, but send no DSN to the sender (for CI)."`

	ConnectTimeout time.Duration `help:"Timeout for each TCP connection attempt." default:"30s"`
	CommandTimeout time.Duration `help:"Timeout for the greeting and each command's reply (RFC 5321 §4.5.3.2)." default:"5m"`
	DataTimeout    time.Duration `help:"Timeout for each write of a message body." default:"3m"`
	FinalTimeout   time.Duration `help:"Timeout for the reply to the end of data." default:"10m"`
	DNSTimeout     time.Duration `name:"dns-timeout" help:"Timeout for each DNS query." default:"5s"`

	MaxRuntime time.Duration `help:"Stop opening new SMTP transactions after this long: those in flight finish, the rest stay queued untouched and still due, and the run exits 75; 0 never stops." default:"0s"`

	Bind          string `help:"Source address of every SMTP connection, as Postfix's smtp_bind_address: on a host with several addresses, the one receivers know (its PTR and SPF); only MX addresses of its family are used. A routes rule's bind=ADDR wins for its domains." placeholder:"ADDR"`
	InetProtocols string `help:"Address families to connect over, as Postfix's inet_protocols: all, ipv4 or ipv6." default:"all" enum:"all,ipv4,ipv6"`

	ConnsPerSite          int `help:"Sessions one destination site (the domains whose MX hosts are the same) may use at once. A site starts with up to four (one per 20 messages) and gains more while its sessions deliver and at least 20 messages are left per session; a 421 or a 4.7.x rate-limit reply takes one away. Old name: --conns-per-domain." aliases:"conns-per-domain" env:"MXFLUSH_CONNS_PER_SITE,MXFLUSH_CONNS_PER_DOMAIN" default:"16" placeholder:"N"`
	MaxMessagesPerSession int `help:"End a session with QUIT after N messages and open a new one for the rest (for receivers that limit messages per connection); 0: no limit." default:"0" placeholder:"N"`

	RouteFlags `embed:""`
	ObsFlags   `embed:""`
}

// Run performs the flush, writes the metrics file, prints the summary and
// maps it to an exit code. Every way out states the code the process exits
// with: the summary's last line and the JSON's exit_code (with --json, a
// run that ends before it has a summary, such as on a held lock, still
// prints one object with exit_code and error). With --quiet nothing is
// printed on stdout when that code is 0.
func (c *FlushCmd) Run(g *Globals) error {
	obs := c.ObsFlags.observe(g, c.Quiet)
	sum, err := c.flush(g, obs)
	if err == nil {
		if code := report.ExitCode(sum); code != report.ExOK {
			err = &exitError{code: code, err: errors.New(configReason(sum))}
		}
	}
	obs.summary = sum
	obs.finish(&err) // --metrics-file, whatever the exit; may turn 0 into 74
	return c.print(g, sum, err)
}

// print writes the summary of a run that ends with err (nil: exit 0) on
// stdout. A summary that cannot be written (stdout closed: a pipe whose
// reader is gone) changes nothing: the run's own code stands.
func (c *FlushCmd) print(g *Globals, sum *batch.Summary, err error) error {
	out := report.Outcome{Code: exitCodeOf(err), Shard: c.Shard}
	if out.Shard != "" {
		if sh, perr := spool.ParseShard(c.Shard); perr == nil {
			out.Shard = sh.String() // as the run took it: "1/4", not "01/4"
		}
	}
	if c.Quiet && out.Code == report.ExOK {
		return err
	}
	if err != nil && (sum == nil || out.Code != report.ExitCode(sum)) {
		out.Error = err.Error()
	}
	if c.MailOutcomesOK && sum != nil && out.Error == "" && (out.Code == report.ExTempFail || out.Code == report.ExUnavailable) {
		// The run worked: mail deferred or bounced is what a run is for.
		// A lock held, a local fault or a bad configuration keeps its code.
		zero := report.ExOK
		out.Exit, err = &zero, nil
	}
	switch {
	case c.JSON:
		report.JSON(g.stdout, sum, out)
	case sum != nil:
		report.Text(g.stdout, sum, out)
	}
	return err
}

// flush is one run up to its summary; an error is an exit before there is
// one (bad flags, the lock held, a spool problem that stops the run).
func (c *FlushCmd) flush(g *Globals, obs *observer) (*batch.Summary, error) {
	if c.MaxConns < 1 || c.Port < 1 || c.Port > 65535 {
		return nil, exitf(report.ExUsage, "--max-conns must be at least 1 and --port between 1 and 65535")
	}
	if c.MaxRuntime < 0 {
		return nil, exitf(report.ExUsage, "--max-runtime must not be negative")
	}
	if c.MaxMessagesPerSession < 0 {
		return nil, exitf(report.ExUsage, "--max-messages-per-session must be 0 (no limit) or more")
	}
	if c.ConnsPerSite < 1 {
		return nil, exitf(report.ExUsage, "--conns-per-site must be at least 1")
	}
	if c.RetryMin <= 0 || c.RetryMax < c.RetryMin || c.MaxAge <= 0 || c.WarnAfter < 0 {
		return nil, exitf(report.ExUsage, "--retry-min and --max-age must be positive, --retry-max at least --retry-min, --warn-after not negative")
	}
	server, err := dnsServer(c.DNS)
	if err != nil {
		return nil, exitf(report.ExConfig, "%v", err)
	}
	helo := c.Helo
	if helo == "" {
		if helo, err = os.Hostname(); err != nil || helo == "" {
			return nil, exitf(report.ExConfig, "cannot tell this host's name for EHLO; give --helo NAME")
		}
		if _, err := addr.Domain("postmaster@" + helo); err != nil {
			return nil, exitf(report.ExConfig, "this host's name %q is not a domain name to send in EHLO (RFC 5321 §4.1.1.1); give --helo NAME", helo)
		}
	} else if _, err := addr.Domain("postmaster@" + helo); err != nil {
		return nil, exitf(report.ExUsage, "--helo %q: want a domain name or an address literal such as [192.0.2.1] (RFC 5321 §4.1.1.1)", helo)
	}
	only, err := c.selection()
	if err != nil {
		return nil, err
	}
	var shard spool.Shard
	if c.Shard != "" {
		if shard, err = spool.ParseShard(c.Shard); err != nil {
			return nil, exitf(report.ExUsage, "--%v", err)
		}
		// A message of another shard is never seen by this run: naming
		// one is a mistake better said than a run that sends nothing.
		for _, id := range c.IDs {
			if !shard.Owns(id) {
				return nil, exitf(report.ExUsage, "message %s belongs to shard %d/%d, not to --shard %s", id, spool.ShardOf(id, shard.Count), shard.Count, shard)
			}
		}
	}
	family, err := deliver.ParseFamily(c.InetProtocols)
	if err != nil {
		return nil, exitf(report.ExUsage, "--inet-protocols: %v", err)
	}
	bind, err := bindAddr(c.Bind)
	if err != nil {
		return nil, exitf(report.ExConfig, "%v", err)
	}
	routes, err := c.table(&mx.Resolver{Server: server, Timeout: c.DNSTimeout}, c.Port, c.DNS != "", g.stderr)
	if err != nil {
		return nil, err
	}
	// Files above were read with the rights this run started with; the
	// spool is opened as its owner (see asSpoolOwner).
	if err := asSpoolOwner(g, "flushing the spool"); err != nil {
		return nil, err
	}
	sp, err := useSpool(g, true)
	if err != nil {
		return nil, err
	}
	sp = sp.WithShard(shard) // the zero Shard: the whole spool
	unlock, err := sp.Lock()
	if err != nil {
		var le *spool.LockedError
		var ce *spool.ShardCountError
		if errors.As(err, &le) || errors.As(err, &ce) {
			return nil, exitf(report.ExTempFail, "%v", err)
		}
		return nil, exitf(report.ExIOErr, "%v", err)
	}
	defer unlock()

	// SIGINT/SIGTERM, --max-runtime or a closed stderr stop opening
	// transactions; a second signal aborts the ones in flight.
	ctx, stopCtx, stopNow, release := stopContexts(c.MaxRuntime)
	defer release()
	obs.out.onClosed(func() { stopNow(errors.New("as stderr was closed")) })

	cfg := batch.Config{
		MaxConns:  c.MaxConns,
		Resolver:  routes, // next hop, TLS policy and credentials per domain
		DryRun:    c.DryRun,
		All:       c.All,
		RetryMin:  c.RetryMin,
		RetryMax:  c.RetryMax,
		MaxAge:    c.MaxAge,
		WarnAfter: c.WarnAfter,
		NoBounce:  c.NoBounce,
		Deliver: deliver.Options{
			Helo:            helo,
			Port:            c.Port,
			ConnectTimeout:  c.ConnectTimeout,
			GreetingTimeout: c.CommandTimeout,
			CommandTimeout:  c.CommandTimeout,
			DataTimeout:     c.DataTimeout,
			FinalTimeout:    c.FinalTimeout,
			Family:          family,
			Bind:            bind,
		},
		OnResult:              obs.out.result, // --log-format; clears the progress line first
		OnPlan:                obs.out.planned,
		ConnsPerSite:          c.ConnsPerSite,
		MaxMessagesPerSession: c.MaxMessagesPerSession,
		SlowRemovals:          moreProcs(runtime.GOMAXPROCS(0)),
		Stop:                  stopCtx,
		Only:                  only,
	}
	// A dry run changes nothing, so it leaves maildrop/ alone.
	var picked int
	var pickProbs []batch.Problem
	if !c.DryRun {
		picked, pickProbs = pickup(ctx, sp, g, helo)
	}
	defer tuneGC(countQueued(sp.Dir()))()
	stopProgress := obs.out.progress()
	sum, err := batch.Run(ctx, sp, cfg)
	stopProgress() // the progress line is gone before the summary
	if err != nil {
		return nil, exitf(report.ExIOErr, "%v", err)
	}
	sum.PickedUp = picked
	sum.Problems = append(pickProbs, sum.Problems...)
	return sum, nil
}

// dnsServer checks --dns, or reads the system's resolver configuration.
func dnsServer(flag string) (string, error) {
	if flag == "" {
		s, err := mx.ServerFromResolvConf("/etc/resolv.conf")
		if err != nil {
			return "", fmt.Errorf("no DNS server: %w (give --dns HOST:PORT)", err)
		}
		return s, nil
	}
	// A name is taken from /etc/hosts only: resolving it through the
	// system's resolver is what --dns exists to bypass.
	s, err := mx.ServerAddr(flag, "/etc/hosts")
	if err != nil {
		return "", fmt.Errorf("--dns %w", err)
	}
	return s, nil
}

// bindAddr checks --bind: an IP address of this host, which binding a UDP
// socket to it proves (no packet is sent). An address the host does not
// have would fail every connection with EADDRNOTAVAIL, and each would be
// deferred: a configuration error is better said once, now.
func bindAddr(flag string) (netip.Addr, error) {
	if flag == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(flag)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("--bind %q: want an IP address of this host", flag)
	}
	a = a.Unmap()
	pc, err := net.ListenPacket("udp", net.JoinHostPort(a.String(), "0"))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("--bind %s: not an address of this host: %w", a, err)
	}
	pc.Close()
	return a, nil
}

// pickup moves the messages other users left in maildrop/ into new/
// before the scan (see spool.Pickup), with the --max-message-size limit,
// and returns how many it moved and its problems as the summary reports
// them: a file moved to bad/ as an invalid one (exit 65), one that could
// not be read or moved as a local I/O failure (exit 74).
func pickup(ctx context.Context, sp *spool.Spool, g *Globals, helo string) (int, []batch.Problem) {
	n, probs, err := sp.Pickup(ctx, spool.PickupOptions{MaxSize: int64(g.MaxMessageSize), Host: helo, Now: g.now})
	var out []batch.Problem
	for _, p := range probs {
		var pe *spool.ParseError
		out = append(out, batch.Problem{ID: spool.DirMaildrop + "/" + p.ID, Reason: p.Reason, MovedTo: p.MovedTo, IOError: !errors.As(p.Err, &pe)})
	}
	if err != nil {
		out = append(out, batch.Problem{ID: spool.DirMaildrop, Reason: err.Error(), IOError: true})
	}
	return n, out
}

// selection is the run's batch.Selection from flush ID... and --domain D,
// nil for a whole run. A domain is compared in A-label form, any case.
func (c *FlushCmd) selection() (*batch.Selection, error) {
	if len(c.IDs) == 0 && len(c.Domains) == 0 {
		return nil, nil
	}
	sel := &batch.Selection{IDs: c.IDs}
	for _, id := range c.IDs {
		if err := spool.CheckID(id); err != nil {
			return nil, exitf(report.ExUsage, "%v", err)
		}
	}
	for _, d := range c.Domains {
		a, err := addr.Domain("postmaster@" + strings.TrimSuffix(d, "."))
		if err != nil {
			return nil, exitf(report.ExUsage, "--domain %q: not a domain name: %v", d, err)
		}
		sel.Domains = append(sel.Domains, a)
	}
	return sel, nil
}
