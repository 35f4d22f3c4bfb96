package main

import (
	"os"
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
