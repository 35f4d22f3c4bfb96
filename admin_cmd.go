package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/mxflush/mxflush/addr"
	"github.com/mxflush/mxflush/batch"
	"github.com/mxflush/mxflush/deliver"
	"github.com/mxflush/mxflush/report"
	"github.com/mxflush/mxflush/spool"
)

// exNoInput is sysexits' EX_NOINPUT: a message ID named on the command line
// is in no queue.
const exNoInput = 66

// The selection flags of the queue commands (--domain, --all, --failed,
// --held) and their --json come from the command line only (env:"-": no
// MXFLUSH_ variable, no config key), so that a setting meant for flush,
// such as MXFLUSH_ALL, never makes `release` or `delete` act on a whole
// queue, nor MXFLUSH_JSON a script's `mxflush queue` print JSON.

// RetryCmd is `mxflush retry`: make messages due now.
type RetryCmd struct {
	IDs    []string `arg:"" optional:"" name:"id" help:"Message IDs (spool file names)."`
	Stdin  bool     `help:"Read message IDs from stdin, one a line (as postsuper's - )." env:"-"`
	Domain string   `help:"Every queued message with a pending recipient in this domain." placeholder:"D" env:"-"`
	All    bool     `help:"Every message in new/ and cur/." env:"-"`
	JSON   bool     `name:"json" help:"Print one JSON object per message, one per line." env:"-"`
}

// HoldCmd is `mxflush hold`: move messages to hold/.
type HoldCmd struct {
	IDs    []string `arg:"" optional:"" name:"id" help:"Message IDs (spool file names)."`
	Stdin  bool     `help:"Read message IDs from stdin, one a line (as postsuper's - )." env:"-"`
	Domain string   `help:"Every queued message with a pending recipient in this domain." placeholder:"D" env:"-"`
	All    bool     `help:"Every message in new/ and cur/ (as postsuper -h ALL)." env:"-"`
	JSON   bool     `name:"json" help:"Print one JSON object per message, one per line." env:"-"`
}

// ReleaseCmd is `mxflush release`: move held messages back to the queue.
type ReleaseCmd struct {
	IDs    []string `arg:"" optional:"" name:"id" help:"Message IDs (spool file names)."`
	Stdin  bool     `help:"Read message IDs from stdin, one a line (as postsuper's - )." env:"-"`
	Domain string   `help:"Every held message with a pending recipient in this domain." placeholder:"D" env:"-"`
	All    bool     `help:"Every message in hold/ (as postsuper -H ALL)." env:"-"`
	JSON   bool     `name:"json" help:"Print one JSON object per message, one per line." env:"-"`
}

// DeleteCmd is `mxflush delete`: remove messages.
type DeleteCmd struct {
	IDs    []string `arg:"" optional:"" name:"id" help:"Message IDs (spool file names)."`
	Stdin  bool     `help:"Read message IDs from stdin, one a line (as postsuper -d -)." env:"-"`
	Domain string   `help:"Every message in new/, cur/ and hold/ with a pending recipient in this domain (with --failed: every message in failed/ with a failed recipient in it)." placeholder:"D" env:"-"`
	All    bool     `help:"Every message in new/, cur/ and hold/ (as postsuper -d ALL); with --failed, failed/ too." env:"-"`
	Failed bool     `help:"Every message in failed/ (with --domain: those with a failed recipient in D)." env:"-"`
	JSON   bool     `name:"json" help:"Print one JSON object per message, one per line." env:"-"`
}

// RequeueCmd is `mxflush requeue`: failed messages back to new/.
type RequeueCmd struct {
	IDs    []string `arg:"" optional:"" name:"id" help:"Message IDs in failed/."`
	Stdin  bool     `help:"Read message IDs from stdin, one a line." env:"-"`
	Failed bool     `help:"Every message in failed/." env:"-"`
	All    bool     `help:"Every message in failed/ (the same as --failed)." env:"-"`
	JSON   bool     `name:"json" help:"Print one JSON object per message, one per line." env:"-"`
}

// ExpireCmd is `mxflush expire`: fail pending recipients now and bounce.
type ExpireCmd struct {
	IDs    []string `arg:"" optional:"" name:"id" help:"Message IDs (spool file names)."`
	Stdin  bool     `help:"Read message IDs from stdin, one a line." env:"-"`
	Domain string   `help:"The pending recipients in this domain, in every message of new/ and cur/ (the message's other recipients stay pending)." placeholder:"D" env:"-"`
	JSON   bool     `name:"json" help:"Print one JSON object per message, one per line." env:"-"`
}

var waiting = []string{spool.QueueNew, spool.QueueCur}

// Run fails the selected messages' pending recipients (those in --domain
// D only, with it) with 4.4.7, as postsuper -e: one DSN each to the sender,
// queued for the next flush, and the message moves to failed/ (or stays in
// cur/ with its other recipients).
func (c *ExpireCmd) Run(g *Globals) error {
	var domains []string
	if c.Domain != "" {
		d, err := addr.Domain("postmaster@" + strings.TrimSuffix(c.Domain, "."))
		if err != nil {
			return exitf(report.ExUsage, "--domain %q: not a domain name: %v", c.Domain, err)
		}
		domains = []string{d}
	}
	helo, _ := os.Hostname()
	if _, err := addr.Domain("postmaster@" + helo); err != nil {
		helo = g.Origin // the DSN's Reporting-MTA (RFC 3464 §2.2.2) needs a name
	}
	cfg := batch.Config{Deliver: deliver.Options{Helo: helo}, Now: g.now}
	sel := selection{ids: c.IDs, stdin: c.Stdin, domain: c.Domain, queues: waiting, allowed: waiting, filterName: "--domain"}
	return sel.apply(g, "expire", c.JSON, func(sp *spool.Spool, m *spool.Message) error {
		_, err := batch.Expire(sp, m, domains, cfg)
		return err
	})
}

// Run clears the next attempt of each selected message.
func (c *RetryCmd) Run(g *Globals) error {
	sel := selection{ids: c.IDs, stdin: c.Stdin, domain: c.Domain, all: c.All, queues: waiting,
		allowed: []string{spool.QueueNew, spool.QueueCur, spool.QueueHold}, filterName: "--domain or --all"}
	return sel.apply(g, "retry", c.JSON, func(sp *spool.Spool, m *spool.Message) error {
		_, err := sp.Retry(m)
		return err
	})
}

// Run moves each selected message to hold/.
func (c *HoldCmd) Run(g *Globals) error {
	sel := selection{ids: c.IDs, stdin: c.Stdin, domain: c.Domain, all: c.All, queues: waiting, allowed: waiting, filterName: "--domain or --all"}
	return sel.apply(g, "hold", c.JSON, (*spool.Spool).Hold)
}

// Run moves each selected held message back to new/ or cur/.
func (c *ReleaseCmd) Run(g *Globals) error {
	held := []string{spool.QueueHold}
	sel := selection{ids: c.IDs, stdin: c.Stdin, domain: c.Domain, all: c.All, queues: held, allowed: held, filterName: "--domain or --all"}
	return sel.apply(g, "release", c.JSON, (*spool.Spool).Release)
}

// Run removes each selected message.
func (c *DeleteCmd) Run(g *Globals) error {
	var queues []string
	if c.All || !c.Failed {
		queues = []string{spool.QueueNew, spool.QueueCur, spool.QueueHold}
	}
	if c.Failed {
		queues = append(queues, spool.QueueFailed)
	}
	sel := selection{ids: c.IDs, stdin: c.Stdin, domain: c.Domain, all: c.All || c.Failed, queues: queues,
		allowed: []string{spool.QueueNew, spool.QueueCur, spool.QueueHold, spool.QueueFailed}, filterName: "--domain, --all or --failed"}
	return sel.apply(g, "delete", c.JSON, (*spool.Spool).Delete)
}

// Run puts each selected failed message back in new/.
func (c *RequeueCmd) Run(g *Globals) error {
	failed := []string{spool.QueueFailed}
	sel := selection{ids: c.IDs, stdin: c.Stdin, all: c.Failed || c.All, queues: failed, allowed: failed, filterName: "--failed or --all"}
	return sel.apply(g, "requeue", c.JSON, func(sp *spool.Spool, m *spool.Message) error {
		return sp.Requeue(m, g.now())
	})
}

// selection names the messages an admin command acts on: IDs, or every
// message of queues (all), or those of queues with a recipient in domain.
type selection struct {
	ids        []string
	stdin      bool // more IDs on stdin, one a line
	domain     string
	all        bool
	queues     []string // searched by a filter
	allowed    []string // queues an ID may be in
	filterName string   // for the usage error
}

// actionResult is the JSON shape of one message acted on; field names are
// stable. Error is set when the action failed for this message.
type actionResult struct {
	ID     string `json:"id"`
	Action string `json:"action"` // retry, hold, release, delete, requeue
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"` // the queue afterwards; "" when deleted or on error
	Error  string `json:"error,omitempty"`
}

// apply takes the spool lock, selects the messages, runs act on each and
// prints one line (or JSON object) per message, then a count. Exit codes:
// 64 for a bad ID or no selection, 75 while a flush holds the lock, 66 when
// a named ID is in no queue, 65 when one is in a queue the action does not
// apply to, 74 when a file could not be changed; the worst wins and every
// other message is still acted on.
func (s selection) apply(g *Globals, action string, asJSON bool, act func(*spool.Spool, *spool.Message) error) error {
	filtered := s.domain != "" || s.all
	if s.stdin {
		// IDs, not magic words: a message may be named ALL or "-"
		// (any name that does not start with a dot), so the whole
		// queue and stdin are flags, unlike postsuper's ALL and -.
		if filtered {
			return exitf(report.ExUsage, "%s: --stdin names messages by ID; it does not go with %s", action, s.filterName)
		}
		ids, err := readIDs(g.stdin)
		if err != nil {
			return exitf(report.ExIOErr, "%s: reading IDs from stdin: %v", action, err)
		}
		s.ids = append(s.ids, ids...)
		if len(s.ids) == 0 {
			if !asJSON {
				fmt.Fprintf(g.stdout, "%s: 0 message(s)\n", action)
			}
			return nil
		}
	} else if len(s.ids) > 0 == filtered {
		return exitf(report.ExUsage, "%s: give message IDs, --stdin or %s (one of them)", action, s.filterName)
	}
	for _, id := range s.ids {
		if err := spool.CheckID(id); err != nil {
			return exitf(report.ExUsage, "%v", err)
		}
	}
	if err := asSpoolOwner(g, "changing the queue"); err != nil {
		return err
	}
	sp, err := useSpool(g, true)
	if err != nil {
		return err
	}
	unlock, err := lockSpool(sp)
	if err != nil {
		return err
	}
	defer unlock()

	code := report.ExOK
	worse := func(c int) {
		rank := map[int]int{report.ExOK: 0, report.ExDataErr: 1, exNoInput: 2, report.ExIOErr: 3}
		if rank[c] > rank[code] {
			code = c
		}
	}
	var msgs []*spool.Message
	if filtered {
		if msgs, err = listQueues(g, sp, s.queues, s.domain, false); err != nil {
			return err
		}
	}
	for _, id := range s.ids {
		m, err := sp.Find(id)
		switch {
		case errors.Is(err, spool.ErrNotFound):
			fmt.Fprintf(g.stderr, "mxflush: %s: no such message in %s\n", report.Escape(id), report.Escape(g.Spool))
			worse(exNoInput)
		case err != nil:
			fmt.Fprintf(g.stderr, "mxflush: %s\n", report.Escape(err.Error()))
			worse(report.ExIOErr)
		case !slices.Contains(s.allowed, m.Queue):
			fmt.Fprintf(g.stderr, "mxflush: %s: it is in %s/; %s applies to messages in %s\n", report.Escape(id), m.Queue, action, queueNames(s.allowed))
			worse(report.ExDataErr)
		default:
			msgs = append(msgs, m)
		}
	}
	enc := json.NewEncoder(g.stdout)
	done := 0
	for _, m := range msgs {
		res := actionResult{ID: m.ID, Action: action, From: m.Queue}
		if err := act(sp, m); err != nil {
			res.Error = err.Error()
			worse(report.ExIOErr)
		} else {
			done++
			if action != "delete" {
				res.To = m.Queue
			}
		}
		switch {
		case asJSON:
			if err := enc.Encode(res); err != nil {
				return exitf(report.ExIOErr, "%v", err)
			}
		case res.Error != "":
			fmt.Fprintf(g.stderr, "mxflush: %s: %s\n", report.Escape(m.ID), report.Escape(res.Error))
		case res.To != "":
			fmt.Fprintf(g.stdout, "%s: %s (%s/ -> %s/)\n", action, report.Escape(m.ID), res.From, res.To)
		default:
			fmt.Fprintf(g.stdout, "%s: %s (was in %s/)\n", action, report.Escape(m.ID), res.From)
		}
	}
	if !asJSON {
		fmt.Fprintf(g.stdout, "%s: %d message(s)\n", action, done)
	}
	if code != report.ExOK {
		return &exitError{code: code, err: errors.New("")}
	}
	return nil
}

// lockSpool takes the spool lock for one admin action; while a flush holds
// it the command exits 75 and says to try again.
func lockSpool(sp *spool.Spool) (func() error, error) {
	unlock, err := sp.Lock()
	if err != nil {
		var le *spool.LockedError
		if errors.As(err, &le) {
			return nil, exitf(report.ExTempFail, "%v; try again when it has ended", err)
		}
		return nil, exitf(report.ExIOErr, "%v", err)
	}
	return unlock, nil
}

// listQueues lists queues (files that cannot be parsed are named on stderr
// and skipped) and keeps the messages with a recipient in domain ("" keeps
// all): a pending one, or in failed/ a failed one. With anyFailed (the
// queue listing), a failed recipient in domain counts in every queue; an
// action never selects a message for a recipient that has already failed,
// or `delete --domain` would drop the pending recipients of other domains
// that share a message with it.
func listQueues(g *Globals, sp *spool.Spool, queues []string, domain string, anyFailed bool) ([]*spool.Message, error) {
	var out []*spool.Message
	for _, q := range queues {
		list, probs, err := sp.List(q)
		if err != nil {
			return nil, exitf(report.ExIOErr, "%v", err)
		}
		for _, p := range probs {
			fmt.Fprintf(g.stderr, "mxflush: %s: %s\n", report.Escape(p.Path), report.Escape(p.Reason))
		}
		for _, m := range list {
			if domain == "" || inDomain(m, domain, anyFailed || m.Queue == spool.QueueFailed) {
				out = append(out, m)
			}
		}
	}
	return out, nil
}

// inDomain reports whether m has a pending recipient (or, with failed, a
// failed one) whose routing domain is d (compared in A-label form, any
// case, trailing dot ignored).
func inDomain(m *spool.Message, d string, failed bool) bool {
	want, err := addr.Domain("x@" + d)
	if err != nil {
		want = strings.ToLower(strings.TrimSuffix(d, "."))
	}
	rcpts := append([]string{}, m.To...)
	for _, f := range m.Failed {
		if failed {
			rcpts = append(rcpts, f.Rcpt)
		}
	}
	for _, r := range rcpts {
		if got, err := addr.Domain(r); err == nil && got == want {
			return true
		}
	}
	return false
}

func queueNames(qs []string) string {
	out := make([]string, len(qs))
	for i, q := range qs {
		out[i] = q + "/"
	}
	return strings.Join(out, ", ")
}

// readIDs reads message IDs one a line (surrounding white space trimmed,
// empty lines skipped), as postqueue -p | awk ... | postsuper -d - feeds.
func readIDs(r io.Reader) ([]string, error) {
	var ids []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if id := strings.TrimSpace(sc.Text()); id != "" {
			ids = append(ids, id)
		}
	}
	return ids, sc.Err()
}
