package batch

import (
	"context"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/mxflush/mxflush/mta"
)

// resolveInFlight is how many next hops are looked up at once before a
// pass delivers, at most (and no more than MaxConns). Each lookup is an MX query and then the address queries
// of its hosts (concurrent per host), so a few dozen keep a resolver busy
// without flooding it: 500 domains resolve in about 16 round trips to the
// DNS server instead of 1,500 one after another.
const resolveInFlight = 32

// hop is a resolved next hop: the hosts to dial, in order, or why there
// are none.
type hop struct {
	hosts []mta.Host
	mxs   []string // describeHost of each host, for the summary row
	err   error
}

// routeCache holds the run's lookups, answers and failures alike, by
// batch key: the bounce pass, whose DSNs mostly go to domains the main
// pass already resolved, asks no query twice, and a domain that failed to
// resolve is not asked again within the run (its mail waits for the next).
type routeCache struct {
	mu sync.Mutex
	m  map[string]*hop
}

// get returns the cached lookup of key, or nil.
func (c *routeCache) get(key string) *hop {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key]
}

// resolveAll looks up every batch's key not yet in the cache, at most
// resolveInFlight at a time, before any session opens: a run's sessions
// then start with their routes known, and one slow DNS answer delays its
// own domain only. The lookups stop early when ctx ends; a key left
// unresolved gets ctx's error.
func (r *runner) resolveAll(ctx context.Context, batches []*Batch) {
	c := &r.routes
	var todo []string
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]*hop{}
	}
	for _, b := range batches {
		if _, ok := c.m[b.Domain]; !ok {
			c.m[b.Domain] = nil // claimed: asked once even if two batches share a key
			todo = append(todo, b.Domain)
		}
	}
	c.mu.Unlock()
	var g errgroup.Group
	// No more lookups in flight than sessions at once: each holds a UDP
	// socket or two, and a run's open files stay bounded by its
	// connection limit (2 x --max-conns + 16 in bench/run's table).
	g.SetLimit(min(resolveInFlight, max(r.cfg.MaxConns, 4)))
	for _, key := range todo {
		g.Go(func() error {
			h := &hop{}
			if err := ctx.Err(); err != nil {
				h.err = err
			} else if route, err := r.cfg.Resolver.Lookup(ctx, key); err != nil {
				h.err = err
			} else {
				h.hosts = route.Hosts
				for _, host := range route.Hosts {
					h.mxs = append(h.mxs, describeHost(host))
				}
			}
			c.mu.Lock()
			c.m[key] = h
			c.mu.Unlock()
			return nil
		})
	}
	_ = g.Wait() // lookups never return errors: a failure is the hop's
	// The sockets kept for the next queries are closed while the pass
	// delivers: it asks little more (TLSA lookups under dane), and its
	// open files are then its sessions' and messages' alone.
	if c, ok := r.cfg.Resolver.(interface{ Close() }); ok {
		c.Close()
	}
}
