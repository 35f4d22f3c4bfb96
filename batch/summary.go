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
	Pass        string   `json:"pass,omitempty"`  // "" for the main pass, "bounces" for the DSNs delivered after it
	// TLS counts the sessions by their security: "TLSv1.3:verified",
	// "TLSv1.2:unverified", "TLSv1.3:dane", "none", or "none (TLS failed,
	// sent without TLS)".
	TLS map[string]int `json:"tls,omitempty"`
	// ConfigError is set when a session failed for a configuration reason
	// (credentials refused or missing, or not sendable without TLS): the
	// messages are deferred and the run exits 78 (EX_CONFIG).
	ConfigError string `json:"config_error,omitempty"`
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
	Started time.Time     `json:"started"`
	Seconds float64       `json:"seconds"`
	DryRun  bool          `json:"dry_run"`
	Domains []DomainStats `json:"domains"`
	Totals  DomainStats   `json:"totals"`
	NotDue  int           `json:"not_due"` // messages waiting for their next attempt, not tried
	// NotSelected counts the messages a selection (flush ID..., --domain)
	// left as they were.
	NotSelected int       `json:"not_selected,omitempty"`
	Bounces     int       `json:"bounces,omitempty"`   // DSNs enqueued to senders in this run (failures and delay warnings)
	Replayed    int       `json:"replayed,omitempty"`  // recipients a killed run had delivered, taken from its crash journal
	PickedUp    int       `json:"picked_up,omitempty"` // messages other users submitted, moved from maildrop/ into new/ before the scan
	Problems    []Problem `json:"problems"`
	// Stopped says why the run stopped before reaching every message
	// ("after --max-runtime 30s", "by SIGTERM"); LeftQueued counts the
	// messages it left in the spool untouched and still due. Both are zero
	// when the run reached everything.
	Stopped    string `json:"stopped,omitempty"`
	LeftQueued int    `json:"left_queued,omitempty"`
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
