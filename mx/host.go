package mx

import (
	"context"
	"net/netip"
	"strings"

	"golang.org/x/net/idna"

	"github.com/mxflush/mxflush/mta"
)

// Host resolves one named host, without any MX lookup: a relay given as
// "[relay.example.net]" or an IP address (RFC 5321 §5.1 does not apply to
// it). An IP address is its own address; a name gets its A then AAAA
// records, CNAMEs followed. Every failure, NXDOMAIN included, is a
// temporary *mta.Error (4.4.4 no address, 4.4.3 DNS failure): a relay that
// cannot be found is a configuration or network problem, never a reason to
// bounce the mail.
func (r *Resolver) Host(ctx context.Context, name string) (mta.Host, error) {
	if ip, err := netip.ParseAddr(name); err == nil {
		return mta.Host{Name: ip.String(), Addrs: []netip.Addr{ip.Unmap()}}, nil
	}
	a, err := idna.Lookup.ToASCII(strings.TrimSuffix(name, "."))
	if err != nil || a == "" {
		return mta.Host{}, temporary(name, "4.4.4", "relay host is not a valid host name", err)
	}
	a = strings.ToLower(a)
	if r.Server == "" {
		return mta.Host{}, temporary(a, "4.3.5", "no DNS server configured", nil)
	}
	addrs, _, err := r.hostAddrs(ctx, a)
	if len(addrs) > 0 {
		return mta.Host{Name: a, Addrs: addrs}, nil
	}
	if err != nil && !isNXDomain(err) {
		return mta.Host{}, temporary(a, "4.4.3", "address lookup of the relay host failed", err)
	}
	return mta.Host{}, temporary(a, "4.4.4", "relay host has no A or AAAA records", err)
}
