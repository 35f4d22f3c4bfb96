package interop

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// env is what the whole package shares: the built binary and the daemons,
// each started once, on first use, and stopped by TestMain.
type env struct {
	bin string // the built mxflush

	pfOnce sync.Once
	pf     *postfix
	pfErr  error // a start failure: the tests that need Postfix fail
	pfSkip string
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
	defer shared.stop()
	return m.Run()
}

// stop stops the daemons that were started, and reports one that would
// not stop.
func (e *env) stop() {
	if e.pf != nil {
		if err := e.pf.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "TestMain:", err)
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
