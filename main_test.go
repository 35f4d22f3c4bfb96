package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/spool"
)

// world is one loopback mail world for an end-to-end test: a DNS server, SMTP
// receivers on 127.0.0.x sharing one port, and a spool directory.
type world struct {
	t     *testing.T
	dns   *testnet.DNS
	port  int
	recv  map[string]*testnet.Receiver // by IP
	spool string
	gauge *testnet.Gauge
	fsize int64 // when > 0, flush runs the built binary with RLIMIT_FSIZE at this many bytes
}

// newWorld starts the DNS server with records and one receiver per IP.
func newWorld(t *testing.T, ips []string, opts func(ip string) testnet.SMTPOptions, records ...string) *world {
	t.Helper()
	w := &world{t: t, recv: map[string]*testnet.Receiver{}, spool: filepath.Join(t.TempDir(), "spool"), gauge: &testnet.Gauge{}}
	var err error
	if w.dns, err = testnet.StartDNS(records...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.dns.Close() })
	if len(ips) == 0 {
		ips = []string{"127.0.0.2"}
	}
	if w.port, err = testnet.FreePort(ips...); err != nil {
		t.Fatal(err)
	}
	for _, ip := range ips {
		o := testnet.SMTPOptions{}
		if opts != nil {
			o = opts(ip)
		}
		o.Active = w.gauge
		r, err := testnet.StartSMTP(ip+":"+strconv.Itoa(w.port), o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		w.recv[ip] = r
	}
	return w
}

// run runs mxflush in-process and returns its exit code, stdout and stderr.
func (w *world) run(stdin string, args ...string) (int, string, string) {
	w.t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// enqueue puts msg in the spool through the CLI with the given envelope.
func (w *world) enqueue(from string, msg string, rcpts ...string) string {
	w.t.Helper()
	args := append([]string{"enqueue", "--spool", w.spool, "-f", from}, rcpts...)
	code, out, errs := w.run(msg, args...)
	if code != 0 {
		w.t.Fatalf("enqueue %v: exit %d: %s", rcpts, code, errs)
	}
	return strings.TrimSpace(out)
}

// flush runs `mxflush flush` against the world's DNS server and port.
func (w *world) flush(extra ...string) (int, string, string) {
	w.t.Helper()
	args := append([]string{"flush", "--spool", w.spool, "--dns", w.dns.Addr(), "--port", strconv.Itoa(w.port),
		"--helo", "relay.test", "--connect-timeout", "2s", "--command-timeout", "5s", "--dns-timeout", "2s"}, extra...)
	if w.fsize > 0 {
		return w.runFsize(args)
	}
	return w.run("", args...)
}

// runFsize runs the built binary under RLIMIT_FSIZE (prlimit, util-linux):
// a write that would make a file larger than w.fsize bytes fails with EFBIG
// (Go ignores SIGXFSZ), as on a full disk. A subprocess, because the limit
// would also hit this test process's own files.
func (w *world) runFsize(args []string) (int, string, string) {
	w.t.Helper()
	lim := strconv.FormatInt(w.fsize, 10)
	cmd := exec.Command("prlimit", append([]string{"--fsize=" + lim + ":" + lim, "--", binary(w.t)}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	case err != nil:
		w.t.Fatalf("prlimit: %v", err)
	}
	return 0, out.String(), errb.String()
}

// files lists the names in one spool queue directory.
func (w *world) files(queue string) []string {
	w.t.Helper()
	ents, err := os.ReadDir(filepath.Join(w.spool, queue))
	if err != nil && !os.IsNotExist(err) {
		w.t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func (w *world) received() int {
	n := 0
	for _, r := range w.recv {
		n += len(r.Messages())
	}
	return n
}

func msg(subject string) string {
	return "From: alice@example.test\r\nTo: someone@example.test\r\nSubject: " + subject + "\r\n\r\nbody of " + subject + "\r\n"
}

func openSpool(t *testing.T, dir string) *spool.Spool {
	t.Helper()
	sp, err := spool.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}
