package main

import (
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

// spool init warns when the origin, this host's name by default, has no
// dot: root and www-data would become addresses no one can answer, and
// their bounces would pile up. A fully qualified origin gets no warning.
func TestSpoolInitWarnsUnqualifiedOrigin(t *testing.T) {
	g, err := user.LookupGroupId("0")
	if err != nil {
		t.Skip(err)
	}
	w := &world{t: t}
	for origin, warn := range map[string]bool{"vm": true, "host.example.test": false} {
		t.Setenv("MXFLUSH_ORIGIN", origin)
		code, out, errs := w.run("", "spool", "init", "--spool", filepath.Join(t.TempDir(), "spool"), "--group", g.Name)
		if code != 0 {
			t.Fatalf("spool init: exit %d\n%s%s", code, out, errs)
		}
		if got := strings.Contains(out, "is not fully qualified"); got != warn {
			t.Errorf("origin %q: warning shown %v, want %v\n%s", origin, got, warn, out)
		}
	}
}
