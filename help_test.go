package main

import (
	"regexp"
	"strings"
	"testing"
)

// Every flag's help shows its default: a flag whose column shows a
// placeholder (--max-conns=N) gets "(default: 8)" in its text.
func TestHelpShowsDefaults(t *testing.T) {
	w := &world{t: t}
	code, out, errs := w.run("", "flush", "--help")
	if code != 0 {
		t.Fatalf("flush --help: exit %d\n%s", code, errs)
	}
	// One entry per flag: a line starting with the flag, then its
	// indented continuation lines.
	entries := map[string]string{}
	start := regexp.MustCompile(`^(?:  -\w, |      )--([a-z-]+)`)
	var cur string
	for _, line := range strings.Split(out, "\n") {
		if m := start.FindStringSubmatch(line); m != nil {
			cur = m[1]
		}
		if cur != "" {
			entries[cur] += " " + strings.TrimSpace(line)
		}
	}
	for flag, def := range map[string]string{"max-conns": "32", "port": "25", "conns-per-site": "16", "max-message-size": "10MiB"} {
		if !strings.Contains(entries[flag], "(default: "+def+")") {
			t.Errorf("flush --help: --%s shows no default %s:%s", flag, def, entries[flag])
		}
	}
}
