package batch

import (
	"github.com/mxflush/mxflush/deliver"
)

// Router sends each domain to its next hop; *route.Table is one. When
// Config.Resolver is also a Router, recipients are grouped by the key Hop
// returns instead of by domain: domains with the same next hop share one
// batch, so they share its connection limit and its sessions. The batch's
// Domain (and summary row) is then the key, Lookup resolves it, and every
// session of the batch is dialled with Options(key, Config.Deliver): TLS
// policy and credentials per hop.
type Router interface {
	Resolver
	Hop(domain string) string
	// Relay reports whether a key from Hop is a relay's (a route with
	// targets, or the smart host) rather than a domain's own MX: a
	// relay's batch is never grouped into a site with other domains.
	Relay(key string) bool
	// Conns is the session cap of a key's rule, or 0 when it has none: a
	// site's cap is the smallest of its domains' caps and ConnsPerSite.
	Conns(key string) int
	Options(hop string, base deliver.Options) deliver.Options
}

// hopKey is the run's grouping function: the Router's, or nil (by domain).
func (c Config) hopKey() func(string) string {
	if rt, ok := c.Resolver.(Router); ok {
		return rt.Hop
	}
	return nil
}

// siteCap is how many sessions at once a site of batches may have:
// ConnsPerSite, or less when a route rule of one of its keys says so.
func (c Config) siteCap(batches []*Batch) int {
	n := max(c.ConnsPerSite, 1)
	if rt, ok := c.Resolver.(Router); ok {
		for _, b := range batches {
			if k := rt.Conns(b.Domain); k > 0 {
				n = min(n, k)
			}
		}
	}
	return n
}

// dialOptions returns the options for the sessions of the batch with key.
func (c Config) dialOptions(key string) deliver.Options {
	if rt, ok := c.Resolver.(Router); ok {
		return rt.Options(key, c.Deliver)
	}
	return c.Deliver
}
