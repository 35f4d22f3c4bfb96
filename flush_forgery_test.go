package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mxflush/mxflush/internal/testnet"
)

// A producer names its spool file "x\nstatus=sent" (or with a terminal
// escape, or with an octet that is not UTF-8): the flush moves it to bad/
// under a safe name, and no output of flush, queue or show prints a line
// that the name or other spool text starts: no forged "status=sent" log
// line, no forged "exit 0".
func TestSpoolNamesCannotForgeLines(t *testing.T) {
	w := newWorld(t, nil, func(string) testnet.SMTPOptions { return testnet.SMTPOptions{} },
		"a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	openSpool(t, w.spool)
	const env = "X-Envelope-From: <a@src.test>\nX-Envelope-To: <bob@a.test>\n"
	forged := []string{
		"x\nstatus=sent",
		"y\r\nexit 0: everything due was delivered (or nothing was due)\n",
		"esc\x1b[2J\x1b[Hexit 0",
		"bad\xff\x9b2J",
	}
	for _, name := range forged {
		w.put("new", name, env+"\nSubject: forged\n\nbody\n")
	}
	w.put("new", "ok.eml", env+"\nSubject: fine\n\nbody\n")
	w.put("hold", "held\nexit 0: everything due was delivered", env+"X-Envelope-Reply: <bob@a.test> 451 4.7.1 later\n\nSubject: held\n\nbody\n")

	check := func(what, out string) {
		t.Helper()
		for _, line := range strings.Split(out, "\n") {
			l := strings.TrimLeft(line, "\r\x1b[2JH")
			if strings.HasPrefix(l, "status=sent") || strings.HasPrefix(l, "exit 0") || strings.ContainsAny(line, "\r\x1b\x9b") {
				t.Errorf("%s prints a forged line %q in:\n%s", what, line, out)
			}
		}
	}
	code, out, errs := w.flush()
	check("flush stdout", out)
	check("flush stderr", errs)
	if code != 65 || w.received() != 1 {
		t.Errorf("flush: exit %d, %d received; want 65 (files moved to bad/) and ok.eml delivered\n%s%s", code, w.received(), out, errs)
	}
	for _, name := range forged {
		if _, err := os.Lstat(filepath.Join(w.spool, "new", name)); !os.IsNotExist(err) {
			t.Errorf("new/%q not moved: %v", name, err)
		}
	}
	bad := w.files("bad")
	if len(bad) != 2*len(forged) {
		t.Errorf("bad/ holds %q, want %d files and their reasons", bad, len(forged))
	}
	var reasons string
	for _, b := range bad {
		if strings.ContainsAny(b, "\n\r\x1b\x9b\xff") {
			t.Errorf("bad/%q: not a safe name", b)
		}
		if strings.HasSuffix(b, ".reason") {
			reasons += readFile(t, filepath.Join(w.spool, "bad", b))
		}
	}
	if !strings.Contains(reasons, `"x\nstatus=sent"`) {
		t.Errorf("reasons do not name the original file, escaped:\n%s", reasons)
	}

	code, out, errs = w.run("", "queue", "--spool", w.spool, "--held")
	check("queue stdout", out)
	check("queue stderr", errs)
	if code != 0 || !strings.Contains(out, `held\nexit 0`) {
		t.Errorf("queue --held: exit %d, want the held message listed with its name escaped:\n%s%s", code, out, errs)
	}
	code, out, errs = w.run("", "show", "--spool", w.spool, "held\nexit 0: everything due was delivered")
	check("show stdout", out)
	check("show stderr", errs)
	if code != 0 || !strings.Contains(out, `id:`) {
		t.Errorf("show: exit %d:\n%s%s", code, out, errs)
	}
	code, out, errs = w.run("", "show", "--spool", w.spool, "missing\nexit 0: everything due was delivered")
	check("show of a missing ID, stderr", errs)
	if code != 66 {
		t.Errorf("show of a missing ID: exit %d, want 66", code)
	}
}
