package mx

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// ServerAddr checks a DNS server given as HOST:PORT and returns it as
// IP:PORT for Resolver.Server. HOST is an IP address, or a name listed in
// the hosts(5) file at hostsPath (such as localhost), whose first address
// is taken. It is never resolved through DNS: the server it names is the
// one every query goes to, so asking the system's resolver for it would
// send a query where the operator said none should go. Errors name the
// value and the forms allowed.
func ServerAddr(hostport, hostsPath string) (string, error) {
	host, port, err := net.SplitHostPort(hostport)
	n, portErr := strconv.Atoi(port)
	if err != nil || portErr != nil || n < 1 || n > 65535 || host == "" {
		return "", fmt.Errorf("%q: want HOST:PORT with a port from 1 to 65535, for example 127.0.0.1:53, [::1]:53 or localhost:53", hostport)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return "", fmt.Errorf("%q: an address with a zone (%%%s) is not taken; give the address alone", hostport, ip.Zone())
		}
		return net.JoinHostPort(ip.String(), port), nil
	}
	ip, err := hostsLookup(hostsPath, host)
	if err != nil {
		return "", fmt.Errorf("%q: %w (a name must be in %s: it is never looked up in DNS)", hostport, err, hostsPath)
	}
	return net.JoinHostPort(ip.String(), port), nil
}

// HostsEntry is one line of a hosts(5) file: an address and its names,
// the canonical name first.
type HostsEntry struct {
	Addr  netip.Addr
	Names []string
}

// HostsFile reads a hosts(5) file ("#" starts a comment; a line whose
// first field is not an address, or has no name, is skipped), for the
// names that must be found without DNS: the --dns server's, and this
// host's fully qualified name.
func HostsFile(path string) ([]HostsEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []HostsEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		ip, err := netip.ParseAddr(fields[0])
		if err != nil || ip.Zone() != "" {
			continue
		}
		out = append(out, HostsEntry{Addr: ip, Names: fields[1:]})
	}
	return out, sc.Err()
}

// hostsLookup returns the first address the hosts file gives name
// (case-insensitive, canonical name or alias).
func hostsLookup(path, name string) (netip.Addr, error) {
	entries, err := HostsFile(path)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, e := range entries {
		for _, h := range e.Names {
			if strings.EqualFold(strings.TrimSuffix(h, "."), strings.TrimSuffix(name, ".")) {
				return e.Addr, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("host %q is not an IP address and not in %s", name, path)
}
