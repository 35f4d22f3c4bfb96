package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/mxflush/mxflush/report"
	"github.com/mxflush/mxflush/spool"
)

// ShowCmd is `mxflush show ID`: one message in full.
type ShowCmd struct {
	ID   string `arg:"" name:"id" help:"Message ID (spool file name)."`
	Body bool   `help:"Print the whole message, body too, not only its header section."`
	JSON bool   `name:"json" help:"Print one JSON object." env:"-"`
}

// showEntry is the JSON shape of `show`: the queue entry plus the message's
// header section (and body with --body) as stored, line endings unchanged.
type showEntry struct {
	queueEntry
	Headers string  `json:"headers"`
	Body    *string `json:"body,omitempty"`
}

// maxShowHeader bounds the header section show reads (octets).
const maxShowHeader = 1 << 20

// Run prints the message. It takes no lock and changes nothing. Exit 64
// for a bad ID, 66 when no queue holds it, 74 when it cannot be read.
func (c *ShowCmd) Run(g *Globals) error {
	if err := spool.CheckID(c.ID); err != nil {
		return exitf(report.ExUsage, "%v", err)
	}
	if err := asSpoolOwner(g, "showing a queued message"); err != nil {
		return err
	}
	sp, err := useSpool(g, false)
	if err != nil {
		return err
	}
	m, err := sp.Find(c.ID)
	if errors.Is(err, spool.ErrNotFound) {
		return exitf(exNoInput, "%s: no such message in %s", c.ID, g.Spool)
	} else if err != nil {
		return exitf(report.ExIOErr, "%v", err)
	}
	headers, body, err := readMessage(sp, m, c.Body)
	if err != nil {
		return exitf(report.ExIOErr, "%v", err)
	}
	e := showEntry{queueEntry: entry(m, g.now()), Headers: string(headers)}
	if c.Body {
		b := string(body)
		e.Body = &b
	}
	if c.JSON {
		if err := json.NewEncoder(g.stdout).Encode(e); err != nil {
			return exitf(report.ExIOErr, "%v", err)
		}
		return nil
	}
	return printShow(g.stdout, e, g.now())
}

// readMessage returns m's header section (up to and including the empty
// line) and, when withBody, the rest.
func readMessage(sp *spool.Spool, m *spool.Message, withBody bool) (headers, body []byte, err error) {
	rc, err := sp.Open(m)
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	br := bufio.NewReader(io.LimitReader(rc, maxShowHeader))
	var h bytes.Buffer
	for {
		line, err := br.ReadBytes('\n')
		h.Write(line)
		if len(bytes.TrimRight(line, "\r\n")) == 0 || err != nil {
			break
		}
	}
	if !withBody {
		return h.Bytes(), nil, nil
	}
	rest, err := io.ReadAll(io.MultiReader(br, rc))
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", m.ID, err)
	}
	return h.Bytes(), rest, nil
}

func printShow(w io.Writer, e showEntry, now time.Time) error {
	// What comes from the spool is escaped (report.Escape): a file name,
	// an address or a reply can hold no line break or terminal control.
	sender := report.Escape(e.Sender)
	if sender == "" {
		sender = "<>"
	} else {
		sender = "<" + sender + ">"
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "id:\t%s\n", report.Escape(e.ID))
	fmt.Fprintf(tw, "queue:\t%s/\n", e.Queue)
	fmt.Fprintf(tw, "sender:\t%s\n", sender)
	fmt.Fprintf(tw, "arrival:\t%s (%s ago)\n", e.Arrival.Format(time.RFC3339), age(now.Sub(e.Arrival)))
	fmt.Fprintf(tw, "size:\t%d\n", e.Size)
	fmt.Fprintf(tw, "attempts:\t%d\n", e.Attempts)
	next := "now"
	if e.NextAttempt != nil && e.NextAttempt.After(now) {
		next = e.NextAttempt.Format(time.RFC3339) + " (in " + age(e.NextAttempt.Sub(now)) + ")"
	}
	if e.Queue == spool.QueueHold {
		next = "never while held"
	}
	if e.Queue != spool.QueueFailed {
		fmt.Fprintf(tw, "next attempt:\t%s\n", next)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "recipients:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range e.Recipients {
		reply := e.LastReplies[r]
		if reply == "" {
			reply = "(not tried yet)"
		}
		fmt.Fprintf(tw, "  <%s>\tpending\t%s\n", report.Escape(r), report.Escape(reply))
	}
	for _, f := range e.Failures {
		state := "failed"
		if f.Notice != "" {
			state += ", " + f.Notice
		}
		fmt.Fprintf(tw, "  <%s>\t%s\t%s\n", report.Escape(f.Recipient), report.Escape(state), report.Escape(f.Reply))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "headers:")
	if _, err := io.WriteString(w, report.EscapeText(e.Headers)); err != nil {
		return err
	}
	if e.Body != nil {
		_, err := io.WriteString(w, report.EscapeText(*e.Body))
		return err
	}
	return nil
}
