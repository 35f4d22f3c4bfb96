package batch

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mxflush/mxflush/dsn"
	"github.com/mxflush/mxflush/mta"
	"github.com/mxflush/mxflush/spool"
)

// maxReturnedHeaders bounds the original header section returned in a DSN
// (text/rfc822-headers); a longer one is cut at a line end.
const maxReturnedHeaders = 64 << 10

// rcptResult is one recipient (as spooled) and its outcome in this run.
type rcptResult struct {
	rcpt string
	o    outcome
}

// notify tells the sender of m, with one DSN (RFC 3464), about the
// recipients that failed permanently in this run (fresh) and, when the
// delay warning is due, about those still pending. It returns the notice
// to record on the fresh failures, whether the delay warning went out (the
// caller then sets Warned), and the ID of the enqueued DSN, "" if none.
//
// No DSN is made for a message from <> (a bounce never bounces: RFC 3464
// §2, RFC 5321 §4.5.5) or under --no-bounce; the notice says so. The delay
// warning is due once per message: when WarnAfter is set, the message is at
// least that old, has recipients still pending, and has no Warned time yet.
//
// The DSN is enqueued (written, fsynced, renamed into new/) before the caller
// records anything: an error here (ENOSPC, EACCES) means nothing was enqueued
// and the caller must leave the original as it is (on a full disk, for
// example).
func (r *runner) notify(m *spool.Message, fresh, pending []rcptResult, now time.Time) (spool.Notice, bool, string, error) {
	if m.From == "" || r.cfg.NoBounce {
		return spool.NoticeNone, false, "", nil
	}
	warn := r.cfg.WarnAfter > 0 && m.Warned.IsZero() && len(pending) > 0 && r.cfg.age(m, now) >= r.cfg.WarnAfter
	if len(fresh) == 0 && !warn {
		return spool.NoticeNone, false, "", nil
	}
	n := dsn.Notice{
		ReportingMTA: r.cfg.Deliver.Helo,
		QueueID:      m.ID,
		Sender:       m.From,
		Arrival:      m.Arrival,
		Date:         now,
	}
	if n.ReportingMTA == "" {
		n.ReportingMTA = "localhost"
	}
	for _, f := range fresh {
		n.Recipients = append(n.Recipients, dsnRecipient(f, dsn.Failed, now))
	}
	if warn {
		for _, p := range pending {
			d := dsnRecipient(p, dsn.Delayed, now)
			d.RetryUntil = m.Arrival.Add(r.cfg.MaxAge)
			n.Recipients = append(n.Recipients, d)
		}
	}
	var err error
	if n.Headers, err = r.headers(m); err != nil {
		return "", false, "", fmt.Errorf("reading its header section for the DSN: %w", err)
	}
	b, err := dsn.Compose(n)
	if err != nil {
		return "", false, "", fmt.Errorf("composing its DSN: %w", err)
	}
	id, err := r.spool.Enqueue(spool.Envelope{From: "", To: []string{m.From}, Arrival: now}, bytes.NewReader(b))
	if err != nil {
		return "", false, "", fmt.Errorf("writing its DSN to %s: %w", m.From, err)
	}
	r.mu.Lock()
	r.bounces = append(r.bounces, id)
	r.dsns++
	r.mu.Unlock()
	return spool.NoticeBounced, warn, id, nil
}

// dsnRecipient turns one outcome into a DSN recipient. An expired
// recipient (o.last set) reports status 4.4.7 with the last reply as its
// diagnostic; Remote-MTA is given when the reply came from a server.
func dsnRecipient(rr rcptResult, a dsn.Action, now time.Time) dsn.Recipient {
	o := rr.o
	def := "5.0.0"
	if a == dsn.Delayed {
		def = "4.0.0"
	}
	d := dsn.Recipient{Addr: rr.rcpt, Action: a, Status: enhanced(o.reply, def), Reply: o.reply, LastAttempt: now}
	if o.last != "" {
		d.Reply, d.Explanation = o.last, o.note
	}
	if host := relayHost(o.relay); host != "" && smtpReply(d.Reply) {
		d.RemoteMTA = host
	}
	return d
}

// enhanced returns the RFC 3463 code in the first or second word of reply
// ("550 5.1.1 No such user", "5.1.10 null MX"), or def.
func enhanced(reply, def string) string {
	if code, _, text, ok := mta.ParseLine(reply); ok {
		if st, _ := mta.SplitStatus(code, text); st != "" {
			return st
		}
		return def
	}
	if st, ok := mta.ParseStatus(strings.SplitN(reply, " ", 2)[0]); ok {
		return st // a local reason, "4.4.7 delivery time expired ..."
	}
	return def
}

// smtpReply reports whether s starts with a three-digit reply code.
func smtpReply(s string) bool {
	_, _, _, ok := mta.ParseLine(s)
	return ok
}

// relayHost returns the host name of a relay written "host[ip]:port", or
// "" for "none" and "".
func relayHost(relay string) string {
	if i := strings.IndexByte(relay, '['); i > 0 {
		return relay[:i]
	}
	return ""
}

// headers returns m's header section as Open gives it (Bcc removed from a
// derived envelope), up to but not including the empty line, at most
// maxReturnedHeaders octets. It holds one file open while it reads.
func (r *runner) headers(m *spool.Message) ([]byte, error) {
	rc, err := r.spool.Open(m)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 4096)
	var h []byte
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			err = nil // a long line: keep reading it in pieces
		}
		if len(h) == 0 || h[len(h)-1] == '\n' { // at a line start
			if len(line) == 0 || line[0] == '\n' || bytes.Equal(line, []byte("\r\n")) {
				return h, nil
			}
		}
		if len(h)+len(line) > maxReturnedHeaders {
			if i := bytes.LastIndexByte(h, '\n'); i >= 0 {
				h = h[:i+1]
			}
			return h, nil
		}
		h = append(h, line...)
		if errors.Is(err, io.EOF) {
			return h, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
