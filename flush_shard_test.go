package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mxflush/mxflush/internal/testnet"
	"github.com/mxflush/mxflush/spool"
)

// --shard and --mail-outcomes-ok come from the command line only: a stray
// MXFLUSH_SHARD or config key must never make a manual flush send 1/N of
// the queue, nor hide its exit code. A malformed --shard is a usage error.
func TestFlushShardCommandLineOnly(t *testing.T) {
	w := newWorld(t, nil, nil, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	openSpool(t, w.spool)
	for i := range 8 {
		w.enqueue("alice@example.test", msg(fmt.Sprint("env ", i)), fmt.Sprintf("u%d@a.test", i))
	}
	for _, bad := range []string{"4/4", "1", "-1/2", "0/0", "x/2"} {
		if code, _, errs := w.flush("--shard", bad); code != 64 || !strings.Contains(errs, "--shard") {
			t.Errorf("--shard %s: exit %d, want 64 naming --shard\n%s", bad, code, errs)
		}
	}
	for key, val := range map[string]string{"shard": `"0/2"`, "mail_outcomes_ok": "true"} {
		cfg := filepath.Join(t.TempDir(), "config.json")
		os.WriteFile(cfg, []byte(`{"`+key+`": `+val+`}`), 0o600)
		code, _, errs := w.flush("--config", cfg)
		if code != 78 || !strings.Contains(errs, "command line only") {
			t.Errorf("config key %s: exit %d, want 78 saying command line only\n%s", key, code, errs)
		}
	}
	t.Setenv("MXFLUSH_SHARD", "0/8")
	code, out, errs := w.flush()
	if code != 0 || w.received() != 8 {
		t.Errorf("MXFLUSH_SHARD=0/8: exit %d, %d of 8 received; want the whole spool sent\n%s%s", code, w.received(), out, errs)
	}
}

// A sharded flush sends the messages of its shard only, says so in its
// JSON, and an unsharded flush exits 75 while a shard runs. With
// --mail-outcomes-ok a run whose mail was deferred exits 0 while the
// summary keeps 75.
func TestFlushShardSelectsAndReports(t *testing.T) {
	defer451 := func(string) testnet.SMTPOptions {
		return testnet.SMTPOptions{Rcpt: func(to string) error {
			if strings.HasPrefix(to, "later") {
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "try later"}
			}
			return nil
		}}
	}
	w := newWorld(t, nil, defer451, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	sp := openSpool(t, w.spool)
	ids := map[string]string{}
	for i := range 40 {
		ids[w.enqueue("alice@example.test", msg(fmt.Sprint("s ", i)), fmt.Sprintf("u%d@a.test", i))] = fmt.Sprintf("u%d@a.test", i)
	}
	code, out, errs := w.flush("--shard", "01/3", "--json")
	if code != 0 {
		t.Fatalf("--shard 1/3: exit %d\n%s%s", code, out, errs)
	}
	var sum struct {
		Shard    string `json:"shard"`
		ExitCode int    `json:"exit_code"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil || sum.Shard != "1/3" {
		t.Errorf("JSON shard %q (%v), want 1/3:\n%s", sum.Shard, err, out)
	}
	got := w.rcptCount()
	for id, rcpt := range ids {
		if want := spool.ShardOf(id, 3) == 1; (got[rcpt] == 1) != want {
			t.Errorf("%s (shard %d) sent %d time(s) by shard 1/3", rcpt, spool.ShardOf(id, 3), got[rcpt])
		}
	}
	if n := len(w.files("new")); n != 40-len(got) {
		t.Errorf("new/ holds %d, want the %d of the other shards", n, 40-len(got))
	}

	for id := range ids {
		if sh := spool.ShardOf(id, 3); sh != 1 {
			code, _, errs := w.flush("--shard", "1/3", id)
			if want := fmt.Sprintf("belongs to shard %d/3, not to --shard 1/3", sh); code != 64 || !strings.Contains(errs, want) {
				t.Errorf("flush --shard 1/3 %s: exit %d, want 64 saying %q\n%s", id, code, want, errs)
			}
			break
		}
	}

	unlock, err := sp.WithShard(spool.Shard{Index: 2, Count: 3}).Lock()
	if err != nil {
		t.Fatal(err)
	}
	before := w.received()
	code, _, errs = w.flush()
	if code != 75 || !strings.Contains(errs, "--shard 2/3 running") || w.received() != before {
		t.Errorf("unsharded flush beside shard 2/3: exit %d, %d sent; want 75 naming the shard, nothing sent\n%s", code, w.received()-before, errs)
	}
	code, _, errs = w.flush("--shard", "0/2")
	if code != 75 || !strings.Contains(errs, "flushed in 3 shards") {
		t.Errorf("--shard 0/2 beside shard 2/3: exit %d, want 75 saying the counts differ\n%s", code, errs)
	}
	unlock()

	later := w.enqueue("alice@example.test", msg("later"), "later@a.test")
	sh := strconv.Itoa(spool.ShardOf(later, 5)) + "/5"
	code, out, errs = w.flush("--shard", sh, "--mail-outcomes-ok", "--json")
	if err := json.Unmarshal([]byte(out), &sum); code != 0 || err != nil || sum.ExitCode != 75 || !strings.Contains(out, `"process_exit_code":0`) {
		t.Errorf("--mail-outcomes-ok with a deferral: exit %d, JSON exit_code %d; want process exit 0, exit_code 75\n%s%s", code, sum.ExitCode, out, errs)
	}
	code, out, _ = w.flush("--shard", sh, "--mail-outcomes-ok", "--all")
	if code != 0 || !strings.Contains(out, "exit 75: ") || !strings.Contains(out, "process exit 0 (--mail-outcomes-ok") || !strings.Contains(out, "shard "+sh+": only the messages") {
		t.Errorf("--mail-outcomes-ok text summary: exit %d\n%s", code, out)
	}
	code, _, _ = w.flush("--shard", sh, "--all")
	if code != 75 {
		t.Errorf("without --mail-outcomes-ok: exit %d, want 75", code)
	}
}

// shardWorld is the spool of the shard tests: n messages to 20 domains,
// one in five to three domains; it returns each recipient's message name.
func shardWorld(t *testing.T, n int, opts func(string) testnet.SMTPOptions) (*world, map[string]string) {
	var ips, records []string
	for d := range 20 {
		ip := fmt.Sprintf("127.0.0.%d", d+2)
		ips = append(ips, ip)
		records = append(records, fmt.Sprintf("d%d.test. MX 10 mx.d%d.test.", d, d), fmt.Sprintf("mx.d%d.test. A %s", d, ip))
	}
	w := newWorld(t, ips, opts, records...)
	openSpool(t, w.spool)
	owner := map[string]string{}
	for i := range n {
		doms := []int{i % 20}
		if i%5 == 0 {
			doms = append(doms, (i+7)%20, (i+13)%20)
		}
		name := fmt.Sprintf("1732880000.M%d.P1.test", i)
		var env strings.Builder
		env.WriteString("X-Envelope-From: <alice@example.test>\n")
		for _, d := range doms {
			rcpt := fmt.Sprintf("m%04d@d%d.test", i, d)
			owner[rcpt] = name
			fmt.Fprintf(&env, "X-Envelope-To: <%s>\n", rcpt)
		}
		w.put("new", name, env.String()+fmt.Sprintf("Subject: m%d\r\n\r\nbody %d\r\n", i, i))
	}
	return w, owner
}

// startFlush starts the built binary with args; wait returns its exit code
// and output, or -1 when SIGKILL ended it.
func startFlush(t *testing.T, args ...string) (cmd *exec.Cmd, wait func() (int, string)) {
	t.Helper()
	cmd = exec.Command(binary(t), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, func() (int, string) {
		err := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -1, out.String()
		}
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Errorf("%v: %v", args, err)
		}
		return cmd.ProcessState.ExitCode(), out.String()
	}
}

func (w *world) flushArgs(extra ...string) []string {
	return append([]string{"flush", "--spool", w.spool, "--dns", w.dns.Addr(), "--port", strconv.Itoa(w.port),
		"--helo", "relay.test", "--connect-timeout", "5s", "--command-timeout", "10s", "--dns-timeout", "5s"}, extra...)
}

// Four shards started at once over one spool (2,000 messages, 20 domains,
// one message in five to three domains) send every recipient exactly
// once, each exits 0, and the spool ends empty; an unsharded flush
// started beside them exits 75 or finds nothing of theirs to send.
func TestFlushShardsTogether(t *testing.T) {
	if testing.Short() {
		t.Skip("long: 2,000 messages through four runs of the built binary")
	}
	const n = 4
	w, owner := shardWorld(t, 2000, nil)
	var wg sync.WaitGroup
	for i := range n {
		_, wait := startFlush(t, w.flushArgs("--shard", fmt.Sprintf("%d/%d", i, n))...)
		wg.Go(func() {
			if code, out := wait(); code != 0 {
				t.Errorf("shard %d/%d: exit %d\n%s", i, n, code, tail(out, 2000))
			}
		})
	}
	// Beside them, once each holds its lock (its journal is opened right
	// after): it exits 75 while any shard runs, or finds an empty spool.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for started := 0; started < n; {
		select {
		case <-done:
			started = n
		case <-time.After(time.Millisecond):
			started = 0
			for i := range n {
				if _, err := os.Stat(filepath.Join(w.spool, fmt.Sprintf("journal.%d-of-%d", i, n))); err == nil {
					started++
				}
			}
		}
	}
	if code, out := func() (int, string) { _, wait := startFlush(t, w.flushArgs()...); return wait() }(); code != 75 && code != 0 {
		t.Errorf("unsharded flush beside the shards: exit %d\n%s", code, tail(out, 2000))
	}
	<-done
	got := w.rcptCount()
	for rcpt := range owner {
		if got[rcpt] != 1 {
			t.Errorf("%s received %d times, want once", rcpt, got[rcpt])
		}
	}
	if len(got) != len(owner) {
		t.Errorf("%d recipients received, want %d", len(got), len(owner))
	}
	for _, q := range []string{"new", "cur", "failed", "bad"} {
		for _, f := range w.files(q) {
			if !strings.HasPrefix(f, ".") {
				t.Errorf("%s/%s left", q, f)
			}
		}
	}
}

// A shard killed with SIGKILL mid-run and run again loses nothing; the
// only duplicates are its own transactions in flight at the kill (at most
// one per session), and the other shards, running beside it, are not
// disturbed.
func TestFlushShardKilledAndRerun(t *testing.T) {
	if testing.Short() {
		t.Skip("long: four runs of the built binary, one killed")
	}
	const n, victim, conns = 4, 2, 4
	slow := func(string) testnet.SMTPOptions { return testnet.SMTPOptions{DataDelay: 5 * time.Millisecond} }
	w, owner := shardWorld(t, 2000, slow)
	var wg sync.WaitGroup
	var killed bool
	for i := range n {
		cmd, wait := startFlush(t, w.flushArgs("--shard", fmt.Sprintf("%d/%d", i, n), "--max-conns", strconv.Itoa(conns))...)
		exited := make(chan struct{})
		if i == victim {
			// Killed as soon as its journal shows a delivery: mid-run,
			// however slowly this machine starts it.
			journal := filepath.Join(w.spool, fmt.Sprintf("journal.%d-of-%d", victim, n))
			go func() {
				for {
					select {
					case <-exited:
						return
					case <-time.After(time.Millisecond):
					}
					if fi, err := os.Stat(journal); err == nil && fi.Size() > 0 {
						cmd.Process.Signal(syscall.SIGKILL)
						return
					}
				}
			}()
		}
		wg.Go(func() {
			code, out := wait()
			close(exited)
			switch {
			case i == victim && code == -1:
				killed = true
			case code != 0:
				t.Errorf("shard %d/%d: exit %d\n%s", i, n, code, tail(out, 2000))
			}
		})
	}
	wg.Wait()
	if !killed {
		t.Fatalf("shard %d ended before its SIGKILL: the test did not exercise a crash", victim)
	}
	if j, err := os.Stat(filepath.Join(w.spool, fmt.Sprintf("journal.%d-of-%d", victim, n))); err != nil || j.Size() == 0 {
		t.Errorf("the killed shard left no journal lines (%v): it was killed before it delivered anything", err)
	}
	before := len(w.rcptCount())
	if code, out := func() (int, string) {
		_, wait := startFlush(t, w.flushArgs("--shard", fmt.Sprintf("%d/%d", victim, n), "--max-conns", strconv.Itoa(conns))...)
		return wait()
	}(); code != 0 {
		t.Fatalf("rerun of shard %d: exit %d\n%s", victim, code, tail(out, 3000))
	}
	got := w.rcptCount()
	dups := 0
	for rcpt, name := range owner {
		switch c := got[rcpt]; {
		case c == 0:
			t.Errorf("%s lost", rcpt)
		case c > 1 && spool.ShardOf(name, n) != victim:
			t.Errorf("%s of shard %d received %d times", rcpt, spool.ShardOf(name, n), c)
		case c > 1:
			dups += c - 1
		}
	}
	// Each domain is a site of its own: one recipient per transaction.
	if dups > conns {
		t.Errorf("%d duplicates, more than the transactions one kill can leave in flight (%d sessions)", dups, conns)
	}
	t.Logf("shard %d killed with %d of %d recipients received; rerun: %d duplicates", victim, before, len(owner), dups)
	for _, q := range []string{"new", "cur", "failed", "bad"} {
		for _, f := range w.files(q) {
			if !strings.HasPrefix(f, ".") {
				t.Errorf("%s/%s left", q, f)
			}
		}
	}
}

// The sharded systemd units in deploy/systemd/ verify as an instance, and
// the instance's ExecStart, as systemd expands it (%i and ${SHARDS}), is
// a --shard that flush takes.
func TestShardSystemdUnits(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join("deploy", "systemd", "mxflush-shard@.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "--shard %i/${SHARDS}") || !strings.Contains(string(unit), "Environment=SHARDS=") {
		t.Fatalf("mxflush-shard@.service does not build --shard from %%i and SHARDS:\n%s", unit)
	}
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed (Debian package systemd)")
	}
	sysUnits := "/usr/lib/systemd/system"
	if _, err := os.Stat(filepath.Join(sysUnits, "sysinit.target")); err != nil {
		t.Skipf("no system units to verify against in %s", sysUnits)
	}
	root := t.TempDir()
	for _, d := range []string{"usr/local/bin", "usr/lib/systemd", "etc/systemd/system", "var/spool/mxflush/new"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("cp", "-a", sysUnits, filepath.Join(root, "usr/lib/systemd/")).CombinedOutput(); err != nil {
		t.Fatalf("copying %s: %v %s", sysUnits, err, out)
	}
	if out, err := exec.Command("cp", binary(t), filepath.Join(root, "usr/local/bin/mxflush")).CombinedOutput(); err != nil {
		t.Fatalf("copying the binary: %v %s", err, out)
	}
	for _, name := range []string{"mxflush-shard@.service", "mxflush-shard@.timer"} {
		if out, err := exec.Command("cp", filepath.Join("deploy", "systemd", name), filepath.Join(root, "etc/systemd/system", name)).CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	}
	verify := []string{"verify", "--root=" + root, "/etc/systemd/system/mxflush-shard@2.service", "/etc/systemd/system/mxflush-shard@2.timer"}
	out, err := exec.Command("systemd-analyze", verify...).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze %s: %v\n%s", strings.Join(verify, " "), err, out)
	}
	// The ExecStart of instance 2, expanded as systemd does, is a
	// valid flush command line.
	exec1 := regexp.MustCompile(`(?m)^ExecStart=(.*)$`).FindSubmatch(unit)
	shards := regexp.MustCompile(`(?m)^Environment=SHARDS=(\d+)$`).FindSubmatch(unit)
	line := strings.NewReplacer("%i", "2", "${SHARDS}", string(shards[1])).Replace(string(exec1[1]))
	w := newWorld(t, nil, nil, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	openSpool(t, w.spool)
	mine := 0
	for i := range 12 {
		if id := w.enqueue("alice@example.test", msg(fmt.Sprint("unit ", i)), fmt.Sprintf("u%d@a.test", i)); spool.ShardOf(id, 4) == 2 {
			mine++
		}
	}
	args := strings.Fields(line)[1:] // after the binary
	for i, f := range args {
		if f == "/var/spool/mxflush" {
			args[i] = w.spool
		}
	}
	args = append(args, "--dns", w.dns.Addr(), "--port", strconv.Itoa(w.port), "--helo", "relay.test")
	if code, out, errs := w.run("", args...); code != 0 || w.received() != mine || !strings.Contains(line, "--shard 2/4") {
		t.Errorf("%s: exit %d, %d received, want 0 and shard 2's %d\n%s%s", line, code, w.received(), mine, out, errs)
	}
}

// A shard's bounce is its own: the DSN gets a name that hashes to the
// shard, so the same run's bounce pass delivers it and, when that is
// deferred, its later runs retry it; another shard, which may be running
// at the same time, never sees it.
func TestFlushShardBounces(t *testing.T) {
	refuse := func(string) testnet.SMTPOptions {
		return testnet.SMTPOptions{Rcpt: func(to string) error {
			switch {
			case strings.HasPrefix(to, "gone"):
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
			case to == "alice@example.test":
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "mailbox busy"}
			}
			return nil
		}}
	}
	w := newWorld(t, nil, refuse, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2", "example.test. MX 10 mx.a.test.")
	openSpool(t, w.spool)
	const n = 3
	var ids []string
	for i := range 9 {
		ids = append(ids, w.enqueue("alice@example.test", msg(fmt.Sprint("b ", i)), fmt.Sprintf("gone%d@a.test", i)))
	}
	for i := range n {
		mine := countShard(ids, n, i) - countShard(ids, n, i-1)
		code, out, errs := w.flush("--shard", fmt.Sprintf("%d/%d", i, n))
		if mine > 0 && code != 69 || mine == 0 && code != 0 {
			t.Errorf("shard %d/%d with %d to bounce: exit %d\n%s%s", i, n, mine, code, out, errs)
		}
		// The DSNs, deferred, wait in cur/ under names of the shards
		// that made them.
		if got, want := len(w.files("cur")), countShard(ids, n, i); got != want {
			t.Errorf("after shards 0-%d: %d deferred DSNs in cur/, want %d", i, got, want)
		}
		for _, f := range w.files("cur") {
			if spool.ShardOf(f, n) > i {
				t.Errorf("cur/%s, a DSN made by shards 0-%d, is shard %d's", f, i, spool.ShardOf(f, n))
			}
		}
		for _, f := range w.files("new") {
			if spool.ShardOf(f, n) <= i {
				t.Errorf("new/%s of shard %d left after its run", f, spool.ShardOf(f, n))
			}
		}
	}
}

// countShard counts the ids of shards 0 to i of n (none for i < 0).
func countShard(ids []string, n, i int) int {
	c := 0
	for _, id := range ids {
		if spool.ShardOf(id, n) <= i {
			c++
		}
	}
	return c
}
