package route

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/idna"

	"github.com/mxflush/mxflush/deliver"
)

// Rule is one line of a routes file: recipient domains that match Pattern
// go to Hop.
type Rule struct {
	Pattern string // "example.com" (that domain), ".example.com" (its subdomains), or "*" (any domain)
	Hop     Hop
}

// ParseRoutes reads a routes file, one rule a line, in the spirit of
// Postfix's transport(5) table:
//
//	PATTERN  NEXTHOP  [tls=MODE] [bind=ADDR] [conns=N]
//
// PATTERN is a domain ("example.com"), its subdomains (".example.com" or
// "*.example.com", not the domain itself), or "*" for every other domain.
// NEXTHOP is "smtp:" or, for implicit TLS on port 465 (RFC 8314),
// "smtps:", followed by nothing (the recipient domain's own MX), or by
// targets separated by commas, tried in order: "[host]" or "[host]:port"
// (that host's addresses, no MX lookup), "host" or "host:port" (the MX of
// host, as Postfix does), or an IP address. MODE is none, may, encrypt,
// verify or dane. ADDR is the source address of the hop's connections,
// instead of --bind (as Postfix's smtp_bind_address). N caps the sessions
// at once to the hop, or to each site its domains' MX hosts form, below
// --conns-per-site (as Postfix's per-transport destination concurrency
// limit); the smallest cap of a site's domains applies. "#" starts a
// comment line; blank lines are skipped.
//
// name is used in errors: "routes.txt:3: ...". A pattern given twice is an
// error.
func ParseRoutes(r io.Reader, name string) ([]Rule, error) {
	var rules []Rule
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		where := fmt.Sprintf("%s:%d", name, n)
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("%s: want PATTERN NEXTHOP [tls=MODE], e.g. \"example.com smtp:[relay.example.net]:587\"", where)
		}
		pat, err := parsePattern(f[0])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if prev, dup := seen[pat]; dup {
			return nil, fmt.Errorf("%s: pattern %s already has a rule on line %d", where, f[0], prev)
		}
		seen[pat] = n
		hop, err := parseNextHop(f[1])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		given := map[string]bool{}
		for _, opt := range f[2:] {
			k, v, _ := strings.Cut(opt, "=")
			if given[k] {
				return nil, fmt.Errorf("%s: option %s= given twice", where, k)
			}
			given[k] = true
			switch k {
			case "tls":
				if hop.TLS, err = deliver.ParseTLSMode(v); err != nil {
					return nil, fmt.Errorf("%s: %w", where, err)
				}
				hop.TLSSet = true
			case "bind":
				a, err := netip.ParseAddr(v)
				if err != nil || a.Zone() != "" {
					return nil, fmt.Errorf("%s: bind=%q: want an IP address of this host", where, v)
				}
				hop.Bind = a.Unmap()
			case "conns":
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 {
					return nil, fmt.Errorf("%s: conns=%q: want a number of sessions, 1 or more", where, v)
				}
				hop.Conns = n
			default:
				return nil, fmt.Errorf("%s: unknown option %q (options: tls=MODE, bind=ADDR, conns=N)", where, opt)
			}
		}
		hop.Source = where
		rules = append(rules, Rule{Pattern: pat, Hop: hop})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return rules, nil
}

// ParseSmarthost reads --smarthost HOST[:PORT][,HOST[:PORT]...]: relays
// tried in order, each by its own addresses (no MX lookup), with or
// without brackets; "[::1]:25" for IPv6.
func ParseSmarthost(spec string) (Hop, error) {
	var hop Hop
	for _, t := range strings.Split(spec, ",") {
		tg, err := parseTarget(strings.TrimSpace(t))
		if err != nil {
			return Hop{}, fmt.Errorf("--smarthost %q: %w", spec, err)
		}
		tg.Static = true
		hop.Targets = append(hop.Targets, tg)
	}
	hop.Source = "--smarthost"
	return hop, nil
}

func parsePattern(p string) (string, error) {
	if p == "*" {
		return p, nil
	}
	sub := false
	switch {
	case strings.HasPrefix(p, "*."):
		p, sub = p[2:], true
	case strings.HasPrefix(p, "."):
		p, sub = p[1:], true
	}
	d, err := domainName(p)
	if err != nil {
		return "", fmt.Errorf("pattern %q: %w", p, err)
	}
	if sub {
		d = "." + d
	}
	return d, nil
}

// domainName is a domain in lower-case A-label form without a trailing dot.
func domainName(s string) (string, error) {
	a, err := idna.Lookup.ToASCII(strings.TrimSuffix(s, "."))
	if err != nil || a == "" || strings.ContainsAny(a, "[]:*/ ") {
		return "", fmt.Errorf("%q is not a domain name", s)
	}
	return strings.ToLower(a), nil
}

func parseNextHop(s string) (Hop, error) {
	var hop Hop
	switch {
	case strings.HasPrefix(s, "smtp:"):
		s = s[len("smtp:"):]
	case strings.HasPrefix(s, "smtps:"):
		s, hop.Implicit = s[len("smtps:"):], true
	default:
		return Hop{}, fmt.Errorf("next hop %q: want smtp:... or smtps:...", s)
	}
	if s == "" {
		return hop, nil // the recipient domain's own MX
	}
	for _, t := range strings.Split(s, ",") {
		tg, err := parseTarget(t)
		if err != nil {
			return Hop{}, fmt.Errorf("next hop %q: %w", s, err)
		}
		hop.Targets = append(hop.Targets, tg)
	}
	return hop, nil
}

// parseTarget reads "[host]:port", "[host]", "host:port" or "host". An IP
// address is always static; "[ipv6:...]" is accepted as Postfix writes it.
func parseTarget(s string) (Target, error) {
	var t Target
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 {
			return t, fmt.Errorf("target %q: no closing bracket", s)
		}
		host, t.Static = s[1:end], true
		rest := s[end+1:]
		if rest != "" {
			var ok bool
			if port, ok = strings.CutPrefix(rest, ":"); !ok {
				return t, fmt.Errorf("target %q: want [host] or [host]:port", s)
			}
		}
		if len(host) > 5 && strings.EqualFold(host[:5], "ipv6:") {
			host = host[5:]
		}
	} else if i := strings.LastIndex(s, ":"); i >= 0 {
		host, port = s[:i], s[i+1:]
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return t, fmt.Errorf("target %q: port must be a number from 1 to 65535", s)
		}
		t.Port = n
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		t.Host, t.Static = ip.String(), true
		return t, nil
	}
	d, err := domainName(host)
	if err != nil {
		return t, fmt.Errorf("target %q: %w", s, err)
	}
	t.Host = d
	return t, nil
}
