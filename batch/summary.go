package batch

import (
	"errors"
	"time"

	"github.com/mxflush/mxflush/deliver"
	"github.com/mxflush/mxflush/mta"
)

// DomainStats is one row of the run summary: recipient counts are per
// recipient, Messages per message, Seconds wall-clock time of the worker.
type DomainStats struct {
	Domain string `json:"domain"`
	// Site names the destination site whose sessions carried the
	// domain's mail (see SiteStats): its primary MX host, or the next
	// hop's key for mail sent by routes or --smarthost. "" when the
	// domain could not be resolved.
	Site       string   `json:"site,omitempty"`
	MX         []string `json:"mx,omitempty"`    // hosts in the order tried, "name[addr,addr]"
	Relay      string   `json:"relay,omitempty"` // last relay that answered, "host[ip]:port"
	Messages   int      `json:"messages"`
	Recipients int      `json:"recipients"`
	Delivered  int      `json:"delivered"`
	Deferred   int      `json:"deferred"`
	Failed     int      `json:"failed"`
	// Connections counts the SMTP sessions opened for the row: the
	// site's, when the domain is alone on its site; 0 in a site of several
	// domains, whose connections are counted once, in Summary.Sites.
	Connections int     `json:"connections"`
	Seconds     float64 `json:"seconds"`
	Error       string  `json:"error,omitempty"` // a domain-wide failure: DNS, or no reachable MX
	Pass        string  `json:"pass,omitempty"`  // "" for the main pass, "bounces" for the DSNs delivered after it
	// TLS counts the sessions by their security: "TLSv1.3:verified",
	// "TLSv1.2:unverified", "TLSv1.3:dane", "none", or "none (TLS failed,
	// sent without TLS)".
	TLS map[string]int `json:"tls,omitempty"`
	// ConfigError is set when a session failed for a configuration reason
	// (credentials refused or missing, or not sendable without TLS): the
	// messages are deferred and the run exits 78 (EX_CONFIG).
	ConfigError string `json:"config_error,omitempty"`
}

// SiteStats is one destination site of a pass: the domains whose MX hosts
// (names and preferences) are the same share its sessions (RFC 5321 §5.1
// makes the hosts, not the domain, the peer of an SMTP session), as do
// the domains of one route or smart host.
type SiteStats struct {
	Name        string         `json:"name"`
	Domains     []string       `json:"domains"`
	MX          []string       `json:"mx,omitempty"`
	Messages    int            `json:"messages"`    // messages the site carried, once each however many of its domains they were for
	Sessions    int            `json:"sessions"`    // workers the site had at most, each with its own session at a time
	Connections int            `json:"connections"` // SMTP sessions opened in all (a lost session is replaced by a new one)
	Seconds     float64        `json:"seconds"`
	TLS         map[string]int `json:"tls,omitempty"`
	Pass        string         `json:"pass,omitempty"`
	// CopiesSaved counts the DATA transfers the site's sessions did not
	// make because one transaction carried a message to several of its
	// domains: a message delivered to recipients in three domains of the
	// site saves two.
	CopiesSaved int `json:"copies_saved,omitempty"`
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
	// Sites lists the sites the domains' mail went to, with their
	// sessions and connections (see SiteStats).
	Sites  []SiteStats `json:"sites"`
	Totals DomainStats `json:"totals"`
	NotDue int         `json:"not_due"` // messages waiting for their next attempt, not tried
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
	}
	for _, site := range s.Sites {
		t.Connections += site.Connections
	}
	s.Totals = t
}

// tally is what a worker counts, and what a site sums over its workers:
// the sessions' facts (connections, relay, security, the failure that
// ended them) once, and the recipient outcomes per batch key.
type tally struct {
	DomainStats                         // Connections, Relay, TLS, Error, ConfigError
	rows        map[string]*DomainStats // Delivered, Deferred, Failed by batch key
	saved       int                     // DATA transfers saved by transactions for several domains (see copiesSaved)
}

// row returns the counts of one batch key.
func (t *tally) row(key string) *DomainStats {
	if t.rows == nil {
		t.rows = map[string]*DomainStats{}
	}
	r := t.rows[key]
	if r == nil {
		r = &DomainStats{Domain: key}
		t.rows[key] = r
	}
	return r
}

// add sums w into t.
func (t *tally) add(w *tally) {
	t.Connections += w.Connections
	t.saved += w.saved
	if w.Relay != "" {
		t.Relay = w.Relay
	}
	if w.Error != "" && t.Error == "" {
		t.Error = w.Error
	}
	t.mergeTLS(w.DomainStats)
	for k, c := range w.rows {
		r := t.row(k)
		r.Delivered += c.Delivered
		r.Deferred += c.Deferred
		r.Failed += c.Failed
	}
}

// rowError is a site-wide failure as its rows show it: for a classified
// failure, the step and the reply ("DNS: 556 5.1.10 domain has a null
// MX ..."), without the permanence (the row's columns say it) or the
// domain (the row names it); anything else as it is.
func rowError(err error) string {
	if e, ok := err.(*mta.Error); ok {
		return e.Command + ": " + e.Reply()
	}
	return err.Error()
}

// addTLS counts one session by its security, for DomainStats.TLS.
func (st *DomainStats) addTLS(t deliver.TLSState) {
	if st.TLS == nil {
		st.TLS = map[string]int{}
	}
	st.TLS[tlsLabel(t)]++
}

// tlsLabel is "TLSv1.3:verified", "none", or "none (TLS failed, sent
// without TLS)".
func tlsLabel(t deliver.TLSState) string {
	if t.Note != "" {
		return t.Token() + " (" + t.Note + ")"
	}
	return t.Token()
}

// mergeTLS adds a worker's per-session counts and configuration error to
// the domain's row.
func (st *DomainStats) mergeTLS(w DomainStats) {
	for k, n := range w.TLS {
		if st.TLS == nil {
			st.TLS = map[string]int{}
		}
		st.TLS[k] += n
	}
	if st.ConfigError == "" {
		st.ConfigError = w.ConfigError
	}
}

// tlsNote is the event's note on a session that went without TLS after
// trying it: "TLS failed, sent without TLS: <reason>"; "" otherwise.
func tlsNote(t deliver.TLSState) string {
	if t.Note == "" {
		return ""
	}
	return t.Note + ": " + t.Detail
}

// noteConfig records in st the first configuration error (a
// *mta.Error with Config set): the run then exits 78.
func (st *DomainStats) noteConfig(err error) {
	var de *mta.Error
	if st.ConfigError == "" && errors.As(err, &de) && de.Config {
		st.ConfigError = de.Msg
	}
}
