package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/mxflush/mxflush/report"
	"github.com/mxflush/mxflush/spool"
)

// QueueCmd is `mxflush queue`: the waiting messages, like mailq.
type QueueCmd struct {
	JSON   bool   `name:"json" help:"Print one JSON object per message, one per line." env:"-"`
	Domain string `help:"Only messages with a recipient (pending or failed) in this domain." placeholder:"D" env:"-"`
	Failed bool   `help:"List failed/ (permanently failed messages) instead of the waiting queues." env:"-"`
	Held   bool   `help:"List hold/ (held messages) alone; with --failed, both." env:"-"`
}

// listed are the queues a plain listing shows, as Postfix's mailq: new/,
// cur/ and hold/, a held message marked "!" after its ID.
var listed = []string{spool.QueueNew, spool.QueueCur, spool.QueueHold}

// queueEntry is the JSON shape of one waiting message; field names are stable.
type queueEntry struct {
	ID          string            `json:"id"`
	Queue       string            `json:"queue"` // "new" (never tried), "cur" (deferred), "hold" or "failed"
	Arrival     time.Time         `json:"arrival"`
	AgeSeconds  int64             `json:"age_seconds"`
	Size        int64             `json:"size"` // octets of the message
	Sender      string            `json:"sender"`
	Recipients  []string          `json:"recipients"`
	Attempts    int               `json:"attempts"`
	NextAttempt *time.Time        `json:"next_attempt,omitempty"`
	LastReplies map[string]string `json:"last_replies,omitempty"` // per recipient
	Failures    []failureEntry    `json:"failures,omitempty"`     // recipients that failed permanently
}

// failureEntry is one X-Envelope-Failed line: the recipient, the reply and
// whether the sender was bounced ("bounced", "not-bounced" or "").
type failureEntry struct {
	Recipient string `json:"recipient"`
	Reply     string `json:"reply"`
	Notice    string `json:"notice"`
}

// Run lists new/, cur/ and hold/ (or hold/, failed/), oldest first. It takes no
// lock: a message that changes meanwhile shows in its old or new state.
func (c *QueueCmd) Run(g *Globals) error {
	if err := asSpoolOwner(g, "listing the queue"); err != nil {
		return err
	}
	sp, err := useSpool(g, false)
	if err != nil {
		return err
	}
	queues := listed
	if c.Failed || c.Held {
		queues = nil
		if c.Held {
			queues = append(queues, spool.QueueHold)
		}
		if c.Failed {
			queues = append(queues, spool.QueueFailed)
		}
	}
	msgs, err := listQueues(g, sp, queues, c.Domain, true)
	if err != nil {
		return err
	}
	sort.SliceStable(msgs, func(i, j int) bool {
		if !msgs[i].Arrival.Equal(msgs[j].Arrival) {
			return msgs[i].Arrival.Before(msgs[j].Arrival)
		}
		return msgs[i].ID < msgs[j].ID
	})
	now := g.now()
	if c.JSON {
		enc := json.NewEncoder(g.stdout)
		for _, m := range msgs {
			if err := enc.Encode(entry(m, now)); err != nil {
				return exitf(report.ExIOErr, "%v", err)
			}
		}
		return nil
	}
	// Messages other users submitted are not in a queue until the next
	// flush picks them up: say how many wait (mailq's view of Postfix's
	// maildrop queue). Only for the listing of the waiting queues.
	dropped := 0
	if !c.Failed && !c.Held && c.Domain == "" {
		if dropped, err = sp.Dropped(); err != nil {
			return exitf(report.ExIOErr, "%v", err)
		}
	}
	defer func() {
		if dropped > 0 {
			fmt.Fprintf(g.stdout, "%d message(s) in maildrop/ wait for the next flush to pick them up\n", dropped)
		}
	}()
	if len(msgs) == 0 {
		fmt.Fprintf(g.stdout, "no messages in %s\n", queueNames(queues))
		return nil
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAGE\tSIZE\tSENDER\tATTEMPTS\tRECIPIENT (LAST REPLY)")
	for _, m := range msgs {
		e := entry(m, now)
		sender := report.Escape(e.Sender)
		if sender == "" {
			sender = "<>"
		}
		// Names and texts from the spool are escaped: a file name with a
		// newline must not print a line of its own.
		lines := make([]string, 0, len(e.Recipients)+len(e.Failures))
		for _, r := range e.Recipients {
			line := report.Escape(r)
			if rep := e.LastReplies[r]; rep != "" {
				line += " (" + report.Escape(rep) + ")"
			}
			lines = append(lines, line)
		}
		for _, f := range e.Failures {
			lines = append(lines, report.Escape(f.Recipient)+" (failed: "+report.Escape(f.Reply)+")")
		}
		e.ID = report.Escape(e.ID)
		if e.Queue == spool.QueueHold {
			e.ID += "!" // Postfix's mark of a held message
		}
		for i, line := range lines {
			if i == 0 {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\n", e.ID, age(now.Sub(e.Arrival)), e.Size, sender, e.Attempts, line)
			} else {
				fmt.Fprintf(tw, "\t\t\t\t\t%s\n", line)
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return exitf(report.ExIOErr, "%v", err)
	}
	held := 0
	for _, m := range msgs {
		if m.Queue == spool.QueueHold {
			held++
		}
	}
	if held > 0 {
		fmt.Fprintf(g.stdout, "%d message(s), %d recipient(s); %d held (!: not sent until mxflush release)\n", len(msgs), countRcpts(msgs), held)
	} else {
		fmt.Fprintf(g.stdout, "%d message(s), %d recipient(s)\n", len(msgs), countRcpts(msgs))
	}
	return nil
}

func entry(m *spool.Message, now time.Time) queueEntry {
	e := queueEntry{
		ID: m.ID, Queue: m.Queue, Arrival: m.Arrival.UTC(), Size: m.Size, Sender: m.From,
		Recipients: append([]string{}, m.To...), Attempts: m.Attempts, LastReplies: m.Replies,
		AgeSeconds: max(0, int64(now.Sub(m.Arrival).Seconds())),
	}
	for _, f := range m.Failed {
		e.Failures = append(e.Failures, failureEntry{Recipient: f.Rcpt, Reply: f.Reply, Notice: string(f.Notice)})
	}
	if !m.NextAttempt.IsZero() {
		t := m.NextAttempt.UTC()
		e.NextAttempt = &t
	}
	return e
}

func countRcpts(msgs []*spool.Message) int {
	n := 0
	for _, m := range msgs {
		n += len(m.To) + len(m.Failed)
	}
	return n
}

// age prints a duration the way mailq readers expect: 42s, 5m, 3h, 2d.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(0, int(d.Seconds())))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
