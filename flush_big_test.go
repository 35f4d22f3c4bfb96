package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxflush/mxflush/internal/testnet"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds mxflush once for the tests that run it as a subprocess.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mxflush-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "mxflush")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// spoolMany writes n messages straight into new/, as a producer would, with
// recipients spread over the given domains.
func spoolMany(t *testing.T, dir string, n int, domains []string) {
	t.Helper()
	for _, d := range []string{"tmp", "new", "cur", "failed", "hold", "bad"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	body := strings.Repeat("The quick brown fox jumps over the lazy dog.\r\n", 20)
	for i := 0; i < n; i++ {
		dom := domains[i%len(domains)]
		content := fmt.Sprintf("X-Envelope-From: <alice@example.test>\nX-Envelope-To: <u%d@%s>\nSubject: m%d\r\n\r\n%s", i, dom, i, body)
		name := fmt.Sprintf("1732880000.M%d.P1.test", i)
		if err := os.WriteFile(filepath.Join(dir, "new", name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// runLimited runs the built binary with RLIMIT_NOFILE = limit (soft and
// hard, so the Go runtime cannot raise it) and samples its open files.
func runLimited(t *testing.T, limit int, args ...string) (code int, out string, peak int) {
	t.Helper()
	sh := fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, limit)
	cmd := exec.Command("sh", append([]string{"-c", sh, binary(t)}, args...)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	fdDir := fmt.Sprintf("/proc/%d/fd", cmd.Process.Pid)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			code = 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != 0 {
				t.Logf("stderr (tail): %s", tail(stderr.String(), 2000))
			}
			return code, stdout.String(), peak
		case <-tick.C:
			if ents, err := os.ReadDir(fdDir); err == nil && len(ents) > peak {
				peak = len(ents)
			}
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// 10,000 messages to one domain under a 64-file limit: with
// --conns-per-site 1, one session carries them all, and open files stay
// bounded by the connection limit, well within the open-file limit.
func TestFlushTenThousandOneDomainUnderFileLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("long: 10,000 messages through the built binary")
	}
	w := newWorld(t, nil, nil, "big.test. MX 10 mx.big.test.", "mx.big.test. A 127.0.0.2")
	spoolMany(t, w.spool, 10000, []string{"big.test"})
	const maxConns = 8
	code, out, peak := runLimited(t, 64, "flush", "--spool", w.spool, "--dns", w.dns.Addr(), "--port", strconv.Itoa(w.port),
		"--helo", "relay.test", "--max-conns", strconv.Itoa(maxConns), "--conns-per-site", "1", "--json")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, tail(out, 2000))
	}
	r := w.recv["127.0.0.2"]
	t.Logf("10,000 messages: %d session(s), peak open files %d (limit 64)", r.Sessions(), peak)
	if len(r.Messages()) != 10000 || r.Sessions() != 1 {
		t.Errorf("receiver got %d messages over %d sessions, want 10000 over 1", len(r.Messages()), r.Sessions())
	}
	if peak > 2*maxConns+16 {
		t.Errorf("peak open files %d, want at most 2 x max-conns + 16 = %d", peak, 2*maxConns+16)
	}
	if left := w.files("new"); len(left) != 0 {
		t.Errorf("%d messages left in new/", len(left))
	}
}

// Many domains under a small file limit, on three sites (200 domains each
// whose MX is one of three hosts): the domains of a site share its
// sessions, so 3,000 messages need at most 3 sites x --conns-per-site 4
// sessions, not one per domain (600 before sites), and descriptors stay
// near the connection limit, within the open-file limit.
func TestFlushManyDomainsUnderFileLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("long: 3,000 messages to 600 domains through the built binary")
	}
	ips := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}
	var records, domains []string
	for i := 0; i < 600; i++ {
		d := fmt.Sprintf("d%03d.test", i)
		domains = append(domains, d)
		records = append(records, fmt.Sprintf("%s. MX 10 mx%d.test.", d, i%3))
	}
	for i, ip := range ips {
		records = append(records, fmt.Sprintf("mx%d.test. A %s", i, ip))
	}
	w := newWorld(t, ips, nil, records...)
	spoolMany(t, w.spool, 3000, domains)
	code, out, peak := runLimited(t, 64, "flush", "--spool", w.spool, "--dns", w.dns.Addr(), "--port", strconv.Itoa(w.port),
		"--helo", "relay.test", "--max-conns", "16", "--conns-per-site", "4")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, tail(out, 2000))
	}
	sessions := 0
	for _, r := range w.recv {
		sessions += r.Sessions()
	}
	t.Logf("3,000 messages to 600 domains: %d sessions, peak open files %d, peak concurrent sessions %d", sessions, peak, w.gauge.Max())
	if w.received() != 3000 || sessions < 3 || sessions > 3*4 || w.gauge.Max() > 16 {
		t.Errorf("got %d messages over %d sessions (peak %d concurrent), want 3000 over 3 to 12 (3 sites, at most 4 each)", w.received(), sessions, w.gauge.Max())
	}
}

// Two flushes started at once, as overlapping cron runs: one runs, the other
// exits 75 at once, and every recipient gets exactly one copy. A flush killed
// with SIGKILL leaves no lock behind.
func TestFlushOverlappingRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the built binary")
	}
	ips := []string{"127.0.0.2", "127.0.0.3"}
	var records, domains []string
	for i := 0; i < 20; i++ {
		domains = append(domains, fmt.Sprintf("o%02d.test", i))
		records = append(records, fmt.Sprintf("o%02d.test. MX 10 mx%d.o.test.", i, i%2))
	}
	records = append(records, "mx0.o.test. A 127.0.0.2", "mx1.o.test. A 127.0.0.3")
	w := newWorld(t, ips, func(string) testnet.SMTPOptions { return testnet.SMTPOptions{DataDelay: 10 * time.Millisecond} }, records...)
	spoolMany(t, w.spool, 200, domains)
	args := []string{"flush", "--spool", w.spool, "--dns", w.dns.Addr(), "--port", strconv.Itoa(w.port), "--helo", "relay.test"}

	type result struct {
		code int
		err  string
	}
	results := make(chan result, 2)
	for i := 0; i < 2; i++ {
		go func() {
			cmd := exec.Command(binary(t), args...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			results <- result{code, stderr.String()}
		}()
		time.Sleep(50 * time.Millisecond)
	}
	r1, r2 := <-results, <-results
	codes := []int{r1.code, r2.code}
	slices.Sort(codes)
	if !slices.Equal(codes, []int{0, 75}) {
		t.Fatalf("exit codes %v, want one 0 and one 75\n%s\n%s", codes, tail(r1.err, 500), tail(r2.err, 500))
	}
	seen := map[string]int{}
	for _, r := range w.recv {
		for _, m := range r.Messages() {
			for _, to := range m.To {
				seen[to]++
			}
		}
	}
	for rcpt, n := range seen {
		if n != 1 {
			t.Errorf("%s got %d copies", rcpt, n)
		}
	}
	if len(seen) != 200 {
		t.Errorf("%d recipients delivered, want 200", len(seen))
	}

	// kill -9 a flush in the middle: the next one takes the lock and proceeds.
	spoolMany(t, w.spool, 200, domains)
	cmd := exec.Command(binary(t), args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	cmd.Process.Kill()
	cmd.Wait()
	out, err := exec.Command(binary(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("flush after kill -9: %v\n%s", err, tail(string(out), 1000))
	}
}
