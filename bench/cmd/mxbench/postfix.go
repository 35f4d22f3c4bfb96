package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/sync/errgroup"
)

// postfixTools are the Postfix commands a private instance needs.
type postfixTools struct{ postfix, postsuper, postqueue string }

func lookPostfix() (postfixTools, error) {
	var t postfixTools
	for _, p := range []*string{&t.postfix, &t.postsuper, &t.postqueue} {
		name := map[*string]string{&t.postfix: "postfix", &t.postsuper: "postsuper", &t.postqueue: "postqueue"}[p]
		path, err := exec.LookPath(name)
		if err != nil {
			return t, fmt.Errorf("%s not found (bench/run installs Debian's postfix package): %w", name, err)
		}
		*p = path
	}
	return t, nil
}

// postfixOptions describe one private Postfix instance.
type postfixOptions struct {
	name      string // directory name and cgroup suffix
	base      string // directory holding the configuration and data directories
	queueBase string // directory holding the queue directory (disk or tmpfs)
	listen    string // "127.0.7.1:PORT": its smtpd, for injection
	transport string // transport_maps lines: "d000.test smtp:[127.0.5.1]:PORT"
	procLimit int    // maxproc of the smtp service; 0: default_process_limit (100)
	destConc  int    // default_destination_concurrency_limit; 0: its default (20)
}

// postfixInstance is a running private Postfix: its own config_directory,
// queue_directory and data_directory, started with postfix -c DIR start,
// never touching /etc/postfix. It relays by transport_maps (no DNS) and
// its header_checks put every message on hold, so that a run can inject
// a whole queue over SMTP first and then time only the delivery.
type postfixInstance struct {
	tools            postfixTools
	o                postfixOptions
	etc, queue, mlog string
	cpu              *cpuGroup
	master           int
	cmdCPU           time.Duration // CPU of postsuper and postqueue, without a cgroup
}

// postfixMaster is the master.cf: the services Postfix needs to accept
// mail over SMTP and relay it, none chrooted (the instance's directories
// are not set up for a chroot), plus postlogd for maillog_file (there is no
// syslog on these machines). The smtpd listens on one loopback address
// only.
const postfixMaster = `%s inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       %s       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`

// startPostfix writes the instance's configuration and starts it.
func startPostfix(ctx context.Context, tools postfixTools, o postfixOptions) (*postfixInstance, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("a private Postfix instance needs root (its daemons run as the postfix user)")
	}
	pu, err := user.Lookup("postfix")
	if err != nil {
		return nil, fmt.Errorf("the postfix user: %w", err)
	}
	uid, _ := strconv.Atoi(pu.Uid)
	p := &postfixInstance{tools: tools, o: o,
		etc:   filepath.Join(o.base, o.name, "etc"),
		queue: filepath.Join(o.queueBase, o.name, "queue"),
		mlog:  filepath.Join(o.base, o.name, "maillog"),
	}
	data := filepath.Join(o.base, o.name, "data")
	for _, d := range []string{p.etc, p.queue, data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	// Postfix's daemons open files in data_directory by absolute path as
	// the postfix user; the directories above must let it through.
	for _, d := range []string{o.base, filepath.Dir(p.queue), o.queueBase, filepath.Join(o.base, o.name)} {
		if err := os.Chmod(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.Chown(data, uid, -1); err != nil {
		return nil, err
	}
	proc := "-"
	if o.procLimit > 0 {
		proc = strconv.Itoa(o.procLimit)
	}
	conc := ""
	if o.destConc > 0 {
		conc = fmt.Sprintf("default_destination_concurrency_limit = %d\n", o.destConc)
	}
	mainCF := fmt.Sprintf(`compatibility_level = 3.6
config_directory = %[1]s
queue_directory = %[2]s
data_directory = %[3]s
maillog_file_prefixes = %[4]s
maillog_file = %[5]s
myhostname = relay.bench.test
mydomain = bench.test
myorigin = bench.test
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
biff = no
# Messages are put on hold as they arrive: without this, smtpd would wait
# for qmgr's tokens before each message (1s a message).
in_flow_delay = 0
header_checks = regexp:%[1]s/header_checks
transport_maps = texthash:%[1]s/transport
smtp_dns_support_level = disabled
smtp_helo_name = bench.test
%[6]s`, p.etc, p.queue, data, filepath.Join(o.base, o.name), p.mlog, conc)
	files := map[string]string{
		"main.cf":       mainCF,
		"master.cf":     fmt.Sprintf(postfixMaster, o.listen, proc),
		"header_checks": "/^Message-Id:/ HOLD\n",
		"transport":     o.transport,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(p.etc, name), []byte(text), 0o644); err != nil {
			return nil, err
		}
	}
	p.cpu = newCPUGroup("mxbench-" + o.name + "-" + strconv.Itoa(os.Getpid()))
	if out, err := p.command(ctx, tools.postfix, "start"); err != nil {
		p.cpu.remove()
		return nil, fmt.Errorf("postfix -c %s start: %w\n%s\n%s", p.etc, err, out, tailFile(p.mlog, 2000))
	}
	b, err := os.ReadFile(filepath.Join(p.queue, "pid", "master.pid"))
	if err == nil {
		p.master, err = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("postfix -c %s: master.pid: %w", p.etc, err)
	}
	return p, nil
}

// command runs a Postfix command with -c and the instance's directory,
// inside its CPU group, and returns its output.
func (p *postfixInstance) command(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, append([]string{"-c", p.etc}, args...)...)
	cmd.SysProcAttr = p.cpu.attr()
	out, err := cmd.CombinedOutput()
	if err == nil && cmd.ProcessState != nil && p.cpu.dir == "" {
		// Without a cgroup, the CPU of the commands themselves is not in
		// the master's tree.
		p.cmdCPU += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	return out, err
}

// stop stops the instance: postfix stop, then the master by its PID if it
// has not gone within 10s, then whatever is left in its cgroup.
func (p *postfixInstance) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	p.command(ctx, p.tools.postfix, "stop")
	if p.master > 0 {
		for start := time.Now(); syscall.Kill(p.master, 0) == nil; time.Sleep(50 * time.Millisecond) {
			if time.Since(start) > 10*time.Second {
				syscall.Kill(p.master, syscall.SIGKILL)
				break
			}
		}
	}
	p.cpu.remove()
}

// inject sends n messages (recipients spread round-robin over k domains)
// to the instance's smtpd over conc sessions, each reusing its
// connection, and checks that all n are on hold.
func (p *postfixInstance) inject(ctx context.Context, n, k, size, conc int) error {
	text := body(size)
	g, gctx := errgroup.WithContext(ctx)
	for s := range conc {
		g.Go(func() error {
			c, err := smtp.Dial(p.o.listen)
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.Hello("source.test"); err != nil {
				return err
			}
			for i := s; i < n && gctx.Err() == nil; i += conc {
				dom := domainName(i % k)
				msg := messageText(i, dom, text)
				if err := c.SendMail("bench@source.test", []string{"u" + strconv.Itoa(i) + "@" + dom}, bytes.NewReader(msg)); err != nil {
					return fmt.Errorf("message %d: %w", i, err)
				}
			}
			return c.Quit()
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("injecting into postfix at %s: %w", p.o.listen, err)
	}
	if held := countFiles(filepath.Join(p.queue, "hold")); held != n {
		return fmt.Errorf("postfix -c %s: %d messages on hold after injecting %d\n%s", p.etc, held, n, tailFile(p.mlog, 2000))
	}
	return nil
}

// postfixQueues are the queue directories that hold messages not yet
// delivered.
var postfixQueues = []string{"maildrop", "incoming", "active", "deferred", "hold", "corrupt"}

// countFiles counts the regular files under dir (hashed queues have
// subdirectories).
func countFiles(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

// relay releases the n held messages and flushes the queue, and returns
// the time from the release until the maillog shows n "removed" lines, the
// queue directories are empty and received() (messages the receivers
// counted since the injection) reached n; and the instance's CPU time over
// that span. The spool is synced before the clock starts, as mxflush's is.
func (p *postfixInstance) relay(ctx context.Context, n int, received func() int) (usage, error) {
	var u usage
	offset := int64(0)
	if st, err := os.Stat(p.mlog); err == nil {
		offset = st.Size()
	}
	syscall.Sync()
	p.cmdCPU = 0
	cpu0, err := p.cpu.usage(p.master)
	if err != nil {
		return u, err
	}
	start := time.Now()
	for _, c := range [][]string{{p.tools.postsuper, "-H", "ALL"}, {p.tools.postqueue, "-f"}} {
		if out, err := p.command(ctx, c[0], c[1:]...); err != nil {
			return u, fmt.Errorf("%s: %w\n%s", strings.Join(c, " "), err, out)
		}
	}
	f, err := os.Open(p.mlog)
	if err != nil {
		return u, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return u, err
	}
	var (
		removed int
		partial []byte
		buf     = make([]byte, 256<<10)
	)
	deadline := start.Add(time.Duration(n)*100*time.Millisecond + time.Minute)
	for {
		for {
			m, err := f.Read(buf)
			data := append(partial, buf[:m]...)
			last := bytes.LastIndexByte(data, '\n')
			for _, line := range bytes.Split(data[:last+1], []byte{'\n'}) {
				switch {
				case bytes.HasSuffix(line, []byte(": removed")):
					removed++
				case bytes.Contains(line, []byte("status=deferred")), bytes.Contains(line, []byte("status=bounced")):
					return u, fmt.Errorf("postfix -c %s did not deliver: %s", p.etc, line)
				}
			}
			partial = append([]byte(nil), data[last+1:]...)
			if m == 0 || err != nil {
				break
			}
		}
		if removed >= n && received() >= n && p.queued() == 0 {
			break
		}
		if err := ctx.Err(); err != nil {
			return u, err
		}
		if time.Now().After(deadline) {
			return u, fmt.Errorf("postfix -c %s: %d of %d messages removed from the queue, %d received, after %v", p.etc, removed, n, received(), time.Since(start))
		}
		time.Sleep(5 * time.Millisecond)
	}
	u.Wall = time.Since(start)
	cpu1, err := p.cpu.usage(p.master)
	if err != nil {
		return u, err
	}
	u.CPU = cpu1 - cpu0 + p.cmdCPU
	return u, nil
}

// queued counts the messages left in the queue directories.
func (p *postfixInstance) queued() int {
	n := 0
	for _, q := range postfixQueues {
		n += countFiles(filepath.Join(p.queue, q))
	}
	return n
}
