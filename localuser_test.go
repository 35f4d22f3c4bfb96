package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/mxflush/mxflush/spool"
)

// The tests in this file run mxflush as other users. As root they use
// setpriv(1) (util-linux) and groupadd(8)/groupdel(8) (passwd); they skip
// with a message when not root or when a tool is missing.

const nobodyUID = 65534

// needRoot skips the test unless it runs as root with the tools given.
func needRoot(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs mxflush as another user")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
}

// reachable opens the test's temp directories on the way to dir to other
// users (mode 0755), so that nobody can reach what is inside.
func reachable(t *testing.T, dir string) {
	t.Helper()
	for p := os.TempDir(); ; p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm()&0o001 == 0 {
			t.Skipf("%s cannot be passed through by other users: set TMPDIR to a directory they can reach", p)
		}
		if p == "/" || p == "." {
			break
		}
	}
	for p := dir; p != os.TempDir() && p != "/" && p != "."; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// nobodyGroup is the primary group of nobody ("nogroup" on Debian).
func nobodyGroup(t *testing.T) string {
	t.Helper()
	u, err := user.LookupId(strconv.Itoa(nobodyUID))
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Skipf("no group for nobody: %v", err)
	}
	return g.Name
}

// asNobody runs argv as nobody with no supplementary group, stdin given,
// and returns the exit code and the combined output.
func asNobody(t *testing.T, stdin string, env []string, argv ...string) (int, string) {
	t.Helper()
	args := append([]string{"--reuid", "nobody", "--regid", nobodyGroup(t), "--clear-groups", "--"}, argv...)
	cmd := exec.Command("setpriv", args...)
	cmd.Env = append(os.Environ(), "MXFLUSH_CONFIG="+readableConfig(t))
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = strings.NewReader(stdin)
	return combined(t, cmd)
}

// combined runs cmd and returns its exit status and what it printed on
// stdout and stderr together; a command that cannot be run fails the test.
func combined(t *testing.T, cmd *exec.Cmd) (int, string) {
	t.Helper()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	return 0, string(out)
}

// readableConfig is an empty config file nobody can read (TestMain's is
// in a directory of mode 0700).
func readableConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	reachable(t, dir)
	p := filepath.Join(dir, "config.json")
	if err := os.WriteFile(p, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// runBinary runs the built binary as the test's user.
func runBinary(t *testing.T, args ...string) (int, string) {
	t.Helper()
	return combined(t, exec.Command(binary(t), args...))
}

// chownTree gives dir and everything in it to uid:gid, never following a
// symlink.
func chownTree(t *testing.T, dir string, uid, gid int) {
	t.Helper()
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Only spool init creates a spool: flush, queue, show, mailq and the admin
// commands on a misspelled path exit 66 naming it and create nothing.
func TestMissingSpoolExit66(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spol")
	for _, args := range [][]string{
		{"flush", "--dns", "127.0.0.1:53", "--helo", "relay.test"},
		{"queue"},
		{"show", "1796040000.P1R01.fixture"},
		{"retry", "1796040000.P1R01.fixture"},
		{"delete", "--domain", "a.test"},
		{"sendmail", "-bp"},
	} {
		var out, errb bytes.Buffer
		code := run(append([]string{"--spool", dir}, args...), strings.NewReader(""), &out, &errb)
		if code != exNoInput || !strings.Contains(errb.String(), dir+" does not exist") {
			t.Errorf("%v: exit %d, %q; want 66 naming %s", args, code, errb.String(), dir)
		}
		if _, err := os.Lstat(dir); err == nil {
			t.Fatalf("%v created %s", args, dir)
		}
	}
}

// queue, show and mailq list a spool they cannot write (no write probe).
func TestQueueCommandsOnReadOnlySpool(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	var out, errb bytes.Buffer
	if code := run([]string{"--spool", dir, "enqueue", "-f", "a@example.test", "b@example.test"}, strings.NewReader(msg("ro")), &out, &errb); code != 0 {
		t.Fatalf("enqueue: %d %s", code, errb.String())
	}
	id := strings.TrimSpace(out.String())
	ents, _ := os.ReadDir(dir)
	defer func() {
		for _, e := range ents {
			os.Chmod(filepath.Join(dir, e.Name()), 0o700)
		}
	}()
	for _, e := range ents {
		if e.IsDir() {
			os.Chmod(filepath.Join(dir, e.Name()), 0o500)
		}
	}
	var bin string
	if os.Geteuid() == 0 {
		// root writes anywhere: run the commands as nobody, the spool's owner.
		needRoot(t, "setpriv")
		reachable(t, filepath.Dir(dir))
		chownTree(t, dir, nobodyUID, nobodyUID)
		bin = install(t, "")
	}
	for _, args := range [][]string{{"queue"}, {"show", id}, {"sendmail", "-bp"}} {
		var code int
		var got string
		if os.Geteuid() == 0 {
			code, got = asNobody(t, "", nil, append([]string{bin, "--spool", dir}, args...)...)
		} else {
			out.Reset()
			errb.Reset()
			code = run(append([]string{"--spool", dir}, args...), strings.NewReader(""), &out, &errb)
			got = out.String() + errb.String()
		}
		if code != 0 || !strings.Contains(got, id) {
			t.Errorf("%v on a read-only spool: exit %d, %q; want the listing", args, code, got)
		}
	}
}

// A user who is not the spool's owner gets a plain exit 77 from the queue
// commands and flush, not a permission error.
func TestQueueCommandsNotOwnerExit77(t *testing.T) {
	needRoot(t, "setpriv")
	dir := filepath.Join(t.TempDir(), "spool")
	if _, err := spool.Create(dir); err != nil {
		t.Fatal(err)
	}
	reachable(t, filepath.Dir(dir))
	os.Chmod(dir, 0o711)
	bin := install(t, "")
	for _, args := range [][]string{
		{"queue"}, {"show", "1796040000.P1R01.fixture"}, {"sendmail", "-bp"}, {"retry", "--all"},
		{"flush", "--dns", "127.0.0.1:53", "--helo", "relay.test"},
	} {
		code, got := asNobody(t, "", nil, append([]string{bin, "--spool", dir}, args...)...)
		if code != exNoPerm || !strings.Contains(got, "needs the rights of the spool's owner") || !strings.Contains(got, "belongs to root") {
			t.Errorf("%v as nobody: exit %d, %q; want 77 saying whose rights are needed", args, code, got)
		}
	}
}

// Root on a spool owned by another user runs as that user: a symlink the
// owner planted at lock, journal or bad/ reaches nothing of root's.
func TestRootOnUserSpoolFollowsNoPlantedLink(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	reachable(t, base)
	dir := filepath.Join(base, "spool")
	w := newWorld(t, nil, nil)
	w.spool = dir
	w.enqueue("alice@example.test", msg("m"), "bob@example.test")
	victim := filepath.Join(base, "root-file")
	victimDir := filepath.Join(base, "root-dir")
	os.WriteFile(victim, []byte("root's data\n"), 0o644)
	os.Mkdir(victimDir, 0o755)
	os.WriteFile(filepath.Join(dir, "new", "broken"), []byte("X-Envelope-From: <a@example.test>\nno recipient\n"), 0o600)
	chownTree(t, dir, nobodyUID, nobodyUID)

	check := func(when string) {
		t.Helper()
		if b, _ := os.ReadFile(victim); string(b) != "root's data\n" {
			t.Errorf("%s: root's file is now %q", when, b)
		}
		if ents, _ := os.ReadDir(victimDir); len(ents) != 0 {
			t.Errorf("%s: root's directory got %d entries", when, len(ents))
		}
	}
	// The owner's links, made as the owner would (lchown: they are its own).
	plant := func(name, target string) {
		p := filepath.Join(dir, name)
		os.RemoveAll(p)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		os.Lchown(p, nobodyUID, nobodyUID)
	}
	plant("lock", victim)
	code, out := runBinary(t, "flush", "--spool", dir, "--dns", w.dns.Addr(), "--port", strconv.Itoa(w.port), "--helo", "relay.test")
	if code == 0 {
		t.Errorf("flush with lock a link to root's file: exit 0\n%s", out)
	}
	check("lock")
	os.Remove(filepath.Join(dir, "lock"))
	plant("journal", victim)
	plant("bad", victimDir)
	code, out = runBinary(t, "flush", "--spool", dir, "--dns", w.dns.Addr(), "--port", strconv.Itoa(w.port), "--helo", "relay.test")
	if code == 0 {
		t.Errorf("flush with journal and bad/ links into root's files: exit 0\n%s", out)
	}
	check("journal and bad/")
	if !strings.Contains(out, "not writable") {
		t.Errorf("flush output %q, want bad/ reported not writable", out)
	}
}

// uniqueGroup creates a system group for one test and removes it after.
func uniqueGroup(t *testing.T) (name string, gid int) {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	name = "mxft" + hex.EncodeToString(b[:])
	if out, err := exec.Command("groupadd", "--system", name).CombinedOutput(); err != nil {
		t.Skipf("groupadd %s: %v %s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("groupdel", name).Run() })
	g, err := user.LookupGroup(name)
	if err != nil {
		t.Fatal(err)
	}
	gid, _ = strconv.Atoi(g.Gid)
	return name, gid
}

// install copies the built binary into a directory others can reach,
// setgid group (none for ""), with sendmail and mailq links, as the
// README's Install section says; it returns the binary's path.
func install(t *testing.T, group string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bin")
	os.Mkdir(dir, 0o755)
	reachable(t, dir)
	src, err := os.Open(binary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	bin := filepath.Join(dir, "mxflush")
	dst, err := os.OpenFile(bin, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	dst.Close()
	cmds := [][]string{{"ln", "-s", "mxflush", filepath.Join(dir, "sendmail")}, {"ln", "-s", "mxflush", filepath.Join(dir, "mailq")}}
	if group != "" {
		cmds = append(cmds, []string{"chgrp", group, bin}, []string{"chmod", "2755", bin})
	}
	for _, c := range cmds {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", c, err, out)
		}
	}
	return bin
}

// The whole local path as another user: spool init, then sendmail run by
// nobody through the setgid binary drops the message into maildrop/ and
// can do nothing else in the spool; a flush as root (switching to the
// owner, daemon) picks it up and delivers it with a Received field naming
// nobody's uid.
func TestSendmailAsAnotherUser(t *testing.T) {
	needRoot(t, "setpriv", "groupadd", "groupdel")
	if _, err := user.Lookup("daemon"); err != nil {
		t.Skipf("no user daemon to own the spool: %v", err)
	}
	group, gid := uniqueGroup(t)
	bin := install(t, group)
	dir := filepath.Join(t.TempDir(), "spool")
	reachable(t, filepath.Dir(dir))
	if code, out := runBinary(t, "spool", "init", "--spool", dir, "--group", group, "--owner", "daemon"); code != 0 {
		t.Fatalf("spool init: exit %d\n%s", code, out)
	}
	w := newWorld(t, nil, nil, "example.test. MX 10 mx.example.test.", "mx.example.test. A 127.0.0.2")
	w.spool = dir
	env := []string{"MXFLUSH_SPOOL=" + dir}

	// A message already queued by the owner, for nobody to try to read.
	var out, errb bytes.Buffer
	if code := runGlobals([]string{"--spool", dir, "enqueue", "-f", "alice@example.test", "carol@example.test"},
		Globals{stdin: strings.NewReader(msg("secret")), stdout: &out, stderr: &errb}); code != 0 {
		t.Fatalf("enqueue as root: %d %s", code, errb.String())
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, spool.DirMaildrop)); len(ents) != 1 {
		t.Fatalf("root's enqueue on daemon's spool: maildrop/ has %d files, want 1", len(ents))
	}
	rootDrop, _ := os.ReadDir(filepath.Join(dir, spool.DirMaildrop))
	queued := filepath.Join(dir, spool.DirMaildrop, rootDrop[0].Name()) // another user's maildrop file
	owned := filepath.Join(dir, "new", "1796040000.P1R01.owner")        // a message of the owner's
	if err := os.WriteFile(owned, []byte("X-Envelope-From: <a@example.test>\nX-Envelope-To: <dave@example.test>\n"+msg("owner's")), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(owned, 1, 1)

	code, got := asNobody(t, "Subject: from nobody\n\nhello\n", env, filepath.Join(filepath.Dir(bin), "sendmail"), "bob@example.test")
	if code != 0 {
		t.Fatalf("sendmail as nobody: exit %d\n%s", code, got)
	}
	md, _ := os.ReadDir(filepath.Join(dir, spool.DirMaildrop))
	var mine string
	for _, e := range md {
		fi, _ := e.Info()
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid == nobodyUID {
			mine = e.Name()
			if strings.HasPrefix(mine, ".") || int(st.Gid) != gid || fi.Mode().Perm() != 0o640 {
				t.Errorf("nobody's maildrop file %s: gid %d mode %v, want a final name, gid %d, 0640", mine, st.Gid, fi.Mode(), gid)
			}
		}
	}
	if mine == "" {
		t.Fatalf("no file of nobody's in maildrop/: %v", md)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "new")); len(ents) != 1 {
		t.Errorf("sendmail as nobody wrote into new/: %v", ents)
	}

	// nobody can do nothing else: not with its own rights, and not with
	// the group's either (as if it had taken the binary's group).
	for _, groups := range [][]string{nil, {"--groups", group}} {
		for _, sh := range []string{
			"ls " + dir + "/new",
			"cat " + owned,
			"rm -f " + owned,
			"ls " + dir,
			"ls " + dir + "/maildrop",
			"cat " + dir + "/journal",
			"touch " + dir + "/new/x",
			"touch " + dir + "/x",
			"rm -f " + queued,
			"mv " + queued + " " + dir + "/maildrop/y",
			"cat " + dir + "/lock",
		} {
			args := []string{"--reuid", "nobody", "--regid", nobodyGroup(t), "--clear-groups"}
			if groups != nil {
				args = []string{"--reuid", "nobody", "--regid", nobodyGroup(t), "--groups", group}
			}
			cmd := exec.Command("setpriv", append(args, "--", "sh", "-c", sh)...)
			cmd.Env = []string{"PATH=/usr/bin:/bin"}
			if out, err := cmd.CombinedOutput(); err == nil {
				t.Errorf("as nobody (groups %v): %q succeeded: %s", groups, sh, out)
			}
		}
	}
	if _, err := os.Lstat(queued); err != nil {
		t.Errorf("root's maildrop file is gone: %v", err)
	}
	// The group is for the maildrop file only: a setgid run reads its
	// config file with the caller's rights, so one only the group may read
	// is refused.
	groupOnly := filepath.Join(filepath.Dir(bin), "group-only.json")
	os.WriteFile(groupOnly, []byte("{}\n"), 0o640)
	os.Chown(groupOnly, 0, gid)
	code, got = asNobody(t, msg("cfg"), append(env, "MXFLUSH_CONFIG="+groupOnly), bin, "enqueue", "-f", "a@example.test", "bob@example.test")
	if code != 78 || !strings.Contains(got, "permission denied") {
		t.Errorf("setgid run with a config file only the group can read: exit %d %q, want 78 permission denied", code, got)
	}

	code, got = asNobody(t, "", env, filepath.Join(filepath.Dir(bin), "mailq"))
	if code != exNoPerm {
		t.Errorf("mailq as nobody: exit %d %q, want 77", code, got)
	}

	// The flush as root runs as daemon, picks both files up and delivers.
	code, got = runBinary(t, "flush", "--spool", dir, "--dns", w.dns.Addr(), "--port", strconv.Itoa(w.port), "--helo", "relay.test")
	if code != 0 {
		t.Fatalf("flush: exit %d\n%s", code, got)
	}
	if !strings.Contains(got, "2 message(s) picked up from maildrop/") {
		t.Errorf("flush summary %q, want 2 picked up", got)
	}
	var fromNobody bool
	for _, m := range w.recv["127.0.0.2"].Messages() {
		if m.To[0] == "bob@example.test" {
			fromNobody = true
			if !bytes.Contains(m.Data, []byte("(mxflush, from userid "+strconv.Itoa(nobodyUID)+")")) || !bytes.HasPrefix(m.Data, []byte("Received: by relay.test ")) {
				t.Errorf("delivered message:\n%s\nwant a Received field naming userid %d", m.Data, nobodyUID)
			}
		}
	}
	if !fromNobody {
		t.Errorf("nobody's message was not delivered: %s", got)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, spool.DirMaildrop)); len(ents) != 0 {
		t.Errorf("maildrop/ after the flush: %v", ents)
	}
	for _, name := range []string{"journal", "lock"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Sys().(*syscall.Stat_t).Uid != 1 || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v; want daemon's, mode 0600", name, fi, err)
		}
	}
}

// flush starts with a pickup: a dropped message is delivered with a
// Received field naming its submitter's uid, the summary counts it, and a
// symlink left in maildrop/ goes to bad/ (exit 65) without being followed.
func TestFlushPicksUpMaildrop(t *testing.T) {
	w := newWorld(t, nil, nil, "example.test. MX 10 mx.example.test.", "mx.example.test. A 127.0.0.2")
	if _, err := spool.Init(w.spool, spool.InitOptions{UID: os.Geteuid(), GID: os.Getegid(), Group: os.Getegid()}); err != nil {
		t.Fatal(err)
	}
	md := filepath.Join(w.spool, spool.DirMaildrop)
	if _, err := spool.Drop(md, spool.Envelope{From: "alice@example.test", To: []string{"bob@example.test"}}, strings.NewReader(msg("dropped")),
		0, func(fn func() error) error { return fn() }); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("X-Envelope-From: <a@example.test>\nX-Envelope-To: <bob@example.test>\n"+msg("secret")), 0o600)
	os.Symlink(secret, filepath.Join(md, "link"))

	code, out, errs := w.flush()
	if code != 65 {
		t.Fatalf("exit %d, want 65 (a maildrop file moved to bad/)\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "1 message(s) picked up from maildrop/") ||
		!strings.Contains(out, "spool problem: maildrop/link: not a regular file (a symbolic link) (moved to "+filepath.Join(w.spool, "bad", "link")+")") {
		t.Errorf("summary:\n%s", out)
	}
	msgs := w.recv["127.0.0.2"].Messages()
	if len(msgs) != 1 || !bytes.HasPrefix(msgs[0].Data, []byte("Received: by relay.test (mxflush, from userid "+strconv.Itoa(os.Geteuid())+")\r\n\tid ")) ||
		!bytes.Contains(msgs[0].Data, []byte("body of dropped")) {
		t.Fatalf("delivered: %+v", msgs)
	}
	if ents, _ := os.ReadDir(md); len(ents) != 0 {
		t.Errorf("maildrop/ after the flush: %v", ents)
	}
}

// enqueue by root on a spool another user owns writes only into
// maildrop/, a file of maildrop/'s group that the owner's pickup can read.
func TestEnqueueNotOwnerGoesToMaildrop(t *testing.T) {
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "spool")
	if _, err := spool.Init(dir, spool.InitOptions{UID: nobodyUID, GID: nobodyUID, Group: 4242}); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"--spool", dir, "enqueue", "-f", "a@example.test", "b@example.test"}, strings.NewReader(msg("x")), &out, &errb); code != 0 {
		t.Fatalf("enqueue: exit %d %s", code, errb.String())
	}
	ents, _ := os.ReadDir(filepath.Join(dir, spool.DirMaildrop))
	if len(ents) != 1 || strings.TrimSpace(out.String()) != ents[0].Name() {
		t.Fatalf("maildrop/ = %v, printed %q", ents, out.String())
	}
	fi, _ := ents[0].Info()
	if st := fi.Sys().(*syscall.Stat_t); st.Gid != 4242 || fi.Mode().Perm() != 0o640 {
		t.Errorf("maildrop file: gid %d mode %v, want 4242 and 0640", st.Gid, fi.Mode())
	}
	for _, q := range []string{"new", "tmp"} {
		if ents, _ := os.ReadDir(filepath.Join(dir, q)); len(ents) != 0 {
			t.Errorf("%s/ = %v: enqueue touched the owner's queue", q, ents)
		}
	}
}

// spool init creates the layout and says so, says "ok" on a second run,
// and names an unknown group (exit 67).
func TestSpoolInitCommand(t *testing.T) {
	grp, err := user.LookupGroupId(strconv.Itoa(os.Getegid()))
	if err != nil {
		t.Skipf("no name for gid %d: %v", os.Getegid(), err)
	}
	dir := filepath.Join(t.TempDir(), "spool")
	init := func(args ...string) (int, string) {
		var out bytes.Buffer
		code := run(append([]string{"--spool", dir, "spool", "init"}, args...), strings.NewReader(""), &out, &out)
		return code, out.String()
	}
	if code, out := init("--group", "no-such-group-mxflush"); code != exNoUser || !strings.Contains(out, "group no-such-group-mxflush does not exist") {
		t.Errorf("unknown group: exit %d %q", code, out)
	}
	if _, err := os.Lstat(dir); err == nil {
		t.Error("spool init with an unknown group created the spool")
	}
	code, out := init("--group", grp.Name)
	if code != 0 || !strings.Contains(out, "created "+filepath.Join(dir, "maildrop")+" (owner ") || !strings.Contains(out, "mode 1730)") {
		t.Fatalf("first init: exit %d\n%s", code, out)
	}
	code, out = init("--group", grp.Name)
	if code != 0 || strings.Contains(out, "created") || strings.Count(out, "\nok ")+1 != 8 || !strings.HasPrefix(out, "ok ") {
		t.Errorf("second init: exit %d\n%s", code, out)
	}
	var so, se bytes.Buffer
	if code := run([]string{"--spool", dir, "queue"}, strings.NewReader(""), &so, &se); code != 0 {
		t.Errorf("queue on the new spool: exit %d %s", code, se.String())
	}
}

// root's sendmail on a spool of another user's that has no maildrop/ (made
// before it existed) becomes the owner and enqueues into new/, rather than
// fail and lose cron's mail.
func TestRootEnqueueOnOldSpoolBecomesOwner(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	reachable(t, base)
	dir := filepath.Join(base, "spool")
	if _, err := spool.Create(dir); err != nil {
		t.Fatal(err)
	}
	chownTree(t, dir, nobodyUID, nobodyUID)
	cmd := exec.Command(binary(t), "--spool", dir, "sendmail", "bob@example.test")
	cmd.Stdin = strings.NewReader(msg("cron"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sendmail as root: %v %s", err, out)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "new"))
	if len(ents) != 1 {
		t.Fatalf("new/ = %v, want the message", ents)
	}
	fi, _ := ents[0].Info()
	if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != nobodyUID {
		t.Errorf("queued file owned by uid %d, want the spool's owner", uid)
	}
}

// queue (mailq) says how many submitted messages wait in maildrop/ for the
// next flush, since they are in no queue yet.
func TestQueueCountsMaildrop(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	if _, err := spool.Init(dir, spool.InitOptions{UID: os.Geteuid(), GID: os.Getegid(), Group: os.Getegid()}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := spool.Drop(filepath.Join(dir, spool.DirMaildrop), spool.Envelope{From: "a@example.test", To: []string{"b@example.test"}},
			strings.NewReader(msg("d")), 0, func(fn func() error) error { return fn() }); err != nil {
			t.Fatal(err)
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"--spool", dir, "sendmail", "-bp"}, strings.NewReader(""), &out, &errb); code != 0 ||
		out.String() != "no messages in new/, cur/, hold/\n2 message(s) in maildrop/ wait for the next flush to pick them up\n" {
		t.Errorf("mailq: exit %d %q %s", code, out.String(), errb.String())
	}
}

// A setgid submission takes --max-message-size and --min-free from its
// caller only to tighten them: nobody with MXFLUSH_MAX_MESSAGE_SIZE=0 is
// still held to the default 10MiB, and with MXFLUSH_MIN_FREE=0 to the
// default reserve, so that local users cannot fill the spool's file system
// under the flush's state writes. (The system config file, which could
// set other limits, must be absent for the defaults to apply.)
func TestSetgidSubmissionCannotLoosenLimits(t *testing.T) {
	needRoot(t, "setpriv", "groupadd", "groupdel", "mount", "umount")
	if _, err := os.Stat(defaultConfig); err == nil {
		t.Skipf("%s exists: its limits, not the defaults, would apply", defaultConfig)
	}
	if _, err := user.Lookup("daemon"); err != nil {
		t.Skipf("no user daemon to own the spool: %v", err)
	}
	group, _ := uniqueGroup(t)
	bin := install(t, group)
	sendmail := filepath.Join(filepath.Dir(bin), "sendmail")
	initAt := func(dir string) {
		t.Helper()
		if code, out := runBinary(t, "spool", "init", "--spool", dir, "--group", group, "--owner", "daemon"); code != 0 {
			t.Fatalf("spool init: exit %d\n%s", code, out)
		}
	}
	maildrop := func(dir string) int {
		ents, _ := os.ReadDir(filepath.Join(dir, spool.DirMaildrop))
		return len(ents)
	}

	dir := filepath.Join(t.TempDir(), "spool")
	reachable(t, filepath.Dir(dir))
	initAt(dir)
	loose := []string{"MXFLUSH_SPOOL=" + dir, "MXFLUSH_MAX_MESSAGE_SIZE=0", "MXFLUSH_MIN_FREE=0"}
	big := "Subject: big\n\n" + strings.Repeat(strings.Repeat("x", 99)+"\n", 110_000) // 11 MB
	if code, out := asNobody(t, big, loose, sendmail, "bob@example.test"); code != 65 || maildrop(dir) != 0 {
		t.Errorf("11 MB as nobody with MXFLUSH_MAX_MESSAGE_SIZE=0: exit %d, %d file(s) in maildrop/; want 65 and none\n%s", code, maildrop(dir), out)
	}
	if code, out := asNobody(t, "Subject: small\n\nhi\n", loose, sendmail, "bob@example.test"); code != 0 || maildrop(dir) != 1 {
		t.Errorf("a small message as nobody: exit %d, %d file(s) in maildrop/; want 0 and one\n%s", code, maildrop(dir), out)
	}

	mnt := filepath.Join(t.TempDir(), "small")
	os.Mkdir(mnt, 0o755)
	reachable(t, mnt)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	small := filepath.Join(mnt, "spool")
	initAt(small)
	loose[0] = "MXFLUSH_SPOOL=" + small
	if code, out := asNobody(t, "Subject: small\n\nhi\n", loose, sendmail, "bob@example.test"); code != 75 || maildrop(small) != 0 {
		t.Errorf("as nobody with MXFLUSH_MIN_FREE=0 on a 4 MiB file system: exit %d, %d file(s) in maildrop/; want 75 and none\n%s", code, maildrop(small), out)
	}
}

// A maildrop/ on a file system with less free space than --min-free: the
// refusal Drop makes, measured on the file it created, is exit 75 (the
// caller may try again), and nothing is left in maildrop/.
func TestDepositMaildropReserveExit75(t *testing.T) {
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "spool")
	if _, err := spool.Init(dir, spool.InitOptions{UID: nobodyUID, GID: nobodyUID, Group: 4242}); err != nil {
		t.Fatal(err)
	}
	reserve := byteSize(1 << 62)
	g := &Globals{Spool: dir, MinFree: &reserve}
	_, err := deposit(g, spool.Envelope{From: "a@example.test", To: []string{"b@example.test"}}, strings.NewReader(msg("x")))
	if code := exitCodeOf(err); code != 75 {
		t.Errorf("deposit: exit %d (%v), want 75", code, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, spool.DirMaildrop)); len(ents) != 0 {
		t.Errorf("maildrop/ = %v after a refusal for space", ents)
	}
}
