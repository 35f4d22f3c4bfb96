package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// readmeBlock returns the lines of the README's here-document that follows
// `cat > NAME <<'END'` and whose first line is first.
func readmeBlock(t *testing.T, name, first string) string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?s)cat > ` + regexp.QuoteMeta(name) + ` <<'END'\n(` + regexp.QuoteMeta(first) + `.*?)\nEND\n`)
	m := re.FindSubmatch(b)
	if m == nil {
		t.Fatalf("README.md has no `cat > %s <<'END'` block starting with %q", name, first)
	}
	return string(m[1])
}

// The README's CI routes file, as printed, with the test inbox's address:
// every message goes to the inbox, whatever its domain, a real one
// included, and no domain is looked up in DNS.
func TestReadmeCIRoutes(t *testing.T) {
	w := newWorld(t, []string{"127.0.0.1"}, nil)
	block := readmeBlock(t, "routes", "# CI:")
	if !strings.Contains(block, "smtp:[127.0.0.1]:1025") {
		t.Fatalf("the README's CI routes no longer send to [127.0.0.1]:1025:\n%s", block)
	}
	routes := writeTemp(t, "routes", strings.ReplaceAll(block, ":1025", ":"+strconv.Itoa(w.port)), 0o644)
	w.enqueue("ci@example.test", msg("to a test domain"), "bob@a.test")
	w.enqueue("ci@example.test", msg("to a real domain"), "customer@example.com")
	code, out, errs := w.flush("--routes", routes, "--no-bounce")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	if got := len(w.recv["127.0.0.1"].Messages()); got != 2 {
		t.Errorf("the test inbox got %d messages, want both", got)
	}
	for _, d := range []string{"a.test", "example.com"} {
		if n := w.dns.Queries(d, dns.TypeMX); n != 0 {
			t.Errorf("%d MX queries for %s: a CI run must never look a domain up", n, d)
		}
	}
}

// ciSteps returns the run scripts of the README's CI steps by name.
func ciSteps(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```yaml\n(- name: Make the spool.*?)```").FindSubmatch(b)
	if m == nil {
		t.Fatal("README.md has no CI steps block starting with \"- name: Make the spool\"")
	}
	steps := map[string]string{}
	var name string
	lines := strings.Split(string(m[1]), "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if n, ok := strings.CutPrefix(l, "- name: "); ok {
			name = n
			continue
		}
		run, ok := strings.CutPrefix(strings.TrimSpace(l), "run: ")
		if !ok || name == "" {
			continue
		}
		if run != "|" {
			steps[name] = run
			continue
		}
		var script []string
		for i+1 < len(lines) && strings.HasPrefix(lines[i+1], "    ") {
			i++
			script = append(script, strings.TrimPrefix(lines[i], "    "))
		}
		steps[name] = strings.Join(script, "\n")
	}
	return steps
}

// The README's CI steps, run as printed by sh with mxflush on PATH and the
// inbox's port: a test run that queued nothing exits 0; one that queued a
// message to a real domain delivers it to the inbox and exits 0 with a
// JSON summary.
func TestReadmeCISteps(t *testing.T) {
	steps := ciSteps(t)
	initStep, deliver := steps["Make the spool the tests queue their mail in"], steps["Deliver the test mail to the test inbox"]
	if initStep == "" || deliver == "" {
		t.Fatalf("README CI steps not found: %q", steps)
	}
	bin := binary(t)
	for _, queued := range []bool{false, true} {
		w := newWorld(t, []string{"127.0.0.1"}, nil)
		dir := t.TempDir()
		sh := func(script string) (int, string) {
			cmd := exec.Command("sh", "-e", "-c", script)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+":/usr/bin:/bin", "MXFLUSH_DNS="+w.dns.Addr())
			return combined(t, cmd)
		}
		if code, out := sh(initStep); code != 0 {
			t.Fatalf("%s: exit %d\n%s", initStep, code, out)
		}
		if queued {
			w.spool = filepath.Join(dir, "spool")
			w.enqueue("ci@example.test", msg("from the tests"), "customer@example.com")
		}
		code, out := sh(strings.ReplaceAll(deliver, ":1025", ":"+strconv.Itoa(w.port)))
		summary, _ := os.ReadFile(filepath.Join(dir, "mxflush-summary.json"))
		if code != 0 || !strings.Contains(string(summary), `"exit_code":0`) {
			t.Errorf("queued %v: deliver step exit %d, summary %s\n%s", queued, code, summary, out)
		}
		if want := map[bool]int{false: 0, true: 1}[queued]; len(w.recv["127.0.0.1"].Messages()) != want {
			t.Errorf("queued %v: the inbox got %d messages, want %d", queued, len(w.recv["127.0.0.1"].Messages()), want)
		}
	}
}

// The README's crontab line, as printed (the binary at the path Install
// gives it, the spool at its path), run on an empty spool: it prints
// nothing, so cron mails nothing, and exits 0.
func TestReadmeCronLine(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\*/10 \* \* \* \* (/\S+/mxflush) (flush .*)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("README.md has no crontab line '*/10 * * * * /PATH/mxflush flush ...'")
	}
	if string(m[1]) != "/usr/local/bin/mxflush" {
		t.Errorf("the crontab line calls %s, not the path Install puts the binary at", m[1])
	}
	w := newWorld(t, nil, nil)
	openSpool(t, w.spool)
	args := strings.Fields(strings.ReplaceAll(string(m[2]), "/var/spool/mxflush", w.spool))
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(os.Environ(), "MXFLUSH_DNS="+w.dns.Addr(), "MXFLUSH_CONFIG=")
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("%s: %v, printed %q; want exit 0 and nothing for cron to mail", strings.Join(args, " "), err, out)
	}
}
