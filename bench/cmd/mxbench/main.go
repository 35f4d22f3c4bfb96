// Command mxbench measures mxflush side by side with Postfix's smtp-source
// against one smtp-sink on loopback, and over a simulated wide-area network
// (a latency proxy in front of the sink). It prints markdown tables on
// stdout and progress on stderr. Run it through bench/run, which installs
// smtp-sink and smtp-source when they are missing.
//
// Everything stays on 127.0.0.0/8: the DNS server (internal/testnet) answers
// for *.test domains with 127.0.0.x addresses, smtp-sink listens on
// 127.0.0.2 and the latency proxy on 127.0.0.3.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is the command line.
type config struct {
	ns, ks   []int // loopback: message counts and domain counts
	size     int   // body octets per message (smtp-source -l)
	conc     int   // sessions at once: mxflush --max-conns, smtp-source -s
	runs     int   // runs per contender; the tables show medians
	sections map[string]bool

	wanDelay time.Duration // one-way delay of the proxy
	wanN     int           // messages per WAN run
	wanKs    []int         // domain counts of the WAN runs
	pipeN    int           // messages per pipelining run

	postfixN  int   // messages per loopback run of the postfix section (WAN: wanN)
	postfixKs []int // domain counts of the postfix section
	sites     int   // sites of the sites sections
	sitesN    int   // messages per run of the sites section
	sitesK    int   // domains of the sites section
	sitesWanN int   // messages per run of the sites-wan section
	sitesWanK int   // domains of the sites-wan section

	only                               string // run only contenders whose name contains this
	tmpfs                              string // a tmpfs directory for the spool-on-tmpfs rows; "" for none
	memSpool                           string // the spool of those rows, inside tmpfs; "" for no such rows
	shardsN                            int    // messages per run of the shards section
	shards                             int    // shards of its sharded row
	before                             string // an mxflush binary from before sites, for the sites sections' per-domain rows; "" for none
	dir, mxflush, sinkPath, sourcePath string
	keep                               bool
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "mxbench: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintf(os.Stderr, "mxbench: %v\n", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("mxbench", flag.ContinueOnError)
	var c config
	ns := fs.String("n", "1000,10000,100000", "message counts of the loopback table, comma-separated")
	ks := fs.String("k", "1,20,500", "domain counts of the loopback table")
	fs.IntVar(&c.size, "size", 2048, "body octets per message (smtp-source -l)")
	fs.IntVar(&c.conc, "c", 8, "sessions at once: mxflush --max-conns and --conns-per-site, smtp-source -s")
	fs.IntVar(&c.runs, "runs", 3, "runs per contender and row; the tables show medians")
	sections := fs.String("sections", "loopback,wan,pipelining,postfix,sites,sites-wan,shards", "which tables to measure")
	fs.DurationVar(&c.wanDelay, "wan-delay", 10*time.Millisecond, "one-way delay of the latency proxy")
	fs.IntVar(&c.wanN, "wan-n", 2000, "messages per WAN run")
	wanKs := fs.String("wan-k", "1,20", "domain counts of the WAN table")
	fs.IntVar(&c.pipeN, "pipe-n", 300, "messages per pipelining run (one session)")
	fs.IntVar(&c.postfixN, "postfix-n", 10000, "messages per loopback run of the postfix section (its WAN runs: -wan-n)")
	postfixKs := fs.String("postfix-k", "1,20", "domain counts of the postfix section")
	fs.IntVar(&c.sites, "sites", 5, "sites (receivers) of the sites sections")
	fs.IntVar(&c.sitesN, "sites-n", 10000, "messages per run of the sites section")
	fs.IntVar(&c.sitesK, "sites-k", 500, "domains of the sites section")
	fs.IntVar(&c.sitesWanN, "sites-wan-n", 1000, "messages per run of the sites-wan section")
	fs.IntVar(&c.sitesWanK, "sites-wan-k", 500, "domains of the sites-wan section")
	quick := fs.Bool("quick", false, "a subset that runs in a few minutes: -n 1000,10000 -k 1,20 -wan-n 400 -pipe-n 100 -postfix-n 1000 -sites-n 1000 -sites-k 100 -sites-wan-n 200 -sites-wan-k 100 -shards-n 2000")
	fs.StringVar(&c.dir, "dir", "", "work directory (default: a new temporary directory, removed at the end)")
	fs.BoolVar(&c.keep, "keep", false, "keep the work directory")
	fs.StringVar(&c.only, "only", "", "measure only the contenders whose name contains this text (for profiling; ratios need the limit row)")
	fs.StringVar(&c.tmpfs, "tmpfs", "/dev/shm", "a directory on tmpfs for extra loopback rows with the spool in memory (empty, or not a tmpfs: no such rows)")
	fs.StringVar(&c.mxflush, "mxflush", "", "mxflush binary (default: go build from the module root)")
	fs.StringVar(&c.before, "before", "", "an mxflush binary built from before destination sites (sessions per domain), for a comparison row in the sites sections")
	fs.IntVar(&c.shardsN, "shards-n", 10000, "messages per run of the shards section (20 domains over the WAN)")
	fs.IntVar(&c.shards, "shards", 4, "shards of the shards section's sharded row")
	fs.StringVar(&c.sinkPath, "smtp-sink", "smtp-sink", "smtp-sink binary")
	fs.StringVar(&c.sourcePath, "smtp-source", "smtp-source", "smtp-source binary")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if *quick {
		*ns, *ks, c.wanN, c.pipeN = "1000,10000", "1,20", 400, 100
		c.postfixN, c.sitesN, c.sitesK, c.sitesWanN, c.sitesWanK, c.shardsN = 1000, 1000, 100, 200, 100, 2000
	}
	var err error
	if c.ns, err = ints(*ns); err != nil {
		return c, fmt.Errorf("-n: %w", err)
	}
	if c.ks, err = ints(*ks); err != nil {
		return c, fmt.Errorf("-k: %w", err)
	}
	if c.wanKs, err = ints(*wanKs); err != nil {
		return c, fmt.Errorf("-wan-k: %w", err)
	}
	if c.postfixKs, err = ints(*postfixKs); err != nil {
		return c, fmt.Errorf("-postfix-k: %w", err)
	}
	c.sections = map[string]bool{}
	for _, s := range strings.Split(*sections, ",") {
		switch s = strings.TrimSpace(s); s {
		case "loopback", "wan", "pipelining", "postfix", "sites", "sites-wan", "shards":
			c.sections[s] = true
		default:
			return c, fmt.Errorf("-sections: unknown %q (loopback, wan, pipelining, postfix, sites, sites-wan, shards)", s)
		}
	}
	if c.size < 1 || c.conc < 1 || c.runs < 1 || c.wanN < 1 || c.pipeN < 1 || c.postfixN < 1 || c.sitesN < 1 || c.sitesWanN < 1 {
		return c, fmt.Errorf("-size, -c, -runs, -wan-n, -pipe-n, -postfix-n, -sites-n and -sites-wan-n must be at least 1")
	}
	// The sites sections' domains are d000.test ... on 127.0.N.1 ...: at
	// most 254 receivers a network.
	if c.sites < 1 || c.sites > 254 || c.sitesK < c.sites || c.sitesWanK < c.sites {
		return c, fmt.Errorf("-sites must be 1 to 254, and -sites-k and -sites-wan-k at least -sites")
	}
	for _, k := range c.postfixKs {
		if k > 254 {
			return c, fmt.Errorf("-postfix-k: %d domains, at most 254 (one smtp-sink each)", k)
		}
	}
	return c, nil
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func run(ctx context.Context, cfg config) error {
	for _, p := range []*string{&cfg.sinkPath, &cfg.sourcePath} {
		path, err := exec.LookPath(*p)
		if err != nil {
			return fmt.Errorf("%s not found (bench/run installs Debian's postfix package): %w", *p, err)
		}
		*p = path
	}
	if cfg.dir == "" {
		d, err := os.MkdirTemp("", "mxbench-")
		if err != nil {
			return err
		}
		cfg.dir = d
		if !cfg.keep {
			defer os.RemoveAll(d)
		}
	}
	if cfg.tmpfs != "" && isTmpfs(cfg.tmpfs) {
		d, err := os.MkdirTemp(cfg.tmpfs, "mxbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		cfg.memSpool = filepath.Join(d, "spool")
	}
	if cfg.mxflush == "" {
		cfg.mxflush = filepath.Join(cfg.dir, "mxflush")
		logf("building mxflush into %s", cfg.mxflush)
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", cfg.mxflush, ".").CombinedOutput(); err != nil {
			return fmt.Errorf("go build (run from the module root): %v\n%s", err, out)
		}
	}
	w, err := startWorld(cfg)
	if err != nil {
		return err
	}
	defer w.close()

	fmt.Printf("Machine: %s, %d cores, %s, Linux %s; %s; load average %s at the start. Messages of %d octets of body; %d sessions at once; medians of %d runs.\n\n",
		cpuModel(), runtime.NumCPU(), runtime.Version(), kernel(), time.Now().UTC().Format("2006-01-02"), loadavg(), cfg.size, cfg.conc, cfg.runs)
	defer func() { fmt.Printf("Load average at the end: %s.\n", loadavg()) }()
	if cfg.sections["loopback"] {
		if err := w.loopback(ctx); err != nil {
			return err
		}
	}
	if cfg.sections["wan"] {
		if err := w.wan(ctx); err != nil {
			return err
		}
	}
	if cfg.sections["pipelining"] {
		if err := w.pipelining(ctx); err != nil {
			return err
		}
	}
	if cfg.sections["postfix"] {
		if err := w.postfixSection(ctx); err != nil {
			return err
		}
	}
	if cfg.sections["sites"] {
		if err := w.sitesSection(ctx); err != nil {
			return err
		}
	}
	if cfg.sections["sites-wan"] {
		if err := w.sitesWANSection(ctx); err != nil {
			return err
		}
	}
	if cfg.sections["shards"] {
		if err := w.shardsSection(ctx); err != nil {
			return err
		}
	}
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "mxbench: "+format+"\n", args...)
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// loadavg is the first three fields of /proc/loadavg: other work on the
// machine shows here and makes the figures less trustworthy.
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}
