//go:build linux

package interop

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mxflush/mxflush/internal/testnet"
)

// The DNS chain: nsd, authoritative for test. (signed) and its child
// zones, behind unbound, which validates with the DS of test.'s KSK as
// its only trust anchor. mxflush asks unbound.
const (
	ipNSD     = "127.0.31.53"
	ipUnbound = "127.0.31.54"
)

// dnsChain is the running nsd and unbound.
type dnsChain struct {
	dir     string
	nsd     *exec.Cmd
	unbound *exec.Cmd
	addr    string // unbound's address, for --dns
}

// needDNS returns the shared DNS chain (and the Postfix instance its
// zones point at), starting it on first use, or skips the test when a
// program it needs is not installed.
func needDNS(t *testing.T) (*dnsChain, *postfix) {
	t.Helper()
	pf := needPostfix(t)
	shared.dnsOnce.Do(func() {
		if shared.dnsSkip = needProgs("nsd", "unbound", "ldns-keygen", "ldns-signzone"); shared.dnsSkip != "" {
			return
		}
		shared.dns, shared.dnsErr = startDNS(pf)
	})
	if shared.dnsSkip != "" {
		t.Skip(shared.dnsSkip)
	}
	if shared.dnsErr != nil {
		t.Fatal(shared.dnsErr)
	}
	return shared.dns, pf
}

// manyMX is the number of MX records of many.test: with names this long
// their answer exceeds unbound's 1232-octet UDP limit, so it comes over
// TCP.
const manyMX = 40

// zone is one zone nsd serves: test. and its children.
type zone struct {
	name string // with the trailing dot
	text string // unsigned
	// How it is signed: validly, with signatures that expired a week ago
	// (the validator calls them bogus, RFC 4035 §5.3.1), or not at all
	// (delegated without DS: provably insecure, RFC 4035 §5.2).
	signing int
}

const (
	signedValid = iota
	signedExpired
	unsignedZone
)

// zones returns the zones for a Postfix instance, test. last (it holds
// its signed children's DS records): every MX host is the listener at
// ipNormal (or ::1), and the TLSA records name its port.
func zones(pf *postfix) ([]zone, error) {
	tlsa := func(usage, selector, matching uint8, cert *x509.Certificate) (string, error) {
		line, err := testnet.TLSALine("x.test", usage, selector, matching, cert)
		if err != nil {
			return "", err
		}
		// The record's data alone: "x.test. 300 IN TLSA 3 1 1 <hex>".
		f := strings.Fields(line)
		return strings.Join(f[len(f)-4:], " "), nil
	}
	ee, err := tlsa(3, 1, 1, pf.cert) // DANE-EE: the server's key
	if err != nil {
		return nil, err
	}
	ta, err := tlsa(2, 0, 1, pf.ca) // DANE-TA: the CA's certificate
	if err != nil {
		return nil, err
	}
	wrong := "3 1 1 " + strings.Repeat("ab", 32)
	p := strconv.Itoa(pf.port)

	soa := "@ SOA ns.test. hostmaster.test. 1 3600 600 86400 60\n@ NS ns.test.\n"
	var b strings.Builder
	fmt.Fprintf(&b, "$ORIGIN test.\n$TTL 300\n%sns A %s\n", soa, ipNSD)
	// The most preferred host is unreachable: nothing listens there.
	fmt.Fprintf(&b, "pref MX 10 down.pref\npref MX 20 mx.pref\ndown.pref A %s\nmx.pref A %s\n", ipNothing, ipNormal)
	b.WriteString("nullmx MX 0 .\n") // RFC 7505
	fmt.Fprintf(&b, "cname MX 10 alias.cname\nalias.cname CNAME mx.cname\nmx.cname A %s\n", ipNormal)
	b.WriteString("v6 MX 10 mx.v6\nmx.v6 AAAA ::1\n")
	fmt.Fprintf(&b, "implicit A %s\n", ipNormal)
	for i := 1; i <= manyMX; i++ {
		fmt.Fprintf(&b, "many MX 10 mail-exchanger-number-%02d.many\nmail-exchanger-number-%02d.many A %s\n", i, i, ipNormal)
	}
	// DANE (RFC 7672): records that match, records that do not, and a CNAME'd
	// MX host whose records are at the name the chain leads to (the wrong
	// ones at the alias must be passed over).
	fmt.Fprintf(&b, "dane MX 10 mx.dane\nmx.dane A %s\n_%s._tcp.mx.dane TLSA %s\n", ipNormal, p, ee)
	fmt.Fprintf(&b, "danebad MX 10 mx.danebad\nmx.danebad A %s\n_%s._tcp.mx.danebad TLSA %s\n", ipNormal, p, wrong)
	fmt.Fprintf(&b, "danecname MX 10 mx.danecname\nmx.danecname CNAME mx.provider\nmx.provider A %s\n", ipNormal)
	fmt.Fprintf(&b, "_%s._tcp.mx.provider TLSA %s\n_%s._tcp.mx.danecname TLSA %s\n", p, ee, p, wrong)
	// DANE-TA: the certificate must also name the MX host (RFC 7672
	// §3.2.2); it names *.pf.test.
	fmt.Fprintf(&b, "danetaok MX 10 ta.pf\nta.pf A %s\n_%s._tcp.ta.pf TLSA %s\n", ipNormal, p, ta)
	fmt.Fprintf(&b, "danetabad MX 10 mx.danetabad\nmx.danetabad A %s\n_%s._tcp.mx.danetabad TLSA %s\n", ipNormal, p, ta)
	// expired.test's MX host is in this zone, its TLSA records in a child
	// zone whose signatures have expired: they are bogus.
	fmt.Fprintf(&b, "expired MX 10 mx.expired\nmx.expired A %s\n_tcp.mx.expired NS ns.test.\n", ipNormal)
	// Two MX hosts: the preferred one's TLSA records are bogus, the
	// other's match.
	b.WriteString("danefallback MX 10 mx.expired\ndanefallback MX 20 mx.dane\n")
	// RFC 7672 §2.2.1, §2.2.2: a domain that is an authenticated alias of
	// dane.test keeps DANE; an implicit MX in this zone gets DANE from its
	// own TLSA records; one whose name is an alias into unsigned.test (the
	// MX denial and the addresses are insecure) gets none, though its TLSA
	// records here are authenticated (and do not match).
	b.WriteString("cnamedane CNAME dane\n")
	fmt.Fprintf(&b, "implicitdane A %s\n_%s._tcp.implicitdane TLSA %s\n", ipNormal, p, ee)
	fmt.Fprintf(&b, "implicitinsecure CNAME host.unsigned.test.\n_%s._tcp.implicitinsecure TLSA %s\n", p, wrong)
	// bogus.test is a child zone whose signatures have all expired: its
	// MX answer is bogus.
	b.WriteString("bogus NS ns.test.\n")
	// unsigned.test is delegated without DS.
	b.WriteString("unsigned NS ns.test.\n")
	// nosuch.test does not exist (NXDOMAIN, proven by NSEC).

	return []zone{
		{"_tcp.mx.expired.test.", fmt.Sprintf("$ORIGIN _tcp.mx.expired.test.\n$TTL 300\n%s_%s TLSA %s\n", soa, p, ee), signedExpired},
		{"bogus.test.", fmt.Sprintf("$ORIGIN bogus.test.\n$TTL 300\n%s@ MX 10 mx\nmx A %s\n", soa, ipNormal), signedExpired},
		{"unsigned.test.", fmt.Sprintf("$ORIGIN unsigned.test.\n$TTL 300\n%s@ MX 10 mx\nmx A %s\n_%s._tcp.mx TLSA %s\n"+
			"insecuremx MX 10 mx.danebad.test.\ninsecurecname CNAME danebad.test.\nhost A %s\n", soa, ipNormal, p, wrong, ipNormal), unsignedZone},
		{"test.", b.String(), signedValid},
	}, nil
}

func startDNS(pf *postfix) (*dnsChain, error) {
	dir, err := os.MkdirTemp("", "mxflush-interop-dns-")
	if err != nil {
		return nil, err
	}
	c := &dnsChain{dir: dir}
	if err := c.start(pf); err != nil {
		if stopErr := c.stop(); stopErr != nil {
			err = fmt.Errorf("%w\n%v", err, stopErr)
		}
		return nil, err
	}
	return c, nil
}

// ldns runs an ldnsutils program in the chain's directory and returns its
// output's first line.
func (c *dnsChain) ldns(prog string, args ...string) (string, error) {
	path, err := lookProg(prog)
	if err != nil {
		return "", err
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = c.dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w\n%s", prog, strings.Join(args, " "), err, stderr.Bytes())
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line), nil
}

// signed writes zone's text, makes it a KSK and a ZSK and signs it valid
// from from until until, and returns the file of the KSK's DS record.
func (c *dnsChain) signed(zone, text string, from, until time.Time) (string, error) {
	file := filepath.Join(c.dir, zone+"zone")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		return "", err
	}
	ksk, err := c.ldns("ldns-keygen", "-a", "ECDSAP256SHA256", "-k", zone)
	if err != nil {
		return "", err
	}
	zsk, err := c.ldns("ldns-keygen", "-a", "ECDSAP256SHA256", zone)
	if err != nil {
		return "", err
	}
	stamp := func(t time.Time) string { return t.UTC().Format("20060102150405") }
	if _, err := c.ldns("ldns-signzone", "-i", stamp(from), "-e", stamp(until),
		"-f", file+".signed", file, zsk, ksk); err != nil {
		return "", err
	}
	return filepath.Join(c.dir, ksk+".ds"), nil
}

func (c *dnsChain) start(pf *postfix) error {
	zs, err := zones(pf)
	if err != nil {
		return err
	}
	now := time.Now()
	var ds, trustAnchor string // the children's DS records; test.'s
	for _, z := range zs {
		text := z.text
		if z.name == "test." {
			text += ds
		}
		from, until := now.Add(-time.Hour), now.Add(24*time.Hour)
		switch z.signing {
		case unsignedZone:
			if err := os.WriteFile(filepath.Join(c.dir, z.name+"zone.signed"), []byte(text), 0o644); err != nil {
				return err
			}
			continue
		case signedExpired:
			// A week ago: unbound forgives up to a day's clock skew
			// (val-sig-skew-max).
			from, until = now.Add(-60*24*time.Hour), now.Add(-7*24*time.Hour)
		}
		dsFile, err := c.signed(z.name, text, from, until)
		if err != nil {
			return err
		}
		if z.name == "test." {
			trustAnchor = dsFile
			break
		}
		b, err := os.ReadFile(dsFile)
		if err != nil {
			return err
		}
		ds += string(b)
	}

	ports, err := freeUDPTCP(ipNSD, ipUnbound)
	if err != nil {
		return err
	}
	nsdAddr := fmt.Sprintf("%s@%d", ipNSD, ports[0])
	c.addr = fmt.Sprintf("%s:%d", ipUnbound, ports[1])

	// nsd: no rate limit (unbound asks it a few hundred times), no
	// database, no chroot, no user change, every file in c.dir.
	nsdConf := fmt.Sprintf(`server:
	ip-address: %[2]s
	port: %[3]d
	do-ip6: no
	username: ""
	chroot: ""
	zonesdir: "%[1]s"
	database: ""
	zonelistfile: "%[1]s/zone.list"
	xfrdfile: "%[1]s/xfrd.state"
	xfrdir: "%[1]s"
	pidfile: "%[1]s/nsd.pid"
	logfile: "%[1]s/nsd.log"
	server-count: 1
	rrl-ratelimit: 0
	verbosity: 1
remote-control:
	control-enable: no
`, c.dir, ipNSD, ports[0])
	for _, z := range zs {
		nsdConf += fmt.Sprintf("zone:\n\tname: %q\n\tzonefile: %q\n", z.name, z.name+"zone.signed")
	}
	// unbound: validating (its only trust anchor is test.'s DS), asking
	// nothing but nsd, answering over UDP in at most 1232 octets (the
	// DNS flag day 2020 size) so that a large answer is truncated.
	ubConf := fmt.Sprintf(`server:
	interface: %[2]s
	port: %[3]d
	do-ip6: no
	access-control: 127.0.0.0/8 allow
	username: ""
	chroot: ""
	directory: "%[1]s"
	pidfile: "%[1]s/unbound.pid"
	logfile: "%[1]s/unbound.log"
	use-syslog: no
	verbosity: 1
	val-log-level: 2
	num-threads: 1
	so-reuseport: no
	module-config: "validator iterator"
	trust-anchor-file: "%[4]s"
	do-not-query-localhost: no
	local-zone: "test." nodefault
	qname-minimisation: no
	max-udp-size: 1232
	edns-buffer-size: 1232
remote-control:
	control-enable: no
forward-zone:
	name: "."
	forward-addr: %[5]s
`, c.dir, ipUnbound, ports[1], trustAnchor, nsdAddr)
	for _, z := range zs {
		ubConf += fmt.Sprintf("stub-zone:\n\tname: %q\n\tstub-addr: %s\n", z.name, nsdAddr)
	}
	for name, text := range map[string]string{"nsd.conf": nsdConf, "unbound.conf": ubConf} {
		if err := os.WriteFile(filepath.Join(c.dir, name), []byte(text), 0o644); err != nil {
			return err
		}
	}

	if c.nsd, err = c.daemon("nsd", "-d", "-c", filepath.Join(c.dir, "nsd.conf")); err != nil {
		return err
	}
	if err := c.ready(fmt.Sprintf("%s:%d", ipNSD, ports[0]), false, "nsd.log"); err != nil {
		return err
	}
	if c.unbound, err = c.daemon("unbound", "-d", "-c", filepath.Join(c.dir, "unbound.conf")); err != nil {
		return err
	}
	// Ready means validating: test.'s SOA comes back authenticated.
	return c.ready(c.addr, true, "unbound.log")
}

// freeUDPTCP returns, for each address, a port free for both UDP and TCP
// there.
func freeUDPTCP(ips ...string) ([]int, error) {
	var ports []int
	for _, ip := range ips {
		for try := 0; ; try++ {
			port, err := testnet.FreePort(ip)
			if err != nil {
				return nil, err
			}
			pc, err := net.ListenPacket("udp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err == nil {
				pc.Close()
				ports = append(ports, port)
				break
			}
			if try == 20 {
				return nil, fmt.Errorf("no port free for UDP and TCP on %s: %w", ip, err)
			}
		}
	}
	return ports, nil
}

// daemon starts a DNS server in the foreground as a child of the test
// process, killed if the test process dies first.
func (c *dnsChain) daemon(prog string, args ...string) (*exec.Cmd, error) {
	path, err := lookProg(prog)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = c.dir
	out, err := os.Create(filepath.Join(c.dir, prog+".out"))
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", prog, err)
	}
	return cmd, nil
}

// ready waits up to 10 s for the server at addr to answer test.'s SOA,
// authenticated if ad.
func (c *dnsChain) ready(addr string, ad bool, logName string) error {
	var last string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		m, err := query(addr, "test.", dns.TypeSOA, false)
		switch {
		case err != nil:
			last = err.Error()
		case m.Rcode != dns.RcodeSuccess || len(m.Answer) == 0:
			last = "answer: " + m.String()
		case ad && !m.AuthenticatedData:
			last = "test.'s SOA not validated: " + m.String()
		default:
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(c.dir, logName))
	out, _ := os.ReadFile(filepath.Join(c.dir, strings.TrimSuffix(logName, ".log")+".out"))
	return fmt.Errorf("DNS server at %s not ready after 10 s: %s\n%s%s", addr, last, log, out)
}

// query asks addr over UDP with DO set and a 1232-octet EDNS buffer,
// without retrying over TCP when truncated.
func query(addr, name string, qtype uint16, tcp bool) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(1232, true)
	cl := &dns.Client{Timeout: 2 * time.Second}
	if tcp {
		cl.Net = "tcp"
	}
	r, _, err := cl.Exchange(m, addr)
	return r, err
}

// stop stops unbound and nsd (each by its pid: they run in the
// foreground as the test's children) and nsd's server process, and
// removes the directory.
func (c *dnsChain) stop() error {
	var errs []error
	for _, cmd := range []*exec.Cmd{c.unbound, c.nsd} {
		if cmd == nil || cmd.Process == nil {
			continue
		}
		pids := children(cmd.Process.Pid)
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			errs = append(errs, fmt.Errorf("%s outlived SIGTERM by 10 s and was killed", cmd.Path))
		}
		if left := waitGone(pids, 10*time.Second); len(left) > 0 {
			errs = append(errs, fmt.Errorf("%s's processes %v outlived it by 10 s and were killed", cmd.Path, left))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w; %s left in place", errors.Join(errs...), c.dir)
	}
	return os.RemoveAll(c.dir)
}
