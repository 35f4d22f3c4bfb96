package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/mxflush/mxflush/batch"
	"github.com/mxflush/mxflush/deliver"
	"github.com/mxflush/mxflush/mx"
	"github.com/mxflush/mxflush/report"
	"github.com/mxflush/mxflush/spool"
)

// FlushCmd is `mxflush flush`: one batch run over the spool.
type FlushCmd struct {
	MaxConns int    `help:"Concurrent SMTP sessions at most; each domain gets one session." default:"8" placeholder:"N"`
	Port     int    `help:"TCP port of every MX host." default:"25" placeholder:"P"`
	DNS      string `name:"dns" help:"DNS server for every query, HOST:PORT (default: the first nameserver in /etc/resolv.conf)." placeholder:"HOST:PORT"`
	Helo     string `help:"Name to send in EHLO/HELO (default: this host's name)." placeholder:"NAME"`
	DryRun   bool   `help:"Resolve and print the plan; connect to no SMTP server and change nothing."`
	JSON     bool   `name:"json" help:"Print the summary as one JSON object on stdout."`
	All      bool   `help:"Send every message now, even those whose next attempt is later."`

	ConnectTimeout time.Duration `help:"Timeout for each TCP connection attempt." default:"30s"`
	CommandTimeout time.Duration `help:"Timeout for the greeting and each command's reply (RFC 5321 §4.5.3.2)." default:"5m"`
	DataTimeout    time.Duration `help:"Timeout for each write of a message body." default:"3m"`
	FinalTimeout   time.Duration `help:"Timeout for the reply to the end of data." default:"10m"`
	DNSTimeout     time.Duration `name:"dns-timeout" help:"Timeout for each DNS query." default:"5s"`
}

// Run performs the flush and maps its summary to an exit code.
func (c *FlushCmd) Run(g *Globals) error {
	if c.MaxConns < 1 || c.Port < 1 || c.Port > 65535 {
		return exitf(report.ExUsage, "--max-conns must be at least 1 and --port between 1 and 65535")
	}
	server, err := dnsServer(c.DNS)
	if err != nil {
		return exitf(report.ExConfig, "%v", err)
	}
	helo := c.Helo
	if helo == "" {
		if helo, err = os.Hostname(); err != nil || helo == "" {
			return exitf(report.ExConfig, "cannot tell this host's name for EHLO; give --helo NAME")
		}
	}
	sp, err := spool.Open(g.Spool)
	if err != nil {
		return exitf(report.ExCantCreat, "%v", err)
	}
	unlock, err := sp.Lock()
	if err != nil {
		var le *spool.LockedError
		if errors.As(err, &le) {
			return exitf(report.ExTempFail, "%v", err)
		}
		return exitf(report.ExIOErr, "%v", err)
	}
	defer unlock()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var logMu sync.Mutex
	pid := os.Getpid()
	cfg := batch.Config{
		MaxConns: c.MaxConns,
		Resolver: &mx.Resolver{Server: server, Timeout: c.DNSTimeout},
		DryRun:   c.DryRun,
		All:      c.All,
		Deliver: deliver.Options{
			Helo:            helo,
			Port:            c.Port,
			ConnectTimeout:  c.ConnectTimeout,
			GreetingTimeout: c.CommandTimeout,
			CommandTimeout:  c.CommandTimeout,
			DataTimeout:     c.DataTimeout,
			FinalTimeout:    c.FinalTimeout,
		},
		OnResult: func(e batch.Event) {
			logMu.Lock()
			defer logMu.Unlock()
			fmt.Fprintln(g.stderr, report.LogLine(pid, e))
		},
	}
	sum, err := batch.Run(ctx, sp, cfg)
	if err != nil {
		return exitf(report.ExIOErr, "%v", err)
	}
	if c.JSON {
		err = report.JSON(g.stdout, sum)
	} else {
		err = report.Text(g.stdout, sum)
	}
	if err != nil {
		return exitf(report.ExIOErr, "writing the summary: %v", err)
	}
	if code := report.ExitCode(sum); code != report.ExOK {
		return &exitError{code: code, err: errors.New("")}
	}
	return nil
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
	host, port, err := net.SplitHostPort(flag)
	if err != nil || host == "" || port == "" {
		return "", fmt.Errorf("--dns %q: want HOST:PORT, for example 127.0.0.1:53", flag)
	}
	return flag, nil
}
