package batch

import "time"

// DomainStats is one row of the run summary: recipient counts are per
// recipient, Messages per message, Seconds wall-clock time of the worker.
type DomainStats struct {
	Domain      string   `json:"domain"`
	MX          []string `json:"mx,omitempty"`    // hosts in the order tried, "name[addr,addr]"
	Relay       string   `json:"relay,omitempty"` // last relay that answered, "host[ip]:port"
	Messages    int      `json:"messages"`
	Recipients  int      `json:"recipients"`
	Delivered   int      `json:"delivered"`
	Deferred    int      `json:"deferred"`
	Failed      int      `json:"failed"`
	Connections int      `json:"connections"`
	Seconds     float64  `json:"seconds"`
	Error       string   `json:"error,omitempty"` // a domain-wide failure: DNS, or no reachable MX
}

// Problem is a local failure: a spool file moved aside or left unreadable,
// or a state change that could not be written.
type Problem struct {
	ID      string `json:"id"`
	Reason  string `json:"reason"`
	MovedTo string `json:"moved_to,omitempty"`
	IOError bool   `json:"io_error"` // true: read or write failure (exit 74); false: invalid file moved aside (exit 65)
}

// Summary is the result of one run.
type Summary struct {
	Started  time.Time     `json:"started"`
	Seconds  float64       `json:"seconds"`
	DryRun   bool          `json:"dry_run"`
	Domains  []DomainStats `json:"domains"`
	Totals   DomainStats   `json:"totals"`
	NotDue   int           `json:"not_due"` // messages waiting for their next attempt, not tried
	Problems []Problem     `json:"problems"`
}

func (s *Summary) total() {
	t := DomainStats{Domain: "total"}
	for _, d := range s.Domains {
		t.Recipients += d.Recipients
		t.Delivered += d.Delivered
		t.Deferred += d.Deferred
		t.Failed += d.Failed
		t.Connections += d.Connections
	}
	s.Totals = t
}
