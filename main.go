// Command mxflush relays queued outgoing mail in batches: one run scans a
// maildir-style spool, groups every waiting message by recipient domain,
// resolves each domain's MX and delivers over SMTP with a bounded number of
// concurrent sessions, one session per domain. See README.md.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/mxflush/mxflush/report"
)

// Globals are the flags every command takes.
type Globals struct {
	// Spool is required, but checked after parsing (runGlobals), so that
	// sendmail --help and a misplaced --spool get their own answers.
	Spool string `help:"Spool directory (new/ cur/ failed/ hold/ bad/ tmp/ maildrop/ inside; mxflush spool init makes it); required." env:"MXFLUSH_SPOOL" placeholder:"DIR"`

	stdin          io.Reader
	stdout, stderr io.Writer
	now            func() time.Time // the clock of queue listings and admin commands; tests fix it

	// MaxMessageSize bounds a message taken into the spool: by enqueue and
	// sendmail as it is read, and by flush's pickup of maildrop/ (as
	// Postfix's message_size_limit).
	MaxMessageSize byteSize `help:"Largest message enqueue, sendmail and the pickup of maildrop/ take into the spool, in octets or with K, M or G; 0 means no limit." default:"10MiB" placeholder:"SIZE"`

	// Submission settings (enqueue, sendmail): see submit.go.
	Origin       string    `help:"Domain given to a sender or recipient written without one (root becomes root@DOMAIN) and to added Message-ID fields. Default: this host's fully qualified name, from the system's host name and /etc/hosts (no DNS query)." placeholder:"DOMAIN"`
	Aliases      string    `help:"Aliases file (name: address, address) applied to local recipients at submission; a missing default file is fine, an empty value reads none." default:"/etc/mxflush/aliases" placeholder:"FILE"`
	AdminAddress string    `help:"Catch-all for local recipients with no alias (a name without a domain, or NAME@ORIGIN), as nullmailer's adminaddr." placeholder:"ADDR"`
	MinFree      *byteSize `help:"Free space to keep on the spool's file system: a submission is refused (exit 75) when less is free. Default: twice --max-message-size, 20MiB when that is 0." placeholder:"SIZE"`

	Config string        `help:"JSON config file of flag values (see README); a missing default file is fine." env:"MXFLUSH_CONFIG" default:"/etc/mxflush/config.json" placeholder:"FILE"`
	file   *fileConfig   // the config file read, for mxflush config
	kctx   *kong.Context // the parse, for mxflush config
	// asSendmail: the binary was invoked as sendmail or mailq, whose
	// callers name no spool: defaultSpool when no setting names one.
	asSendmail bool
	setgid     *setgidGroup // the maildrop group of a setgid binary, held back; nil when not setgid
}

// CLI is the command line of mxflush.
type CLI struct {
	Globals

	Flush   FlushCmd   `cmd:"" help:"Deliver every due message in the spool, grouped by recipient domain."`
	Enqueue EnqueueCmd `cmd:"" help:"Read one RFC 5322 message on stdin and put it in the spool."`
	Queue   QueueCmd   `cmd:"" help:"List the messages waiting in the spool, like mailq."`
	Show    ShowCmd    `cmd:"" help:"Show one message: envelope, state, each recipient's last reply, headers."`
	Retry   RetryCmd   `cmd:"" help:"Make messages due now (clear the retry backoff)."`
	Hold    HoldCmd    `cmd:"" help:"Move messages to hold/: never sent until released."`
	Release ReleaseCmd `cmd:"" help:"Move held messages back to the queue."`
	Delete  DeleteCmd  `cmd:"" help:"Remove messages from the spool, without a bounce."`
	Expire  ExpireCmd  `cmd:"" help:"Fail the pending recipients of messages now (4.4.7) and bounce them to the sender, as postsuper -e."`
	Requeue RequeueCmd `cmd:"" help:"Put failed messages back in the queue, their failed recipients pending again."`
	Config  ConfigCmd  `cmd:"" help:"Print flush's effective configuration: each flag's value and where it came from."`

	SpoolAdmin SpoolCmd `cmd:"" name:"spool" help:"Manage the spool itself: spool init creates or repairs it."`

	Sendmail SendmailCmd `cmd:"" passthrough:"" help:"The sendmail(8) interface: queue the message on stdin (-t -i -f ADDR -F NAME), -bs speaks SMTP on stdin and stdout, -bp lists, -q flushes. Also run when invoked as sendmail or mailq."`

	// Command line only: kong.DefaultEnvars would bind MXFLUSH_VERSION, and
	// any value of it turned every run, a flush included, into a printed
	// version and exit 0 with nothing sent.
	Version kong.VersionFlag `env:"-" help:"Print the version and exit."`
}

// exitError carries an exit code out of a command's Run.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitf(code int, format string, args ...any) error {
	return &exitError{code: code, err: fmt.Errorf(format, args...)}
}

// kongExit is panicked by kong's exit hook (after --help or --version) and
// recovered in run, so that run returns instead of ending the process.
type kongExit int

// run parses args, runs the command and returns the process exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) (code int) {
	return runGlobals(args, Globals{stdin: stdin, stdout: stdout, stderr: stderr, now: time.Now})
}

// runGlobals is run with the streams and clock given in g.
func runGlobals(args []string, g Globals) (code int) {
	stdout, stderr := g.stdout, g.stderr
	// A flush --json that fails before its command runs (a flag value
	// kong refuses, a bad config file) still prints one JSON object, as
	// every later exit of flush does (see FlushCmd.Run).
	stderr = earlyJSON(args, stdout, stderr)
	defer func() {
		if w, ok := stderr.(*jsonOnError); ok {
			w.finish(code)
		}
	}()
	cli := CLI{Globals: g}
	cli.stderr = stderr
	fc, err := loadConfig(configPath(args, os.Getenv))
	if err != nil {
		return exitCode(stderr, err)
	}
	fileRes, err := fc.resolver()
	if err != nil {
		fmt.Fprintf(stderr, "mxflush: config file %s: %v\n", fc.path, err)
		return report.ExConfig
	}
	cli.file = fc
	parser, err := kong.New(&cli,
		kong.DefaultEnvars("MXFLUSH"),
		kong.Resolvers(fileRes),
		durationMapper(),
		kong.Name("mxflush"),
		kong.Description("Relay queued outgoing mail in batches, one SMTP session per recipient domain."),
		kong.Writers(stdout, stderr),
		kong.ValueFormatter(helpValue),
		kong.Exit(func(c int) { panic(kongExit(c)) }),
		kong.Vars{"version": "mxflush " + version},
		kong.UsageOnError(),
	)
	if err != nil {
		fmt.Fprintf(stderr, "mxflush: %v\n", err)
		return report.ExSoftware
	}
	defer func() {
		if r := recover(); r != nil {
			c, ok := r.(kongExit)
			if !ok {
				panic(r)
			}
			code = int(c)
			if code != 0 {
				code = report.ExUsage
			}
		}
	}()
	if err := fc.check(parser.Model); err != nil {
		return exitCode(stderr, err)
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "mxflush: %v\n", err)
		return report.ExUsage
	}
	if strings.HasPrefix(kctx.Command(), "sendmail") {
		// sendmail's own syntax: --help, and mxflush's flags given after
		// the word sendmail, are answered before the spool is needed.
		if code, done := sendmailEarly(cli.Sendmail.Args, stdout, stderr); done {
			return code
		}
	}
	if cli.Spool == "" && cli.asSendmail {
		cli.Spool = defaultSpool
	}
	if strings.TrimSpace(cli.Spool) == "" {
		// An empty --spool or MXFLUSH_SPOOL= would make the current
		// directory the spool, and a Maildir there would be delivered.
		fmt.Fprintln(stderr, "mxflush: no spool: give --spool DIR or MXFLUSH_SPOOL")
		return report.ExUsage
	}
	if w, ok := stderr.(*jsonOnError); ok {
		// From here FlushCmd.Run prints its own JSON, early exits too.
		w.done = true
	}
	cli.kctx = kctx
	cli.Globals.defaults()
	err = kctx.Run(&cli.Globals)
	if err == nil {
		return report.ExOK
	}
	return exitCode(stderr, err)
}

// exitCode prints err on stderr and returns its exit code: an *exitError's,
// else 70 (EX_SOFTWARE).
func exitCode(stderr io.Writer, err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintf(stderr, "mxflush: %s\n", report.Escape(ee.err.Error()))
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "mxflush: %s\n", report.Escape(err.Error()))
	return report.ExSoftware
}

const version = "0.1.0"

func main() {
	sg, err := dropSetgid() // before anything is read: see deposit
	if err != nil {
		fmt.Fprintf(os.Stderr, "mxflush: %v\n", err)
		os.Exit(71) // EX_OSERR
	}
	// A write to a closed stdout or stderr (flush | tee log, then Ctrl-C)
	// returns EPIPE instead of killing the process with SIGPIPE: a flush
	// then stops as for SIGTERM and ends with its summary's code, its
	// journal emptied, instead of dying halfway with exit 141.
	signal.Ignore(syscall.SIGPIPE)
	args, asSendmail := sendmailArgs(os.Args[0], os.Args[1:])
	os.Exit(runGlobals(args, Globals{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, now: time.Now, setgid: sg, asSendmail: asSendmail}))
}
