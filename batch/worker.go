package batch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/mxflush/mxflush/deliver"
	"github.com/mxflush/mxflush/mx"
)

// domain is one worker: it resolves the domain once, opens one SMTP session
// and sends every item of the batch over it, one message file open at a
// time. A lost session (a 421, a dropped connection, a timeout) is replaced,
// and the item it was carrying is sent once more on the new session; if that
// fails too, it is deferred. When no session can be made, every item
// still unsent is deferred (or bounced, when every MX refused permanently)
// at once, without a connection attempt per message.
func (r *runner) domain(ctx context.Context, b *Batch) DomainStats {
	start := r.now()
	st := DomainStats{Domain: b.Domain, Messages: len(b.Items), Recipients: b.Recipients()}
	defer func() { st.Seconds = r.now().Sub(start).Seconds() }()

	route, err := r.cfg.Resolver.Lookup(ctx, b.Domain)
	if err != nil {
		st.Error = err.Error()
		r.failAll(b.Items, err, "none", &st)
		return st
	}
	hosts := make([]deliver.Host, 0, len(route.Hosts))
	for _, h := range route.Hosts {
		hosts = append(hosts, deliver.Host{Name: h.Name, Addrs: h.Addrs})
		st.MX = append(st.MX, describeHost(h))
	}
	if r.cfg.DryRun {
		if len(b.Items) > 0 {
			st.Connections = 1
		}
		return st
	}

	var sess *deliver.Session
	defer func() {
		if sess != nil {
			sess.Close()
		}
	}()
	resent := map[*Item]bool{}
	for i := 0; i < len(b.Items); i++ {
		it := b.Items[i]
		if ctx.Err() != nil {
			r.failAll(b.Items[i:], fmt.Errorf("run cancelled: %w", ctx.Err()), st.Relay, &st)
			return st
		}
		if sess == nil {
			sess, err = deliver.Dial(ctx, hosts, r.cfg.Deliver)
			if err != nil {
				sess = nil
				st.Error = err.Error()
				r.failAll(b.Items[i:], err, "none", &st)
				return st
			}
			st.Connections++
			st.Relay = sess.Relay()
		}
		res, err := sess.Send(ctx, r.message(it))
		if err != nil {
			sess.Close()
			sess = nil
			var lost *deliver.LostError
			if errors.As(err, &lost) && !resent[it] {
				// Send it again, once, on a fresh session. When the final
				// dot was never sent (lost.Safe) nothing was delivered;
				// when only the reply to it was lost, RFC 5321 §4.1.1.4
				// leaves the outcome unknown and the message must be
				// retried anyway: retrying now rather than next run
				// risks no more duplicates than deferring would.
				resent[it] = true
				i--
				continue
			}
		}
		r.record(it, res, st.Relay, &st)
	}
	return st
}

// message adapts an item to deliver's view: envelope and an opener, never a path.
func (r *runner) message(it *Item) deliver.Message {
	m := it.state.m
	return deliver.Message{
		From: m.From,
		To:   it.Rcpts,
		Size: m.Size,
		Open: func() (io.ReadCloser, error) { return r.spool.Open(m) },
	}
}

// record turns deliver's per-recipient results into outcomes, events and counts.
func (r *runner) record(it *Item, res []deliver.Result, relay string, st *DomainStats) {
	out := make(map[string]outcome, len(it.Rcpts))
	for _, rs := range res {
		o := outcome{status: Sent, reply: rs.Reply}
		dsn := "2.0.0"
		if rs.Err != nil {
			o.status, dsn, o.reply = classify(rs.Err)
		} else if code := replyStatus(rs.Reply); code != "" {
			dsn = code
		}
		out[rs.Rcpt] = o
		r.count(st, o.status)
		r.event(Event{ID: it.state.m.ID, Rcpt: rs.Rcpt, Domain: st.Domain, Relay: relay, Status: o.status,
			DSN: dsn, Reply: o.reply, Delay: r.now().Sub(it.state.m.Arrival)})
	}
	// deliver answers for every recipient; one it did not answer for is deferred.
	for _, rcpt := range it.Rcpts {
		if _, ok := out[rcpt]; !ok {
			o := outcome{status: Deferred, reply: "4.3.0 no result from the SMTP session"}
			out[rcpt] = o
			r.count(st, Deferred)
			r.event(Event{ID: it.state.m.ID, Rcpt: rcpt, Domain: st.Domain, Relay: relay, Status: Deferred,
				DSN: "4.3.0", Reply: o.reply, Delay: r.now().Sub(it.state.m.Arrival)})
		}
	}
	r.finish(it, out)
}

// failAll gives every recipient of items the outcome of a domain-wide error.
func (r *runner) failAll(items []*Item, err error, relay string, st *DomainStats) {
	status, dsn, reply := classify(err)
	for _, it := range items {
		res := make([]deliver.Result, 0, len(it.Rcpts))
		out := make(map[string]outcome, len(it.Rcpts))
		for _, rcpt := range it.Rcpts {
			out[rcpt] = outcome{status: status, reply: reply}
			res = append(res, deliver.Result{Rcpt: rcpt})
			if !r.cfg.DryRun {
				r.count(st, status)
				r.event(Event{ID: it.state.m.ID, Rcpt: rcpt, Domain: st.Domain, Relay: relay, Status: status,
					DSN: dsn, Reply: reply, Delay: r.now().Sub(it.state.m.Arrival)})
			}
		}
		if !r.cfg.DryRun {
			r.finish(it, out)
		}
	}
}

func (r *runner) count(st *DomainStats, s Status) {
	switch s {
	case Sent:
		st.Delivered++
	case Bounced:
		st.Failed++
	default:
		st.Deferred++
	}
}

// replyStatus returns the enhanced status code of a reply such as
// "250 2.0.0 Ok", or "".
func replyStatus(reply string) string {
	f := strings.Fields(reply)
	if len(f) >= 2 && strings.Count(f[1], ".") == 2 && f[1][0] >= '2' && f[1][0] <= '5' {
		return f[1]
	}
	return ""
}

func describeHost(h mx.Host) string {
	addrs := make([]string, len(h.Addrs))
	for i, a := range h.Addrs {
		addrs[i] = a.String()
	}
	return fmt.Sprintf("%s[%s]", h.Name, strings.Join(addrs, ","))
}
