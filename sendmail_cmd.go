package main

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"

	"github.com/mxflush/mxflush/addr"
	"github.com/mxflush/mxflush/report"
)

// defaultSpool is the spool of the sendmail interface when neither --spool
// nor MXFLUSH_SPOOL names one: programs that call sendmail pass neither.
const defaultSpool = "/var/spool/mxflush"

// SendmailCmd is `mxflush sendmail ...`, also run when the binary is
// invoked as "sendmail" (a symlink): the sendmail(8) command line that
// cron, git send-email and PHP's mail() use. Everything after "sendmail"
// is sendmail's options, parsed by parseSendmail.
type SendmailCmd struct {
	Args []string `arg:"" optional:"" passthrough:"" help:"sendmail options and recipients: -t -i -oi -f ADDR -F NAME -bm -bs -bp -q --."`
}

// Run queues the message on stdin (-bm), serves an SMTP dialog on stdin
// and stdout (-bs, sendmail_bs.go), lists the queue (-bp) or flushes it
// once (-q). A queued message goes through the submission path
// (submit.go): it gets a Date, a Message-ID and a From field when it has
// none (RFC 5322 §3.6); its sender defaults to the invoking user; local
// names go through the aliases and get the origin. On success it prints
// nothing, as sendmail does. Exit codes as enqueue: 64 bad option or no
// recipient, 65 bad address or message, 73/74 spool errors, 75 too little
// free space, 78 an aliases problem.
func (c *SendmailCmd) Run(g *Globals) error {
	o, err := parseSendmail(c.Args)
	if err != nil {
		return exitf(report.ExUsage, "%v", err)
	}
	switch o.mode {
	case modeList:
		return (&QueueCmd{}).Run(g)
	case modeFlush:
		if code := runGlobals([]string{"--spool", g.Spool, "flush", "--helo", sendmailDomain()}, *g); code != 0 {
			return &exitError{code: code, err: fmt.Errorf("")}
		}
		return nil
	}
	sub, err := newSubmitter(g)
	if err != nil {
		return err
	}
	if o.mode == modeSMTP {
		return serveSMTP(g, sub)
	}
	_, err = sub.submit(submission{from: o.from, rcpts: o.rcpts, headers: o.headers, fullName: o.fullName, complete: true}, g.stdin)
	return err
}

// sendmailDomain is the EHLO name of sendmail -q's flush: MXFLUSH_HELO,
// else this host's name, else "localhost".
func sendmailDomain() string {
	for _, d := range []string{os.Getenv("MXFLUSH_HELO"), hostname()} {
		if d == "" {
			continue
		}
		if _, err := addr.Domain("postmaster@" + d); err == nil {
			return d
		}
	}
	return "localhost"
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

// localUser is the invoking user's login name, for a default sender.
func localUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "nobody"
}

// sendmailArgs turns the arguments of a binary invoked as "sendmail" into
// mxflush's: the sendmail command; asSendmail says it was so invoked, and
// the spool is then defaultSpool when neither MXFLUSH_SPOOL nor the config
// file names one (see runGlobals: a --spool added here would beat the
// config file's spool key).
func sendmailArgs(argv0 string, args []string) (out []string, asSendmail bool) {
	name := filepath.Base(argv0)
	if name != "sendmail" && name != "mailq" {
		return args, false
	}
	if name == "mailq" {
		return []string{"sendmail", "-bp"}, true
	}
	return append([]string{"sendmail"}, args...), true
}
