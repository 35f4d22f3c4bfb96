package main

import (
	"os"
	"strings"

	"github.com/mxflush/mxflush/addr"
	"github.com/mxflush/mxflush/mx"
)

// defaultAliases is the aliases file read when --aliases names none.
const defaultAliases = "/etc/mxflush/aliases"

// defaults fills the submission settings whose default depends on the
// machine or on other flags, so that mxflush config shows the value in
// effect: the origin, and the disk reserve of twice the size limit (20MiB
// without a limit: local users still must not fill the disk).
func (g *Globals) defaults() {
	if g.Origin == "" {
		g.Origin = hostFQDN(os.Hostname, "/etc/hosts")
	}
	if g.MinFree == nil {
		v := 2 * g.MaxMessageSize
		if v <= 0 {
			v = 20 << 20
		}
		g.MinFree = &v
	}
}

// hostFQDN is this host's fully qualified name without a DNS query (a
// submission must work with the network down): the host name when it has
// a dot, else the canonical name (the first name) of the /etc/hosts line
// that lists the host name, when that has a dot, as hostname -f finds it
// through files; else the host name; else "localhost".
func hostFQDN(hostname func() (string, error), hostsFile string) string {
	h, err := hostname()
	if err != nil || !validDomain(h) {
		return "localhost"
	}
	if strings.Contains(h, ".") {
		return h
	}
	entries, _ := mx.HostsFile(hostsFile) // unreadable: the host name as it is
	for _, e := range entries {
		for _, n := range e.Names {
			if strings.EqualFold(n, h) && strings.Contains(e.Names[0], ".") && validDomain(e.Names[0]) {
				return e.Names[0]
			}
		}
	}
	return h
}

// validDomain reports whether d can be the domain of an address.
func validDomain(d string) bool {
	if d == "" {
		return false
	}
	_, err := addr.Domain("postmaster@" + d)
	return err == nil
}
