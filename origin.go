package main

import (
	"bufio"
	"os"
	"strings"

	"github.com/mxflush/mxflush/addr"
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
	f, err := os.Open(hostsFile)
	if err != nil {
		return h
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		names := strings.Fields(line)
		if len(names) < 2 {
			continue
		}
		for _, n := range names[1:] {
			if strings.EqualFold(n, h) && strings.Contains(names[1], ".") && validDomain(names[1]) {
				return names[1]
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
