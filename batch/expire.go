package batch

import (
	"time"

	"github.com/mxflush/mxflush/addr"
	"github.com/mxflush/mxflush/spool"
)

// Expire fails m's pending recipients now, as Postfix's postsuper -e: each
// gets status 4.4.7 (RFC 3463 "delivery time expired") with its last reply
// kept as the diagnostic, the sender gets one DSN (enqueued in new/, sent
// by the next flush; none for the null sender or with cfg.NoBounce), and
// the message goes to failed/. With domains (lower-case A-labels), only the
// pending recipients in them fail; the others stay pending as they were.
// It returns how many recipients it failed; 0 (and no change) when none is
// pending in domains. It sends nothing over the network. The caller holds
// the spool lock. Errors are the state change's or the DSN's: the message
// is then left as it was.
func Expire(sp *spool.Spool, m *spool.Message, domains []string, cfg Config) (int, error) {
	r := &runner{cfg: cfg, spool: sp, now: cfg.Now}
	if r.now == nil {
		r.now = time.Now
	}
	sel := &Selection{Domains: domains}
	st := newMsgState(m)
	n := 0
	const note = "delivery time expired: expired by the operator (mxflush expire)"
	for _, rcpt := range m.To {
		d, err := addr.Domain(rcpt)
		if err != nil || !sel.keeps(d) {
			st.record(rcpt, outcome{status: unselected})
			continue
		}
		last := m.Replies[rcpt]
		reply := "4.4.7 " + note
		if last != "" {
			reply += "; last reply: " + last
		}
		st.record(rcpt, outcome{status: Bounced, reply: reply, relay: "none", last: last, note: note})
		n++
	}
	if n == 0 {
		return 0, nil
	}
	return n, r.apply(st)
}
