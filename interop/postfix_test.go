//go:build linux

package interop

import (
	"bufio"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mxflush/mxflush/internal/testnet"
)

// The receivers: one Postfix instance, one smtpd listener per address, all
// on one port (mxflush dials every MX host on its --port). The listeners
// differ from one another only by their -o lines in listeners.
const (
	ipNormal  = "127.0.31.10" // defaults: PIPELINING, 8BITMIME, SIZE, STARTTLS
	ipLimit   = "127.0.31.11" // smtpd_recipient_limit = 3
	ipSize    = "127.0.31.12" // message_size_limit = 4096
	ipErrors  = "127.0.31.13" // default error limits, without the error sleep
	ipRate    = "127.0.31.14" // two messages per client per anvil time unit
	ipPlain   = "127.0.31.15" // PIPELINING and 8BITMIME not announced, no error sleep
	ipConns   = "127.0.31.16" // one session per client at a time
	ipNothing = "127.0.31.99" // nothing listens here: an unreachable MX host
)

// sizeLimit is the listener at ipSize's message_size_limit.
const sizeLimit = 4096

// rateUnit is anvil's time unit: the listener at ipRate takes two messages
// from a client in each. Short, so that a later run is not refused too.
const rateUnit = 2 * time.Second

var listeners = []struct {
	ip   string
	opts []string
}{
	{ipNormal, nil},
	{ipLimit, []string{"smtpd_recipient_limit=3"}},
	{ipSize, []string{"message_size_limit=" + strconv.Itoa(sizeLimit)}},
	// smtpd_soft_error_limit (10) and smtpd_hard_error_limit (20) stay at
	// their defaults; only the 1 s sleep before each reply past the soft
	// limit goes, which would add 10 s and change no reply.
	{ipErrors, []string{"smtpd_error_sleep_time=0"}},
	// Clients in $mynetworks (all of 127.0.0.0/8 here) are exempt from
	// rate limits by default.
	{ipRate, []string{"smtpd_client_message_rate_limit=2", "smtpd_client_event_limit_exceptions="}},
	{ipPlain, []string{"smtpd_discard_ehlo_keywords=pipelining,8bitmime", "smtpd_error_sleep_time=0"}},
	{ipConns, []string{"smtpd_client_connection_count_limit=1", "smtpd_client_event_limit_exceptions="}},
}

// postfix is a private Postfix instance under a temporary directory,
// receiving every *.test domain into maildirs: ok1 ... ok9 in each of
// mailDomains have a mailbox, any other recipient is unknown (550 5.1.1).
type postfix struct {
	prog   string // the postfix command
	dir    string
	conf   string // config_directory
	queue  string // queue_directory
	mail   string // virtual_mailbox_base
	port   int
	ipv6   bool // a listener on [::1] too
	caFile string
	cert   *x509.Certificate // the server's, for TLSA records
	ca     *x509.Certificate // its issuer's
}

// needPostfix returns the shared Postfix instance, starting it on first
// use, or skips the test when Postfix is not installed.
func needPostfix(t *testing.T) *postfix {
	t.Helper()
	shared.pfOnce.Do(func() {
		if shared.pfSkip = needProgs("postfix", "postconf"); shared.pfSkip != "" {
			return
		}
		if os.Geteuid() != 0 {
			shared.pfSkip = "not root: postfix start must be run as root (its daemons run as the postfix user and nobody)"
			return
		}
		shared.pf, shared.pfErr = startPostfix()
	})
	if shared.pfSkip != "" {
		t.Skip(shared.pfSkip)
	}
	if shared.pfErr != nil {
		t.Fatal(shared.pfErr)
	}
	return shared.pf
}

// ipv6Works says whether this host can listen on ::1 (a container may
// have no IPv6 at all).
func ipv6Works() bool {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func startPostfix() (*postfix, error) {
	p, err := startPostfixWith(ipv6Works())
	if err != nil && p != nil && p.ipv6 {
		// A host may listen on ::1 and still have Postfix refuse IPv6:
		// the tests go on without the IPv6 MX host.
		var err2 error
		if p, err2 = startPostfixWith(false); err2 != nil {
			return nil, fmt.Errorf("%w\nwithout IPv6: %w", err, err2)
		}
		return p, nil
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// startPostfixWith starts an instance, with a listener on [::1] if ipv6.
// On failure it returns the instance (stopped and removed) to say what
// was tried, and the error.
func startPostfixWith(ipv6 bool) (*postfix, error) {
	prog, err := lookProg("postfix")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "mxflush-interop-postfix-")
	if err != nil {
		return nil, err
	}
	p := &postfix{
		prog:  prog,
		dir:   dir,
		conf:  filepath.Join(dir, "etc"),
		queue: filepath.Join(dir, "queue"),
		mail:  filepath.Join(dir, "mail"),
		ipv6:  ipv6,
	}
	if err := p.write(); err != nil {
		os.RemoveAll(dir)
		return p, err
	}
	out, err := exec.Command(prog, "-c", p.conf, "start").CombinedOutput()
	if err != nil {
		err = fmt.Errorf("postfix -c %s start: %w\n%s%s", p.conf, err, out, p.maillog())
		// The master may have started before the failure.
		if stopErr := p.stop(); stopErr != nil {
			err = fmt.Errorf("%w\n%v", err, stopErr)
		}
		return p, err
	}
	return p, nil
}

// write makes the instance's directories and files: main.cf, master.cf,
// the maps, the CA and the server's certificate.
func (p *postfix) write() error {
	ips := []string{}
	for _, l := range listeners {
		ips = append(ips, l.ip)
	}
	if p.ipv6 {
		ips = append(ips, "::1")
	}
	port, err := testnet.FreePort(ips...)
	if err != nil {
		return err
	}
	p.port = port
	// The directories must be reachable by the postfix user (smtpd reads
	// the maps) and by nobody (virtual writes the maildirs).
	for _, d := range []string{p.dir, p.conf, p.queue, filepath.Join(p.dir, "data"), p.mail} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		if err := os.Chmod(d, 0o755); err != nil {
			return err
		}
	}
	nobody, err := userIDs("nobody")
	if err != nil {
		return err
	}
	if err := os.Chown(p.mail, nobody[0], nobody[1]); err != nil {
		return err
	}
	pf, err := userIDs("postfix")
	if err != nil {
		return err
	}
	if err := os.Chown(filepath.Join(p.dir, "data"), pf[0], pf[1]); err != nil {
		return err
	}

	ca, err := testnet.NewCA("interop test CA")
	if err != nil {
		return err
	}
	cert, err := ca.Issue("mx.postfix.test", "*.pf.test")
	if err != nil {
		return err
	}
	p.cert, p.ca = cert.Leaf, ca.Cert
	p.caFile = filepath.Join(p.dir, "ca.pem")
	if err := os.WriteFile(p.caFile, ca.PEM, 0o644); err != nil {
		return err
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return err
	}
	chain := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})
	for _, der := range cert.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	if err := os.WriteFile(filepath.Join(p.conf, "server.pem"), chain, 0o600); err != nil {
		return err
	}

	protocols := "ipv4"
	if p.ipv6 {
		protocols = "all"
	}
	main := fmt.Sprintf(`# written by mxflush's interop tests
compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
inet_interfaces = loopback-only
inet_protocols = %[2]s
myhostname = mx.postfix.test
mydestination =
mynetworks = 127.0.0.0/8 [::1]/128
relay_domains =
# Nothing of the machine's own mail configuration (/etc/aliases).
alias_maps =
alias_database =
local_recipient_maps =
# Nothing leaves loopback: no DNS lookups (smtpd's reverse lookup of the
# client included), and no mail sent anywhere (a bounce Postfix makes
# for a *.test sender goes to a maildir or nowhere).
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
default_transport = error:the interop tests send no mail out
relay_transport = error:the interop tests send no mail out
biff = no
smtpd_banner = $myhostname ESMTP
# No header added or rewritten for these clients: the message must arrive
# as mxflush sent it, below Postfix's Return-Path, Delivered-To and
# Received fields.
local_header_rewrite_clients =
virtual_mailbox_domains = regexp:%[1]s/etc/domains
virtual_mailbox_maps = texthash:%[1]s/etc/mailboxes
virtual_mailbox_base = %[1]s/mail
virtual_uid_maps = static:%[4]d
virtual_gid_maps = static:%[5]d
smtpd_tls_security_level = may
smtpd_tls_chain_files = %[1]s/etc/server.pem
# A bare LF in DATA is refused, for every client.
smtpd_forbid_bare_newline = reject
smtpd_forbid_bare_newline_exclusions =
anvil_rate_time_unit = %[3]ds
# One sender refused at MAIL FROM.
smtpd_sender_restrictions = check_sender_access texthash:%[1]s/etc/senders
`, p.dir, protocols, int(rateUnit/time.Second), nobody[0], nobody[1])
	master := "# written by mxflush's interop tests\n"
	addListener := func(host string, opts []string) {
		master += fmt.Sprintf("%s inet n - n - - smtpd\n", net.JoinHostPort(host, strconv.Itoa(port)))
		for _, o := range opts {
			master += "  -o " + o + "\n"
		}
	}
	for _, l := range listeners {
		addListener(l.ip, l.opts)
	}
	if p.ipv6 {
		addListener("::1", nil)
	}
	master += `pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`
	files := map[string]string{
		"main.cf":   main,
		"master.cf": master,
		"domains":   "/\\.test$/ OK\n",
		"mailboxes": mailboxes(),
		"senders":   refusedSender + " 553 5.7.1 sender refused by the interop test\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(p.conf, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// refusedSender is refused at MAIL FROM with 553 5.7.1.
const refusedSender = "refused@origin.test"

// mailDomains are the domains whose ok1 ... ok9 have a mailbox; any other
// recipient in a *.test domain is unknown. (virtual(8) refuses the $1 of a
// regexp table, so each mailbox is listed.)
var mailDomains = []string{
	"normal.test", "bare.test", "limit.test", "size.test", "unknown.test",
	"errors.test", "rate.test", "plain.test", "conns.test", "senders.test",
	"mixed.test", "edges.test", "big.edges.test", "three1.test", "three2.test", "three3.test",
	// the DNS tests'
	"pref.test", "cname.test", "v6.test", "implicit.test", "many.test",
	"dane.test", "danebad.test", "danecname.test", "danetaok.test", "danetabad.test",
	"expired.test", "bogus.test", "unsigned.test", "danefallback.test",
	"insecuremx.unsigned.test", "insecurecname.unsigned.test", "cnamedane.test",
	"implicitdane.test", "implicitinsecure.test",
}

// mailboxes returns the virtual_mailbox_maps table.
func mailboxes() string {
	var b strings.Builder
	for _, d := range mailDomains {
		for i := 1; i <= 9; i++ {
			fmt.Fprintf(&b, "ok%d@%s %s/ok%d/\n", i, d, d, i)
		}
	}
	return b.String()
}

// userIDs returns the uid and gid of a user.
func userIDs(name string) ([2]int, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return [2]int{}, fmt.Errorf("user %s (installing Debian's postfix package makes it): %w", name, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return [2]int{}, fmt.Errorf("user %s: %w", name, err)
	}
	return [2]int{uid, gid}, nil
}

// stop stops the instance with postfix stop, then makes sure that its
// master and the master's children (smtpd, qmgr, ...) are gone: those
// still there 10 s later are killed by pid. The directory is removed
// only once nothing runs in it.
func (p *postfix) stop() error {
	var pids []int
	if pid := p.masterPid(); pid > 0 {
		pids = append([]int{pid}, children(pid)...)
	}
	out, stopErr := exec.Command(p.prog, "-c", p.conf, "stop").CombinedOutput()
	if left := waitGone(pids, 10*time.Second); len(left) > 0 {
		return fmt.Errorf("postfix processes %v outlived postfix stop by 10 s and were killed (postfix stop: %v %s); %s left in place", left, stopErr, out, p.dir)
	}
	return os.RemoveAll(p.dir)
}

func (p *postfix) masterPid() int {
	b, err := os.ReadFile(filepath.Join(p.queue, "pid", "master.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return pid
}

func (p *postfix) maillog() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "maillog"))
	return string(b)
}

// logOf returns the lines of Postfix's log that name addr.
func (p *postfix) logOf(addr string) string {
	var b strings.Builder
	for _, line := range strings.Split(p.maillog(), "\n") {
		if strings.Contains(line, "<"+addr+">") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// idle waits until Postfix's queue is empty (everything accepted has been
// delivered into the maildirs) and fails the test when that takes over
// 30 s or a message was deferred.
func (p *postfix) idle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, deferred := 0, 0
		for _, q := range []string{"maildrop", "incoming", "active", "deferred", "hold", "corrupt"} {
			filepath.WalkDir(filepath.Join(p.queue, q), func(path string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					n++
					if q == "deferred" || q == "corrupt" || q == "hold" {
						deferred++
					}
				}
				return nil
			})
		}
		if deferred > 0 {
			t.Fatalf("postfix could not deliver %d message(s):\n%s", deferred, p.maillog())
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfix's queue still holds %d message(s) after 30 s:\n%s", n, p.maillog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// raw returns the files in addr's maildir as Postfix wrote them. The
// maildir is removed when the test ends, so that the test can run again
// (go test -count) against the same instance.
func (p *postfix) raw(t *testing.T, addr string) []string {
	t.Helper()
	local, domain, _ := strings.Cut(addr, "@")
	t.Cleanup(func() { os.RemoveAll(filepath.Join(p.mail, domain, local)) })
	var msgs []string
	for _, sub := range []string{"new", "cur"} {
		dir := filepath.Join(p.mail, domain, local, sub)
		ents, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, string(b))
		}
	}
	return msgs
}

// mailbox returns the messages in addr's maildir, each with the header
// fields Postfix added (Return-Path, Delivered-To, Received) removed, as
// they were written: Postfix stores lines ended by LF. It fails the test
// when a message does not start with those fields.
func (p *postfix) mailbox(t *testing.T, addr string) []string {
	t.Helper()
	var msgs []string
	for _, m := range p.raw(t, addr) {
		msgs = append(msgs, stripAdded(t, addr, m))
	}
	return msgs
}

// stripAdded removes what Postfix puts above the message: Return-Path,
// X-Original-To and Delivered-To (virtual(8)), and one Received field
// (smtpd(8)), in that order.
func stripAdded(t *testing.T, addr, m string) string {
	t.Helper()
	rest := m
	for _, name := range []string{"Return-Path:", "X-Original-To:", "Delivered-To:", "Received:"} {
		if !strings.HasPrefix(rest, name) {
			t.Fatalf("%s: a delivered message does not start with Postfix's %s field:\n%s", addr, name, m)
		}
		_, rest, _ = strings.Cut(rest, "\n")
		for strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, "\t") {
			_, rest, _ = strings.Cut(rest, "\n")
		}
	}
	return rest
}

// wantMailbox checks that addr's maildir holds exactly the given
// messages, each once, octet for octet as Postfix stores them: the
// message as submitted with every line ending made LF.
func (p *postfix) wantMailbox(t *testing.T, addr string, want ...string) {
	t.Helper()
	got := p.mailbox(t, addr)
	var stored []string
	for _, w := range want {
		stored = append(stored, asStored(w))
	}
	slices.Sort(got)
	slices.Sort(stored)
	if !slices.Equal(got, stored) {
		t.Errorf("%s: mailbox holds %d message(s), want %d:\n%q\nwant:\n%q\nPostfix's log of it:\n%s", addr, len(got), len(stored), got, stored, p.logOf(addr))
	}
}

// asStored is a message as Postfix writes it into a maildir: a line ending
// of any kind (CRLF, bare LF, bare CR, which mxflush sends as CRLF) is LF.
func asStored(m string) string {
	m = strings.ReplaceAll(m, "\r\n", "\n")
	return strings.ReplaceAll(m, "\r", "\n")
}

// greet connects to a listener and returns the reader after its greeting,
// for the tests that speak SMTP to Postfix themselves.
func greet(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	if line := reply(t, r); !strings.HasPrefix(line, "220") {
		t.Fatalf("greeting: %q", line)
	}
	return c, r
}

// reply reads one SMTP reply and returns its last line.
func reply(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading a reply: %v (after %q)", err, line)
		}
		if len(line) < 4 || line[3] != '-' {
			return strings.TrimRight(line, "\r\n")
		}
	}
}
