//go:build linux

package interop

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// env is what the whole package shares: the built binary and the daemons,
// each started once, on first use, and stopped by TestMain.
type env struct {
	bin string // the built mxflush

	pfOnce sync.Once
	pf     *postfix
	pfErr  error // a start failure: the tests that need Postfix fail
	pfSkip string

	dnsOnce sync.Once
	dns     *dnsChain
	dnsErr  error
	dnsSkip string
}

var shared env

// TestMain builds mxflush once, isolates it from the machine's
// configuration (every MXFLUSH_* variable dropped, an empty config file, no
// aliases, a fixed origin), runs the tests and stops every daemon a test
// started, whatever the tests' outcome.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "MXFLUSH_") {
			os.Unsetenv(k)
		}
	}
	dir, err := os.MkdirTemp("", "mxflush-interop-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "TestMain:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	cfg := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfg, []byte("{}\n"), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "TestMain:", err)
		return 1
	}
	os.Setenv("MXFLUSH_CONFIG", cfg)
	os.Setenv("MXFLUSH_ALIASES", "")
	os.Setenv("MXFLUSH_ORIGIN", "origin.test")

	shared.bin = filepath.Join(dir, "mxflush")
	build := exec.Command("go", "build", "-o", shared.bin, "github.com/mxflush/mxflush")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "TestMain: go build: %v\n%s", err, out)
		return 1
	}
	// Postfix's master daemonizes, and nsd forks its server: as a
	// subreaper this process becomes the parent of those orphans, so
	// that stop can reap them instead of leaving zombies to init.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "TestMain: PR_SET_CHILD_SUBREAPER:", err)
		return 1
	}
	defer shared.stop()
	return m.Run()
}

// stop stops the daemons that were started, DNS first (nothing asks it
// once the tests are done), and reports one that would not stop.
func (e *env) stop() {
	if e.dns != nil {
		if err := e.dns.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "TestMain:", err)
		}
	}
	if e.pf != nil {
		if err := e.pf.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "TestMain:", err)
		}
	}
	// Every command the tests ran has been waited for: what is left to
	// reap are the daemons' orphans, which stop saw end.
	for {
		var ws unix.WaitStatus
		if pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil); pid <= 0 || err != nil {
			return
		}
	}
}

// needProgs returns "" when every program is installed, or a message
// naming the first one missing. Postfix's own programs live in sbin
// directories that a plain user's PATH may lack.
func needProgs(progs ...string) string {
	for _, p := range progs {
		if _, err := lookProg(p); err != nil {
			return fmt.Sprintf("%s is not installed (Debian package %s): the interop tests need it", p, debPackage[p])
		}
	}
	return ""
}

var debPackage = map[string]string{
	"postfix":       "postfix",
	"postconf":      "postfix",
	"nsd":           "nsd",
	"unbound":       "unbound",
	"ldns-keygen":   "ldnsutils",
	"ldns-signzone": "ldnsutils",
}

func lookProg(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, exec.ErrNotFound)
}

// result is one run of the built binary.
type result struct {
	code   int
	stdout string
	stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// mxflush runs the built binary with args and stdin.
func mxflush(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(shared.bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	r := result{stdout: out.String(), stderr: errb.String()}
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	return r
}

// alive says whether a process with that pid exists and is not a zombie.
func alive(pid int) bool {
	state, _, ok := procStat(pid)
	return ok && state != "Z"
}

// procStat returns a process's state and parent from /proc/PID/stat.
func procStat(pid int) (state string, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, false
	}
	// The fields after the command, which is in parentheses and may hold
	// anything, are "STATE PPID ...".
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return "", 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return f[0], ppid, err == nil
}

// children returns the pids of pid's child processes.
func children(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, ok := procStat(n); ok && ppid == pid {
			kids = append(kids, n)
		}
	}
	return kids
}

// waitGone waits up to d for the processes to end, kills those still
// running then, and returns them.
func waitGone(pids []int, d time.Duration) []int {
	deadline := time.Now().Add(d)
	for {
		var left []int
		for _, pid := range pids {
			if alive(pid) {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			for _, pid := range left {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}
