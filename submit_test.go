package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/mxflush/mxflush/spool"
)

// queued returns the one message in sp's new/: its envelope and the stored
// RFC 5322 message (the file without its envelope lines).
func queued(t *testing.T, sp string) (*spool.Message, string) {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(sp, "new"))
	if len(ents) != 1 {
		t.Fatalf("new/ has %d files, want 1", len(ents))
	}
	m, err := openSpool(t, sp).Load(spool.QueueNew, ents[0].Name())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(sp, "new", ents[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	var body []string
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if !strings.HasPrefix(l, "X-Envelope-") || len(body) > 0 {
			body = append(body, l)
		}
	}
	return m, strings.Join(body, "")
}

// nothingQueued fails when tmp/ or new/ of sp holds a file.
func nothingQueued(t *testing.T, sp string) {
	t.Helper()
	for _, q := range []string{"tmp", "new"} {
		if ents, _ := os.ReadDir(filepath.Join(sp, q)); len(ents) != 0 {
			t.Errorf("%s/ holds %d files after a refused submission", q, len(ents))
		}
	}
}

// cronie's command line, with the message cronie writes (src/do_command.c:
// From and To without a domain), queues from and to root@ORIGIN.
func TestSubmitOriginQualifies(t *testing.T) {
	sp := filepath.Join(t.TempDir(), "spool")
	in := "From: \"(Cron Daemon)\" <root>\nTo: root\nSubject: Cron <root@web1> df\n\noutput\n"
	code, _, errs := runAt(in, "--spool", sp, "--origin", "web1.example.test", "sendmail", "-FCronDaemon", "-i", "-odi", "-oem", "-oi", "-t", "-f", "root")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	m, _ := queued(t, sp)
	if m.From != "root@web1.example.test" || !reflect.DeepEqual(m.To, []string{"root@web1.example.test"}) {
		t.Errorf("envelope %q -> %q, want root@web1.example.test both", m.From, m.To)
	}
}

// The origin comes from --origin, MXFLUSH_ORIGIN or the config file, and
// mxflush config shows the value in effect.
func TestOriginConfig(t *testing.T) {
	code, out, _ := runAt("", "--spool", "/x", "config")
	if code != 0 || !regexpLine(out, `--origin +origin\.test +env MXFLUSH_ORIGIN`) {
		t.Errorf("config: exit %d:\n%s", code, out)
	}
	cfg := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(cfg, []byte(`{"origin": "file.test", "admin_address": "admin@a.test", "min_free": "1M", "aliases": "/etc/x"}`), 0o600)
	t.Setenv("MXFLUSH_ORIGIN", "")
	os.Unsetenv("MXFLUSH_ORIGIN")
	code, out, _ = runAt("", "--spool", "/x", "--config", cfg, "config")
	for _, re := range []string{`--origin +file\.test +file .*`, `--admin-address +admin@a\.test +file .*`, `--min-free +1MiB +file .*`} {
		if code != 0 || !regexpLine(out, re) {
			t.Errorf("config file keys: exit %d, no line %s:\n%s", code, re, out)
		}
	}
	code, out, _ = runAt("", "--spool", "/x", "--origin", "a.test", "config")
	if code != 0 || !regexpLine(out, `--origin +a\.test +flag`) || !regexpLine(out, `--min-free +20MiB +default`) || !regexpLine(out, `--aliases +"" +env MXFLUSH_ALIASES`) {
		t.Errorf("config --origin: exit %d:\n%s", code, out)
	}
}

// Without --origin the origin is this host's FQDN, found without DNS: the
// host name when it has a dot, else its canonical name in /etc/hosts.
func TestHostFQDN(t *testing.T) {
	hosts := filepath.Join(t.TempDir(), "hosts")
	os.WriteFile(hosts, []byte("127.0.0.1 localhost\n# 127.0.1.1 web1.wrong.test web1\n127.0.1.1\tweb1.example.test web1 # comment\n"), 0o644)
	name := func(n string, err error) func() (string, error) { return func() (string, error) { return n, err } }
	for _, tc := range []struct {
		host  func() (string, error)
		hosts string
		want  string
	}{
		{name("web1", nil), hosts, "web1.example.test"},
		{name("WEB1", nil), hosts, "web1.example.test"},
		{name("db1.example.test", nil), hosts, "db1.example.test"},
		{name("db1", nil), hosts, "db1"},
		{name("web1", nil), "/nonexistent/hosts", "web1"},
		{name("", errors.New("no name")), hosts, "localhost"},
		{name("bad name", nil), hosts, "localhost"},
	} {
		h, _ := tc.host()
		if got := hostFQDN(tc.host, tc.hosts); got != tc.want {
			t.Errorf("hostFQDN(%q, %s) = %q, want %q", h, tc.hosts, got, tc.want)
		}
	}
}

// Input without a header section is a body: it gets From, Date,
// Message-ID and To (RFC 5322 §3.6) and an empty line before it.
func TestSubmitBareBody(t *testing.T) {
	sp := filepath.Join(t.TempDir(), "spool")
	code, _, errs := runAt("disk full on web1\n", "--spool", sp, "sendmail", "ops@example.test", "root")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	m, msg := queued(t, sp)
	user := localUser()
	if m.From != user+"@origin.test" || !reflect.DeepEqual(m.To, []string{"ops@example.test", "root@origin.test"}) {
		t.Errorf("envelope %q -> %q", m.From, m.To)
	}
	for _, want := range []string{"Date: Sun, 29 Nov 2026 15:00:00 +0000\n", "\nMessage-ID: <20261129150000.", "@origin.test>\n",
		"\nFrom: <" + user + "@origin.test>\n", "\nTo: ops@example.test, root@origin.test\n\ndisk full on web1\n"} {
		if !strings.Contains(msg, want) {
			t.Errorf("no %q in the stored message:\n%s", want, msg)
		}
	}
	if !strings.HasSuffix(msg, "\n\ndisk full on web1\n") || strings.Count(msg, "\n\n") != 1 {
		t.Errorf("stored message:\n%s", msg)
	}
}

// A line that is no header field after some fields ends the header
// section: the body starts there, after an added empty line; CRLF input
// keeps CRLF in what is added.
func TestSubmitBodyAfterFields(t *testing.T) {
	sp := filepath.Join(t.TempDir(), "spool")
	code, _, errs := runAt("Subject: report\r\nall well\r\n", "--spool", sp, "sendmail", "ops@example.test")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	_, msg := queued(t, sp)
	if !strings.HasSuffix(msg, "\r\nSubject: report\r\n\r\nall well\r\n") || strings.Contains(strings.ReplaceAll(msg, "\r\n", ""), "\n") {
		t.Errorf("stored message:\n%q", msg)
	}
}

// enqueue stores a well-formed message byte for byte: nothing added.
func TestEnqueueByteForByte(t *testing.T) {
	sp := filepath.Join(t.TempDir(), "spool")
	in := "From: a@example.test\r\nTo: b@a.test\r\nSubject: s\r\n\r\nbody\r\n.\r\nno final newline"
	code, _, errs := runAt(in, "--spool", sp, "enqueue", "b@a.test")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if _, msg := queued(t, sp); msg != in {
		t.Errorf("stored %q, want the input %q", msg, in)
	}
}

// -t finds recipients in RFC 5322's obsolete syntax (white space before
// the colon, §4.5.3) and removes such a Bcc field with its continuation.
func TestSendmailObsoleteBcc(t *testing.T) {
	sp := filepath.Join(t.TempDir(), "spool")
	in := "From: a@example.test\nTo : b@a.test\nBcc : hidden@c.test,\n  other@d.test\nSubject: s\n\nbody\n"
	code, _, errs := runAt(in, "--spool", sp, "sendmail", "-t", "-i")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	m, msg := queued(t, sp)
	if want := []string{"b@a.test", "hidden@c.test", "other@d.test"}; !reflect.DeepEqual(m.To, want) {
		t.Errorf("recipients %q, want %q", m.To, want)
	}
	if strings.Contains(msg, "hidden") || strings.Contains(msg, "other@") || !strings.Contains(msg, "\nTo : b@a.test\nSubject: s\n") {
		t.Errorf("Bcc not removed:\n%s", msg)
	}
}

// A message past --max-message-size is refused with 65 and leaves
// nothing in tmp/ or new/; one of exactly the limit is queued.
func TestSubmitSizeLimit(t *testing.T) {
	head := "From: a@example.test\nTo: b@a.test\n\n"
	fit := head + strings.Repeat("x", 1024-len(head))
	sp := filepath.Join(t.TempDir(), "spool")
	for _, cmd := range [][]string{{"enqueue", "b@a.test"}, {"sendmail", "b@a.test"}} {
		args := append([]string{"--spool", sp, "--max-message-size", "1K"}, cmd...)
		code, _, errs := runAt(fit+"y", args...)
		if code != 65 || !strings.Contains(errs, "larger than --max-message-size 1KiB") {
			t.Errorf("%s: exit %d, %q; want 65 and the limit named", cmd[0], code, errs)
		}
		nothingQueued(t, sp)
	}
	if code, _, errs := runAt(fit, "--spool", sp, "--max-message-size", "1K", "enqueue", "b@a.test"); code != 0 {
		t.Errorf("a message of exactly the limit: exit %d, %s", code, errs)
	}
	if code, _, errs := runAt(fit+strings.Repeat("y", 100<<10), "--spool", sp, "--max-message-size", "0", "enqueue", "b@a.test"); code != 0 {
		t.Errorf("--max-message-size 0: exit %d, %s", code, errs)
	}
}

// A header section past the in-memory bound is refused, not cut.
func TestSubmitHeaderLimit(t *testing.T) {
	sp := filepath.Join(t.TempDir(), "spool")
	in := "From: a@example.test\nTo: b@a.test\n" + strings.Repeat("X-Filler: "+strings.Repeat("x", 100)+"\n", headerLimit/100) + "\nbody\n"
	code, _, errs := runAt(in, "--spool", sp, "--max-message-size", "0", "enqueue", "b@a.test")
	if code != 65 || !strings.Contains(errs, "header section is longer than") {
		t.Errorf("exit %d, %q; want 65", code, errs)
	}
	nothingQueued(t, sp)
}

// regexpLine reports whether a line of out matches re.
func regexpLine(out, re string) bool {
	return regexp.MustCompile(`(?m)^` + re + `\s*$`).MatchString(out)
}

// Local recipients go through the aliases (recursively, names in any
// case, root@ORIGIN too), then the admin address, and only then get the
// origin; the queue shows the real recipients. A remote address is left
// alone.
func TestSubmitAliases(t *testing.T) {
	dir := t.TempDir()
	aliases := filepath.Join(dir, "aliases")
	os.WriteFile(aliases, []byte("# test\npostmaster: root\nRoot: ops@a.test,\n  oncall@b.test\nwww-data: webmaster@origin.test\nwebmaster: web@a.test\n"), 0o644)
	sp := filepath.Join(dir, "spool")
	for _, tc := range []struct {
		name  string
		extra []string
		rcpts []string
		want  []string
	}{
		{"aliases", nil, []string{"postmaster", "www-data", "root@ORIGIN.test", "bob@c.test"},
			[]string{"ops@a.test", "oncall@b.test", "web@a.test", "bob@c.test"}},
		{"no alias, no admin address: qualified", nil, []string{"nobody"}, []string{"nobody@origin.test"}},
		{"admin address catches local names without alias", []string{"--admin-address", "admin@a.test"},
			[]string{"nobody", "cron@origin.test", "root", "bob@c.test"}, []string{"admin@a.test", "ops@a.test", "oncall@b.test", "bob@c.test"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.RemoveAll(sp)
			args := append([]string{"--spool", sp, "--aliases", aliases}, tc.extra...)
			code, _, errs := runAt("Subject: s\n\nb\n", append(append(args, "sendmail"), tc.rcpts...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			m, msg := queued(t, sp)
			if !reflect.DeepEqual(m.To, tc.want) {
				t.Errorf("recipients %q, want %q", m.To, tc.want)
			}
			if strings.Contains(msg, "\nTo:") {
				t.Errorf("a To field was added to a message with a header section:\n%s", msg)
			}
			_, out, _ := runAt("", "--spool", sp, "queue")
			for _, r := range tc.want {
				if !strings.Contains(out, r) {
					t.Errorf("queue does not show %s:\n%s", r, out)
				}
			}
		})
	}
}

// A missing named aliases file, a pipe entry and a loop are exit 78 naming
// the file (and line); nothing is queued. A missing default file is fine.
func TestSubmitAliasErrors(t *testing.T) {
	dir := t.TempDir()
	sp := filepath.Join(dir, "spool")
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	for _, tc := range []struct {
		file, want string
	}{
		{filepath.Join(dir, "missing"), "no such file"},
		{write("pipe", "root: ops@a.test\nlogs: |/usr/bin/logger\n"), "pipe:2: logs: \"|/usr/bin/logger\" is a pipe to a command"},
		{write("loop", "root: admin\nadmin: root@origin.test\n"), "loop:1: alias loop: root -> admin -> root"},
	} {
		code, _, errs := runAt("Subject: s\n\nb\n", "--spool", sp, "--aliases", tc.file, "sendmail", "root")
		if code != 78 || !strings.Contains(errs, tc.want) {
			t.Errorf("--aliases %s: exit %d, %q; want 78 and %q", filepath.Base(tc.file), code, errs, tc.want)
		}
		nothingQueued(t, sp)
	}
	if code, _, errs := runAt("", "--spool", sp, "--admin-address", "root", "sendmail", "root"); code != 78 || !strings.Contains(errs, "--admin-address") {
		t.Errorf("--admin-address root: exit %d, %q; want 78", code, errs)
	}
	if code, _, errs := runAt("", "--spool", sp, "--origin", "bad origin", "sendmail", "root"); code != 78 || !strings.Contains(errs, "--origin \"bad origin\" is not a domain") {
		t.Errorf("--origin 'bad origin': exit %d, %q; want 78", code, errs)
	}
}

// Below --min-free of free space on the spool's file system a submission
// is refused with 75 and nothing is written.
func TestSubmitMinFree(t *testing.T) {
	sp := filepath.Join(t.TempDir(), "spool")
	code, _, errs := runAt(msg("x"), "--spool", sp, "--min-free", "8000000G", "enqueue", "-f", "a@example.test", "b@a.test")
	if code != 75 || !strings.Contains(errs, "less than --min-free") {
		t.Fatalf("exit %d, %q; want 75", code, errs)
	}
	if _, err := os.Stat(sp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the spool was created by a refused submission: %v", err)
	}
}

// The default reserve is twice the size limit: on a 4 MiB tmpfs the
// default 10MiB limit (20MiB reserve) refuses, a 1M limit (2MiB reserve)
// queues. Needs root to mount.
func TestSubmitMinFreeDefaultTmpfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	sp := filepath.Join(mnt, "spool")
	code, _, errs := runAt(msg("x"), "--spool", sp, "enqueue", "-f", "a@example.test", "b@a.test")
	if code != 75 || !strings.Contains(errs, "less than --min-free 20MiB") {
		t.Errorf("default reserve: exit %d, %q; want 75", code, errs)
	}
	if code, _, errs := runAt(msg("x"), "--spool", sp, "--max-message-size", "1M", "enqueue", "-f", "a@example.test", "b@a.test"); code != 0 {
		t.Errorf("--max-message-size 1M: exit %d, %s", code, errs)
	}
}

// Header addresses without a domain are qualified where they stand, as
// Postfix rewrites local submissions; other fields and qualified
// addresses are left byte for byte.
func TestSubmitQualifiesHeaderAddresses(t *testing.T) {
	sp := filepath.Join(t.TempDir(), "spool")
	in := "From: Backup <backup>\r\nTo: ops@a.test,\r\n root\r\nReply-To: root (admin), x@b.test\r\nSubject: root: done\r\nCc: list@b.test\r\n\r\nbody\r\n"
	code, _, errs := runAt(in, "--spool", sp, "enqueue", "-t")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	m, msg := queued(t, sp)
	want := "From: Backup <backup@origin.test>\r\nTo: ops@a.test, root@origin.test\r\nReply-To: root@origin.test (admin), x@b.test\r\nSubject: root: done\r\nCc: list@b.test\r\n\r\nbody\r\n"
	if msg != want {
		t.Errorf("stored\n%q\nwant\n%q", msg, want)
	}
	if m.From != "backup@origin.test" || !reflect.DeepEqual(m.To, []string{"ops@a.test", "root@origin.test", "list@b.test"}) {
		t.Errorf("envelope %q -> %q", m.From, m.To)
	}
}

// The size limit lives in the reader handed to deposit, so that it holds
// whatever deposit writes to: its error comes back through deposit
// (wrapped) and nothing is left behind.
func TestDepositSizeLimitReader(t *testing.T) {
	sp := filepath.Join(t.TempDir(), "spool")
	g := &Globals{Spool: sp}
	env := spool.Envelope{From: "a@example.test", To: []string{"b@a.test"}}
	big := "Subject: s\n\n" + strings.Repeat("x", 100<<10)
	_, err := deposit(g, env, newSizeLimit(strings.NewReader(big), 64<<10))
	var tb *tooBigError
	if !errors.As(err, &tb) {
		t.Fatalf("deposit: %v, want the *tooBigError wrapped", err)
	}
	nothingQueued(t, sp)
	if _, err := deposit(g, env, newSizeLimit(strings.NewReader(big), int64(len(big)))); err != nil {
		t.Errorf("a message of exactly the limit: %v", err)
	}
}
