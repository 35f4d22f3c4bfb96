// Package report renders a run's summary as a text table or JSON, formats the
// per-recipient log line in Postfix's shape, and maps a summary to a sysexits
// exit code. It is pure functions over batch's types.
package report

import (
	"github.com/mxflush/mxflush/mta"
	"strconv"

	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/mxflush/mxflush/batch"
)

// Exit codes from sysexits.h.
const (
	ExOK          = 0
	ExUsage       = 64 // bad command line
	ExDataErr     = 65 // bad input: an invalid address, or spool files moved aside as invalid
	ExUnavailable = 69 // some recipients failed permanently
	ExSoftware    = 70 // internal error
	ExCantCreat   = 73 // cannot create the spool or a file in it
	ExIOErr       = 74 // cannot read or write the spool
	ExTempFail    = 75 // some recipients deferred, or the spool lock is held
	ExConfig      = 78 // bad configuration (DNS server address, ...)
)

// ExitCode maps a run's summary to its exit code. The worst class wins:
// local I/O failure (74) > configuration error in a session, such as
// credentials a relay refused (78) > invalid spool files moved aside (65) >
// permanent failures (69) > deferrals, or messages left queued by a stopped
// run (75) > success (0).
func ExitCode(s *batch.Summary) int {
	io, invalid, config := false, false, false
	for _, p := range s.Problems {
		if p.IOError {
			io = true
		} else {
			invalid = true
		}
	}
	for _, d := range s.Domains {
		config = config || d.ConfigError != ""
	}
	switch {
	case io:
		return ExIOErr
	case config:
		return ExConfig
	case invalid:
		return ExDataErr
	case s.Totals.Failed > 0:
		return ExUnavailable
	case s.Totals.Deferred > 0 || s.LeftQueued > 0:
		return ExTempFail
	}
	return ExOK
}

// Outcome is how a run ends: the exit code the process exits with and,
// when that is not the summary's own (ExitCode), the error that made it so
// ("--metrics-file: ..."). The summary's last line and the JSON's
// exit_code state it, so that they never say 0 while the process exits 74.
type Outcome struct {
	Code  int
	Error string
	// Shard is the run's flush --shard, "I/N"; "" for a whole run.
	Shard string
	// Exit, when not nil, is the code the process exits with instead of
	// Code (flush --mail-outcomes-ok: 0 for mail deferred or bounced);
	// Code stays the run's own.
	Exit *int
}

// Of is the outcome of a run that ended with summary s and no other error.
func Of(s *batch.Summary) Outcome { return Outcome{Code: ExitCode(s)} }

// Text writes the per-domain table and the totals, then the sites shared
// by several domains, then any local problems, then the exit line of out.
// A domain that shares its site with others shows "-" for connections:
// they are the site's, on its own line, counted once in the total.
func Text(w io.Writer, s *batch.Summary, out Outcome) error {
	shared := map[string]bool{} // site name and pass -> more than one domain
	for _, site := range s.Sites {
		if len(site.Domains) > 1 {
			shared[site.Pass+"\x00"+site.Name] = true
		}
	}
	conns := func(d batch.DomainStats) string {
		if d.Site != "" && shared[d.Pass+"\x00"+d.Site] {
			return "-"
		}
		return strconv.Itoa(d.Connections)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if s.DryRun {
		fmt.Fprintln(w, "dry run: nothing was sent and the spool is unchanged")
		fmt.Fprintf(tw, "domain\tmessages\trecipients\tconnections\t\tmx\n")
		for _, d := range s.Domains {
			mx := strings.Join(d.MX, " ")
			if d.Error != "" {
				mx = "error: " + d.Error
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t\t%s\n", Escape(d.Domain), d.Messages, d.Recipients, conns(d), Escape(mx))
		}
		t := s.Totals
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t\n", "total", t.Messages, t.Recipients, t.Connections)
	} else {
		fmt.Fprintf(tw, "domain\tmessages\tdelivered\tdeferred\tfailed\tconnections\tseconds\t\n")
		for _, d := range s.Domains {
			name := Escape(d.Domain)
			if d.Pass != "" {
				name += " (" + d.Pass + ")" // the second pass: DSNs enqueued by this run
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%.2f\t\n", name, d.Messages, d.Delivered, d.Deferred,
				d.Failed, conns(d), d.Seconds)
		}
		t := s.Totals
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%.2f\t\n", "total", t.Messages, t.Delivered, t.Deferred,
			t.Failed, t.Connections, s.Seconds)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, site := range s.Sites {
		if len(site.Domains) < 2 {
			continue
		}
		name := "site " + Escape(site.Name)
		if site.Pass != "" {
			name += " (" + site.Pass + ")"
		}
		verb := plural(site.Connections, "connection")
		if s.DryRun {
			verb = plural(site.Connections, "session") + " planned"
		}
		saved := ""
		if site.CopiesSaved > 0 {
			saved = fmt.Sprintf(", %d copies saved by messages sent once for several domains", site.CopiesSaved)
		}
		fmt.Fprintf(w, "%s: %d domains (%s), %d %s, %d %s%s\n", name, len(site.Domains),
			Escape(listSome(site.Domains, 5)), site.Messages, plural(site.Messages, "message"), site.Connections, verb, saved)
		if len(site.TLS) > 0 {
			fmt.Fprintf(w, "%s: tls: %s\n", name, Escape(tlsCounts(site.TLS)))
		}
		// A failure of the site's sessions is the same for each of its
		// domains: said once, here, not once a domain.
		for _, d := range s.Domains {
			if d.Site == site.Name && d.Pass == site.Pass {
				if d.Error != "" && !s.DryRun {
					fmt.Fprintf(w, "%s: %s\n", name, Escape(d.Error))
				}
				if d.ConfigError != "" && !strings.Contains(d.Error, d.ConfigError) {
					fmt.Fprintf(w, "%s: config error: %s\n", name, Escape(d.ConfigError))
				}
				break
			}
		}
	}
	for _, d := range s.Domains {
		dom := Escape(d.Domain)
		if d.Site != "" && shared[d.Pass+"\x00"+d.Site] {
			continue // said on its site's lines
		}
		if d.Error != "" && !s.DryRun {
			fmt.Fprintf(w, "%s: %s\n", dom, Escape(d.Error))
		}
		if d.ConfigError != "" && !strings.Contains(d.Error, d.ConfigError) {
			fmt.Fprintf(w, "%s: config error: %s\n", dom, Escape(d.ConfigError))
		}
		if len(d.TLS) > 0 {
			fmt.Fprintf(w, "%s: tls: %s\n", dom, Escape(tlsCounts(d.TLS)))
		}
	}
	if s.LeftQueued > 0 {
		fmt.Fprintf(w, "stopped %s: %d messages left queued\n", Escape(s.Stopped), s.LeftQueued)
	}
	if s.NotDue > 0 {
		fmt.Fprintf(w, "%d message(s) not due yet (use --all to send them now)\n", s.NotDue)
	}
	if s.NotSelected > 0 {
		fmt.Fprintf(w, "%d message(s) not selected, left as they were\n", s.NotSelected)
	}
	if s.PickedUp > 0 {
		fmt.Fprintf(w, "%d message(s) picked up from maildrop/\n", s.PickedUp)
	}
	if s.Replayed > 0 {
		fmt.Fprintf(w, "%d recipient(s) delivered by an earlier run that could not record it were taken off the queue (crash journal)\n", s.Replayed)
	}
	if s.Bounces > 0 {
		fmt.Fprintf(w, "%d delivery status notification(s) enqueued to senders\n", s.Bounces)
	}
	for _, p := range s.Problems {
		where := "left in place"
		if p.MovedTo != "" {
			where = "moved to " + Escape(p.MovedTo)
		}
		fmt.Fprintf(w, "spool problem: %s: %s (%s)\n", Escape(p.ID), Escape(p.Reason), where)
	}
	if out.Shard != "" {
		fmt.Fprintf(w, "shard %s: only the messages whose file names hash to it\n", out.Shard)
	}
	code := out.Code
	if out.Error != "" {
		_, err := fmt.Fprintf(w, "exit %d: %s\n", code, Escape(out.Error))
		return err
	}
	if s.DryRun {
		meaning := "dry run, nothing was sent"
		if code == ExDataErr {
			meaning = "dry run: some spool files are invalid (a real run moves them to bad/)"
		} else if code == ExIOErr {
			meaning = "dry run: some spool files cannot be read"
		}
		_, err := fmt.Fprintf(w, "exit %d: %s\n", code, meaning)
		return err
	}
	if _, err := fmt.Fprintf(w, "exit %d: %s\n", code, Meaning(code)); err != nil {
		return err
	}
	if out.Exit != nil && *out.Exit != code {
		_, err := fmt.Fprintf(w, "process exit %d (--mail-outcomes-ok: deferred and bounced mail are normal outcomes of a run that worked)\n", *out.Exit)
		return err
	}
	return nil
}

// Meaning says in plain words what an exit code of flush means.
func Meaning(code int) string {
	switch code {
	case ExOK:
		return "everything due was delivered (or nothing was due)"
	case ExTempFail:
		return "some recipients were deferred and stay queued for a later run"
	case ExUnavailable:
		return "some recipients failed permanently (kept in failed/)"
	case ExDataErr:
		return "some spool files were invalid and were moved to bad/, or were not what the scan read (see the spool problem lines)"
	case ExIOErr:
		return "some spool files could not be read or updated"
	case ExConfig:
		return "the configuration is wrong (see the config error lines above); the messages stay queued, none was bounced"
	}
	return fmt.Sprintf("exit code %d", code)
}

// JSON writes the summary as one JSON object and a newline, with out's
// exit code under "exit_code" and its error, if any, under "error"; a
// sharded run's shard under "shard", and the process's exit code under
// "process_exit_code" when it is not exit_code (see Outcome.Exit). A run
// that ended before it had a summary (s nil: the lock was held, a flag was
// wrong, the spool is missing) still gets one object, with only those two,
// so that a CI step that keeps the JSON never keeps an empty file.
func JSON(w io.Writer, s *batch.Summary, out Outcome) error {
	if s == nil {
		return json.NewEncoder(w).Encode(struct {
			ExitCode int    `json:"exit_code"`
			Error    string `json:"error"`
			Shard    string `json:"shard,omitempty"`
		}{out.Code, out.Error, out.Shard})
	}
	v := struct {
		*batch.Summary
		ExitCode int    `json:"exit_code"`
		Error    string `json:"error,omitempty"`
		Shard    string `json:"shard,omitempty"`
		Exit     *int   `json:"process_exit_code,omitempty"`
	}{s, out.Code, out.Error, out.Shard, out.Exit}
	if v.Domains == nil {
		v.Domains = []batch.DomainStats{}
	}
	if v.Problems == nil {
		v.Problems = []batch.Problem{}
	}
	return json.NewEncoder(w).Encode(v)
}

// LogLine formats one recipient outcome in Postfix's shape, for example
//
//	mxflush[123]: 1732.456.ab12.host: to=<bob@a.test>, relay=mx.a.test[127.0.0.2]:2525, delay=0.12, dsn=2.0.0, status=sent (250 2.0.0 Ok)
//
// An outcome from an SMTP session also says how it was secured, "tls=" and
// Event.TLS after relay; when TLS was tried and given up, the reason
// follows the reply: "(250 2.0.0 Ok; TLS failed, sent without TLS: ...)".
func LogLine(pid int, e batch.Event) string {
	relay := e.Relay
	if e.TLS != "" {
		relay += ", tls=" + e.TLS
	}
	reply := e.Reply
	if e.TLSNote != "" {
		reply += "; " + e.TLSNote
	}
	// The ID is a file name any producer chooses, the reply a remote
	// server's text: escaped, neither can start a line of its own.
	return fmt.Sprintf("mxflush[%d]: %s: to=<%s>, relay=%s, delay=%.2f, dsn=%s, status=%s (%s)",
		pid, Escape(e.ID), Escape(e.Rcpt), Escape(relay), e.Delay.Seconds(), Escape(e.DSN), e.Status, Escape(mta.OneLine(reply)))
}

// tlsCounts renders DomainStats.TLS in a stable order:
// "TLSv1.3:verified x2, none (TLS failed, sent without TLS) x1".
func tlsCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = fmt.Sprintf("%s x%d", k, m[k])
	}
	return strings.Join(keys, ", ")
}

// listSome joins the first n items and says how many more there are.
func listSome(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:n], ", ") + fmt.Sprintf(" and %d more", len(items)-n)
}

// plural is word, or word+"s" when n is not 1.
func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
