package batch

import (
	"slices"

	"github.com/mxflush/mxflush/spool"
)

// Selection narrows a run to some messages, or to the recipients of some
// domains (flush ID..., flush --domain D), as Postfix's postqueue -i and
// -s: what it selects is delivered now, whatever its next attempt; the rest
// of the spool is left exactly as it is, no attempt counted.
type Selection struct {
	IDs     []string // message IDs; none: any message
	Domains []string // recipient domains, lower-case A-labels as addr.Domain gives them; none: any domain
}

// unselected is the outcome of a recipient a Selection left out: like
// skipped, it stays pending as it was, with its last reply, and is no
// attempt; unlike skipped, it does not count as left by a stop.
const unselected Status = "unselected"

// message reports whether m is selected: by ID, and by having a pending
// recipient in a selected domain (domain gives a recipient's domain).
func (s *Selection) message(m *spool.Message, domain func(rcpt string) (string, error)) bool {
	if len(s.IDs) > 0 && !slices.Contains(s.IDs, m.ID) {
		return false
	}
	if len(s.Domains) == 0 {
		return true
	}
	for _, r := range m.To {
		if d, err := domain(r); err == nil && s.keeps(d) {
			return true
		}
	}
	return false
}

// keeps reports whether recipients of domain d are selected.
func (s *Selection) keeps(d string) bool {
	return s == nil || len(s.Domains) == 0 || slices.Contains(s.Domains, d)
}
