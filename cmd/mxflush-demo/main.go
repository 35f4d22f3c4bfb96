// Command mxflush-demo runs mxflush end to end on loopback with no internet:
// it builds mxflush, starts a DNS server and three SMTP receivers on
// 127.0.0.2-4, enqueues the sample messages from testdata/samples, runs
// `mxflush flush`, prints the summary and writes what each receiver got to
// disk. Every domain is under .test and every address is on 127.0.0.0/8.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/mxflush/mxflush/internal/testnet"
)

func main() {
	out := flag.String("out", "", "directory for the spool and the received messages (default: a new temporary directory)")
	flag.Parse()
	if err := demo(*out); err != nil {
		fmt.Fprintf(os.Stderr, "mxflush-demo: %v\n", err)
		os.Exit(1)
	}
}

// receivers: domain -> loopback address of its MX (c.test has no MX record:
// it is reached through its A record, the implicit MX of RFC 5321 §5.1).
var receivers = []struct{ domain, ip string }{
	{"a.test", "127.0.0.2"}, {"b.test", "127.0.0.3"}, {"c.test", "127.0.0.4"},
}

func demo(out string) error {
	var err error
	if out == "" {
		if out, err = os.MkdirTemp("", "mxflush-demo-"); err != nil {
			return err
		}
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	bin := filepath.Join(out, "mxflush")
	fmt.Printf("building mxflush into %s\n", bin)
	if err := runCmd(root, nil, "go", "build", "-o", bin, "."); err != nil {
		return fmt.Errorf("go build: %w", err)
	}

	dns, err := testnet.StartDNS(
		"a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2",
		"b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.3",
		"c.test. A 127.0.0.4",
		"nullmx.test. MX 0 .", "nullmx.test. A 127.0.0.5",
		"example.test. MX 10 mx.a.test.", // the samples' sender: its bounce goes to a.test's receiver
	)
	if err != nil {
		return fmt.Errorf("starting the DNS server: %w", err)
	}
	defer dns.Close()
	ips := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}
	port, err := testnet.FreePort(ips...)
	if err != nil {
		return err
	}
	recv := map[string]*testnet.Receiver{}
	for _, r := range receivers {
		rc, err := testnet.StartSMTP(r.ip+":"+strconv.Itoa(port), testnet.SMTPOptions{Domain: "mx." + r.domain, MaxMessageBytes: 10 << 20})
		if err != nil {
			return fmt.Errorf("starting the receiver for %s: %w", r.domain, err)
		}
		defer rc.Close()
		recv[r.domain] = rc
	}
	fmt.Printf("DNS server on %s, SMTP receivers on 127.0.0.2-4 port %d\n", dns.Addr(), port)

	spoolDir := filepath.Join(out, "spool")
	samples, err := filepath.Glob(filepath.Join(root, "testdata", "samples", "*.eml"))
	if err != nil || len(samples) == 0 {
		return fmt.Errorf("no samples in testdata/samples: %v", err)
	}
	sort.Strings(samples)
	for _, s := range samples {
		f, err := os.Open(s)
		if err != nil {
			return err
		}
		err = runCmd(root, f, bin, "enqueue", "--spool", spoolDir, "-f", "alice@example.test", "-t")
		f.Close()
		if err != nil {
			return fmt.Errorf("enqueue %s: %w", filepath.Base(s), err)
		}
	}
	fmt.Printf("enqueued %d sample messages into %s\n\n", len(samples), spoolDir)

	args := []string{"flush", "--spool", spoolDir, "--dns", dns.Addr(), "--port", strconv.Itoa(port),
		"--helo", "relay.demo.test", "--max-conns", "4"}
	fmt.Printf("$ mxflush %s\n", strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	err = cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		return err
	}

	fmt.Println()
	got := 0
	for _, r := range receivers {
		dir := filepath.Join(out, "received", r.domain)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for i, m := range recv[r.domain].Messages() {
			name := filepath.Join(dir, fmt.Sprintf("%02d.eml", i+1))
			hdr := fmt.Sprintf("X-Demo-Envelope: from=<%s> to=<%s>\r\n", m.From, strings.Join(m.To, ">,<"))
			if err := os.WriteFile(name, append([]byte(hdr), m.Data...), 0o644); err != nil {
				return err
			}
			got++
		}
		fmt.Printf("%s received %d message(s): %s\n", r.domain, len(recv[r.domain].Messages()), dir)
	}
	fmt.Printf("the null-MX sample stays in %s\n", filepath.Join(spoolDir, "failed"))
	// Every sample once (the three-domain one once per domain, hence +1),
	// and the bounce for the null-MX sample.
	if want := len(samples) + 2; code == 69 && got == want {
		fmt.Println("\nexit 69 is expected here: nullmx.test publishes a null MX (RFC 7505), so its one recipient")
		fmt.Println("failed permanently; every other sample was delivered (the three-domain message once per domain).")
		fmt.Println("The bounce for it (a DSN from <> to alice@example.test) was delivered in the same run; it is the")
		fmt.Println("message from <> in received/a.test/.")
		return nil
	}
	return fmt.Errorf("unexpected outcome: flush exited %d and the receivers got %d messages (want 69 and %d)", code, got, len(samples)+2)
}

func moduleRoot() (string, error) {
	outb, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(outb))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run the demo from inside the mxflush source tree")
	}
	return filepath.Dir(mod), nil
}

func runCmd(dir string, stdin *os.File, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = os.Stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
