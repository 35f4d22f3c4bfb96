package spool

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// direct is the privileged function of a process that already has the
// rights to write maildrop/ (the tests run as the spool's owner).
func direct(fn func() error) error { return fn() }

// initSpool makes a spool with Init, owned by the running user, maildrop/
// of the running user's group.
func initSpool(t *testing.T) *Spool {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "spool")
	if _, err := Init(dir, InitOptions{UID: os.Getuid(), GID: os.Getgid(), Group: os.Getgid()}); err != nil {
		t.Fatalf("Init: %v", err)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// Open and OpenReadOnly create nothing: a misspelled spool path is an
// error naming the missing directory, and no tree appears.
func TestOpenMissingCreatesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spol")
	for name, open := range map[string]func(string) (*Spool, error){"Open": Open, "OpenReadOnly": OpenReadOnly} {
		_, err := open(dir)
		var me *MissingError
		if !errors.As(err, &me) || me.Path != dir || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "spool init") {
			t.Errorf("%s(missing): err = %v, want a *MissingError naming %s", name, err, dir)
		}
		if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s created %s (%v)", name, dir, err)
		}
	}
	// A spool made before hold/ existed: the missing queue is named.
	if err := os.MkdirAll(filepath.Join(dir, "new"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"tmp", "cur", "failed", "bad"} {
		os.Mkdir(filepath.Join(dir, d), 0o700)
	}
	var me *MissingError
	if _, err := Open(dir); !errors.As(err, &me) || me.Path != filepath.Join(dir, "hold") {
		t.Errorf("Open without hold/: err = %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "hold")); err == nil {
		t.Error("Open created hold/")
	}
}

// OpenReadOnly lists a spool whose directories cannot be written (a
// read-only mount, an operator without write access); Open refuses it.
func TestOpenReadOnly(t *testing.T) {
	s := newSpool(t)
	enqueueOne(t, s, []byte("Subject: x\n\nbody\n"), "bob@example.test")
	for _, d := range queueDirs {
		p := filepath.Join(s.Dir(), d)
		if err := os.Chmod(p, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(p, 0o700) })
	}
	unprivileged(t, s.Dir(), func() {
		ro, err := OpenReadOnly(s.Dir())
		if err != nil {
			t.Fatalf("OpenReadOnly on a read-only spool: %v", err)
		}
		msgs, probs, err := ro.List(QueueNew)
		if err != nil || len(msgs) != 1 || len(probs) != 0 {
			t.Errorf("List: %d messages, %v, %v", len(msgs), probs, err)
		}
		if _, err := Open(s.Dir()); err == nil || !strings.Contains(err.Error(), "not writable") {
			t.Errorf("Open on a read-only spool: err = %v, want not writable", err)
		}
	})
}

// Init makes the layout with its modes, says what it did, and a second run
// says "ok" for everything; a wrong mode is fixed and said so.
func TestInitLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	o := InitOptions{UID: os.Getuid(), GID: os.Getgid(), Group: os.Getgid()}
	out, err := Init(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 8 || !strings.HasPrefix(out[0], "created "+dir+" ") {
		t.Errorf("first Init said %q", out)
	}
	want := map[string]os.FileMode{
		"": 0o711, "tmp": 0o700, "new": 0o700, "cur": 0o700, "failed": 0o700, "hold": 0o700, "bad": 0o700,
		"maildrop": os.ModeSticky | 0o730,
	}
	for d, m := range want {
		fi, err := os.Lstat(filepath.Join(dir, d))
		if err != nil || !fi.IsDir() || fi.Mode()&(os.ModePerm|os.ModeSticky|os.ModeSetgid) != m {
			t.Errorf("%s/: %v, %v; want mode %v", d, fi.Mode(), err, m)
		}
	}
	out, err = Init(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range out {
		if !strings.HasPrefix(l, "ok ") {
			t.Errorf("second Init: %q, want ok", l)
		}
	}
	os.Chmod(filepath.Join(dir, "new"), 0o755)
	os.WriteFile(filepath.Join(dir, "journal"), nil, 0o644)
	out, _ = Init(dir, o)
	joined := strings.Join(out, "\n")
	if !strings.Contains(joined, "fixed "+filepath.Join(dir, "new")+": mode 0755 -> 0700") ||
		!strings.Contains(joined, "fixed "+filepath.Join(dir, "journal")+": mode 0644 -> 0600") {
		t.Errorf("repair said:\n%s", joined)
	}
	// A symlink where a queue directory belongs is refused, never followed.
	os.Remove(filepath.Join(dir, "bad"))
	target := t.TempDir()
	os.Chmod(target, 0o755)
	os.Symlink(target, filepath.Join(dir, "bad"))
	if _, err := Init(dir, o); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Init with bad/ a symlink: err = %v", err)
	}
	if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o755 {
		t.Errorf("Init changed the symlink's target to %v", fi.Mode())
	}
}

// A file in the spool with a second link may be a file outside it (the
// spool's owner planted the link): Init, run by root, must not give it to
// the owner nor change its mode, and says that it left it.
func TestInitLeavesHardLinks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	o := InitOptions{UID: os.Getuid(), GID: os.Getgid(), Group: os.Getgid()}
	if _, err := Init(dir, o); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(outside, []byte("secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(outside, 0o644)
	link := filepath.Join(dir, QueueNew, "x")
	if err := os.Link(outside, link); err != nil {
		t.Fatal(err)
	}
	out, err := Init(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(outside); fi.Mode().Perm() != 0o644 {
		t.Errorf("Init changed a file outside the spool, linked into new/, to %v", fi.Mode())
	}
	if joined := strings.Join(out, "\n"); !strings.Contains(joined, "left "+link+": it has 2 links") {
		t.Errorf("Init said:\n%s", joined)
	}
}

// Root's Init hands the spool's files to its owner, but not a file of
// another user that the owner moved in (from a shared directory): the
// owner could then read it. A file of the previous owner, or root's, is
// handed over.
func TestInitLeavesOtherUsersFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: chown")
	}
	dir := filepath.Join(t.TempDir(), "spool")
	o := InitOptions{UID: 1, GID: 1, Group: 1} // daemon
	if _, err := Init(dir, o); err != nil {
		t.Fatal(err)
	}
	theirs := filepath.Join(dir, QueueNew, "theirs")
	mine := filepath.Join(dir, QueueNew, "root-made")
	for _, p := range []string{theirs, mine} {
		if err := os.WriteFile(p, []byte("secret\n"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	os.Chown(theirs, 65534, 65534) // nobody's file, moved in
	out, err := Init(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	st := func(p string) (int, os.FileMode) {
		fi, _ := os.Stat(p)
		return int(fi.Sys().(*syscall.Stat_t).Uid), fi.Mode().Perm()
	}
	if uid, mode := st(theirs); uid != 65534 || mode != 0o640 {
		t.Errorf("another user's file was changed to uid %d mode %v", uid, mode)
	}
	if uid, mode := st(mine); uid != 1 || mode != 0o600 {
		t.Errorf("root's file in the spool is uid %d mode %v, want the owner's 0600", uid, mode)
	}
	if joined := strings.Join(out, "\n"); !strings.Contains(joined, "left "+theirs+": it belongs to uid 65534") {
		t.Errorf("Init said:\n%s", joined)
	}
}

const dropMsg = "From: alice@example.test\nSubject: hi\n\nhello\n"

// Drop writes exactly what Enqueue would write, under a final name
// (no dot file left), mode 0640 whatever the umask.
func TestDropWritesEnqueueFormat(t *testing.T) {
	s := initSpool(t)
	env := Envelope{From: "alice@example.test", To: []string{"bob@example.test"}, Arrival: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC),
		UID: "0123456789abcdef0123456789abcdef"} // Enqueue would draw a fresh one
	old := syscall.Umask(0o077)
	name, err := Drop(filepath.Join(s.Dir(), DirMaildrop), env, strings.NewReader(dropMsg), 0, direct)
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.Enqueue(env, strings.NewReader(dropMsg))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(s.Dir(), DirMaildrop, name))
	want, _ := os.ReadFile(filepath.Join(s.Dir(), QueueNew, id))
	if !bytes.Equal(got, want) {
		t.Errorf("maildrop file:\n%s\nenqueued file:\n%s", got, want)
	}
	if n := files(t, s, DirMaildrop); len(n) != 1 || n[0] != name {
		t.Errorf("maildrop/ = %q, want only %s", n, name)
	}
	if fi, _ := os.Stat(filepath.Join(s.Dir(), DirMaildrop, name)); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode())
	}
}

type failReader struct{ n int }

func (r *failReader) Read(p []byte) (int, error) {
	if r.n > 0 {
		n := copy(p, "Subject: x\n\n"+strings.Repeat("a", len(p)))
		r.n -= n
		return n, nil
	}
	return 0, errors.New("message too large")
}

// A message whose reader fails (a size limit) or is refused leaves nothing
// in maildrop/, not even a dot file.
func TestDropLeavesNothingOnError(t *testing.T) {
	s := initSpool(t)
	md := filepath.Join(s.Dir(), DirMaildrop)
	env := Envelope{From: "alice@example.test", To: []string{"bob@example.test"}}
	if _, err := Drop(md, env, &failReader{n: 200 << 10}, 0, direct); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("err = %v, want the reader's", err)
	}
	if _, err := Drop(md, Envelope{From: "a@example.test", To: []string{"bob"}}, strings.NewReader(dropMsg), 0, direct); err == nil {
		t.Error("Drop took a recipient without a domain")
	}
	if _, err := Drop(md, env, strings.NewReader("not a header\n"), 0, direct); err == nil {
		t.Error("Drop took a message that does not start with a header field")
	}
	if n := files(t, s, DirMaildrop); len(n) != 0 {
		t.Errorf("maildrop/ = %q after failed drops", n)
	}
}

// The reserve is measured on the file Drop creates, whatever path led
// there: below it Drop fails with a *LowSpaceError and leaves nothing.
func TestDropKeepsTheReserve(t *testing.T) {
	s := initSpool(t)
	md := filepath.Join(s.Dir(), DirMaildrop)
	env := Envelope{From: "alice@example.test", To: []string{"bob@example.test"}}
	_, err := Drop(md, env, strings.NewReader(dropMsg), 1<<62, direct)
	var le *LowSpaceError
	if !errors.As(err, &le) {
		t.Fatalf("err = %v, want a *LowSpaceError", err)
	}
	if n := files(t, s, DirMaildrop); len(n) != 0 {
		t.Errorf("maildrop/ = %q after a refusal for space", n)
	}
	if _, err := Drop(md, env, strings.NewReader(dropMsg), 1, direct); err != nil {
		t.Errorf("Drop with a reserve of 1 octet: %v", err)
	}
}

// fillingReader is a message of size octets of body lines that, once
// after, octets have been read, writes filler octets into the file
// fill: another submitter writing at the same time.
type fillingReader struct {
	r      io.Reader
	after  int64
	read   int64
	fill   string
	filler int
	err    error
}

func (r *fillingReader) Read(p []byte) (int, error) {
	if r.read >= r.after && r.fill != "" {
		r.err = os.WriteFile(r.fill, bytes.Repeat([]byte("x"), r.filler), 0o600)
		r.fill = ""
	}
	n, err := r.r.Read(p)
	r.read += int64(n)
	return n, err
}

// Submissions at once cannot all pass the first check and fill the disk
// together: the reserve is measured again as the message is written, and
// Drop stops once others took what was above it. Needs root to mount a
// tmpfs of 8 MiB: a reserve of 5 MiB passes at the start; another writer
// then takes 4 MiB while a 1 MiB message is being written.
func TestDropKeepsTheReserveWhileWriting(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	dir := filepath.Join(mnt, "spool")
	if _, err := Init(dir, InitOptions{UID: os.Getuid(), GID: os.Getgid(), Group: os.Getgid()}); err != nil {
		t.Fatal(err)
	}
	body := "Subject: big\n\n" + strings.Repeat(strings.Repeat("a", 76)+"\n", (1<<20)/77)
	r := &fillingReader{r: strings.NewReader(body), after: 256 << 10, fill: filepath.Join(mnt, "filler"), filler: 4 << 20}
	md := filepath.Join(dir, DirMaildrop)
	_, err := Drop(md, Envelope{From: "alice@example.test", To: []string{"bob@example.test"}}, r, 5<<20, direct)
	if r.err != nil {
		t.Fatal(r.err)
	}
	var le *LowSpaceError
	if !errors.As(err, &le) {
		t.Errorf("err = %v, want a *LowSpaceError once the other writer took the space", err)
	}
	if es, _ := os.ReadDir(md); len(es) != 0 {
		t.Errorf("maildrop/ holds %s after a refusal for space", es[0].Name())
	}
}

// A maildrop/ replaced by a symlink (the spool's owner controls the spool
// directory; root's own sendmail drops there too) is refused, and nothing
// is created where it points.
func TestDropRefusesSymlinkedMaildrop(t *testing.T) {
	s := initSpool(t)
	md := filepath.Join(s.Dir(), DirMaildrop)
	target := t.TempDir()
	if err := os.Rename(md, md+".real"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, md); err != nil {
		t.Fatal(err)
	}
	_, err := Drop(md, Envelope{From: "alice@example.test", To: []string{"bob@example.test"}}, strings.NewReader(dropMsg), 0, direct)
	if err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("err = %v, want a refusal naming the symbolic link", err)
	}
	if es, _ := os.ReadDir(target); len(es) != 0 {
		t.Errorf("Drop created %s in the symlink's target", es[0].Name())
	}
}

// Envelope lines past what Pickup takes are refused at submission, where
// the submitter hears of it, and leave nothing in maildrop/.
func TestDropRefusesEnvelopePickupWouldNot(t *testing.T) {
	s := initSpool(t)
	md := filepath.Join(s.Dir(), DirMaildrop)
	env := Envelope{From: "alice@example.test"}
	for i := 0; len(env.To)*40 < maxDropEnvelope; i++ {
		env.To = append(env.To, fmt.Sprintf("r%06d-aaaaaaaaaaaaaaaa@example.test", i))
	}
	_, err := Drop(md, env, strings.NewReader(dropMsg), 0, direct)
	var pe *ParseError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "envelope lines") {
		t.Errorf("err = %v, want a *ParseError about the envelope lines", err)
	}
	if n := files(t, s, DirMaildrop); len(n) != 0 {
		t.Errorf("maildrop/ = %q after a refused envelope", n)
	}
}

func dropOne(t *testing.T, s *Spool, to string) string {
	t.Helper()
	name, err := Drop(filepath.Join(s.Dir(), DirMaildrop), Envelope{From: "alice@example.test", To: []string{to}}, strings.NewReader(dropMsg), 0, direct)
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// Pickup moves a dropped message into new/ with a Received field naming
// the submitter's uid, keeps only the sender and recipients of its
// envelope, and removes it from maildrop/.
func TestPickup(t *testing.T) {
	s := initSpool(t)
	dropped := dropOne(t, s, "bob@example.test")
	// A submitter's own envelope lines beyond From and To are not taken.
	forged := "X-Envelope-From: <alice@example.test>\nX-Envelope-To: <carol@example.test>\nX-Envelope-Arrival: 2000-01-01T00:00:00Z\nX-Envelope-Attempts: 7\n" + dropMsg
	os.WriteFile(filepath.Join(s.Dir(), DirMaildrop, "forged"), []byte(forged), 0o640)
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	n, probs, err := s.Pickup(t.Context(), PickupOptions{Host: "mx.example.test", Now: func() time.Time { return now }})
	if err != nil || n != 2 || len(probs) != 0 {
		t.Fatalf("Pickup = %d, %v, %v", n, probs, err)
	}
	if left := files(t, s, DirMaildrop); len(left) != 0 {
		t.Errorf("maildrop/ = %q after pickup", left)
	}
	msgs, probs := mustScan(t, s)
	if len(msgs) != 2 || len(probs) != 0 {
		t.Fatalf("scan: %d messages, %v", len(msgs), probs)
	}
	for _, m := range msgs {
		if !m.Arrival.Equal(now) || m.Attempts != 0 {
			t.Errorf("%s: arrival %v attempts %d, want the pickup time and 0", m.ID, m.Arrival, m.Attempts)
		}
		body := string(readAll(t, s, m))
		name := dropped
		if m.To[0] == "carol@example.test" {
			name = "forged"
		}
		want := "Received: by mx.example.test (mxflush, from userid " + strconv.Itoa(os.Getuid()) + ")\n\tid " + m.ID + " (maildrop " + name + "); " + now.Format(time.RFC1123Z) + "\n" + dropMsg
		if body != want {
			t.Errorf("message:\n%q\nwant\n%q", body, want)
		}
	}
}

// Pickup cannot be fooled: a symlink (to a file only root can read), a
// FIFO, a hard link, a message over the size limit and a file without
// envelope go to bad/ with their reason, unfollowed and unblocked; a
// directory is left and reported; the symlink's target is untouched.
func TestPickupRefusesTraps(t *testing.T) {
	s := initSpool(t)
	md := filepath.Join(s.Dir(), DirMaildrop)
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("X-Envelope-From: <a@example.test>\nX-Envelope-To: <evil@example.test>\n\nroot's secret\n"), 0o600)
	os.Symlink(secret, filepath.Join(md, "link"))
	if err := syscall.Mkfifo(filepath.Join(md, "fifo"), 0o640); err != nil {
		t.Fatal(err)
	}
	hard := dropOne(t, s, "bob@example.test")
	if err := os.Link(filepath.Join(md, hard), filepath.Join(t.TempDir(), "other")); err != nil {
		t.Skipf("cannot make a hard link: %v", err)
	}
	big := dropOne(t, s, "bob@example.test")
	os.WriteFile(filepath.Join(md, "plain"), []byte("To: bob@example.test\n"+dropMsg), 0o640)
	os.Mkdir(filepath.Join(md, "adir"), 0o700)
	huge := "X-Envelope-From: <a@example.test>\n" + strings.Repeat("X-Envelope-To: <b@example.test>\n", 40000) + "\n"
	os.WriteFile(filepath.Join(md, "hugeenv"), []byte(huge), 0o640)

	n, probs, err := s.Pickup(t.Context(), PickupOptions{Host: "h.test", MaxSize: int64(len(dropMsg)) - 1})
	if err != nil || n != 0 {
		t.Fatalf("Pickup = %d, %v", n, err)
	}
	reasons := map[string]string{}
	for _, p := range probs {
		reasons[p.ID] = p.Reason
		if p.ID != "adir" && p.MovedTo != filepath.Join(s.Dir(), "bad", p.ID) {
			t.Errorf("%s: moved to %q, want bad/", p.ID, p.MovedTo)
		}
		if pe := (*ParseError)(nil); !errors.As(p.Err, &pe) {
			t.Errorf("%s: %v is not a *ParseError: it would count as an I/O failure", p.ID, p.Err)
		}
	}
	for id, want := range map[string]string{
		"link": "symbolic link", "fifo": "named pipe", hard: "2 links", big: "over the size limit",
		"plain": "no envelope lines", "adir": "a directory", "hugeenv": "for its envelope lines",
	} {
		if !strings.Contains(reasons[id], want) {
			t.Errorf("%s: reason %q, want %q", id, reasons[id], want)
		}
	}
	if b, _ := os.ReadFile(secret); !strings.Contains(string(b), "root's secret") {
		t.Error("the symlink's target changed")
	}
	if left := files(t, s, DirMaildrop); len(left) != 1 || left[0] != "adir" {
		t.Errorf("maildrop/ = %q, want only adir", left)
	}
	if q := files(t, s, QueueNew); len(q) != 0 {
		t.Errorf("new/ = %q", q)
	}
}

// Dot files are never picked up: younger than a day they may still be
// written; older ones, a dead sendmail's leftovers, are removed.
func TestPickupDotFiles(t *testing.T) {
	s := initSpool(t)
	md := filepath.Join(s.Dir(), DirMaildrop)
	forged := "X-Envelope-From: <alice@example.test>\nX-Envelope-To: <bob@example.test>\n" + dropMsg
	os.WriteFile(filepath.Join(md, ".young"), []byte(forged), 0o640)
	os.WriteFile(filepath.Join(md, ".old"), []byte(forged), 0o640)
	past := time.Now().Add(-25 * time.Hour)
	os.Chtimes(filepath.Join(md, ".old"), past, past)
	n, probs, err := s.Pickup(t.Context(), PickupOptions{Host: "h.test"})
	if err != nil || n != 0 || len(probs) != 0 {
		t.Fatalf("Pickup = %d, %v, %v", n, probs, err)
	}
	if _, err := os.Lstat(filepath.Join(md, ".young")); err != nil {
		t.Errorf(".young removed: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(md, ".old")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf(".old still there: %v", err)
	}
}

// Pickup streams: a message far larger than the copy buffers arrives whole.
func TestPickupLarge(t *testing.T) {
	s := initSpool(t)
	body := "Subject: big\n\n" + strings.Repeat("0123456789abcdef\n", 1<<16)
	if _, err := Drop(filepath.Join(s.Dir(), DirMaildrop), Envelope{From: "a@example.test", To: []string{"b@example.test"}}, strings.NewReader(body), 0, direct); err != nil {
		t.Fatal(err)
	}
	if n, probs, err := s.Pickup(t.Context(), PickupOptions{Host: "h.test"}); n != 1 || err != nil || len(probs) != 0 {
		t.Fatalf("Pickup = %d, %v, %v", n, probs, err)
	}
	msgs, _ := mustScan(t, s)
	got := readAll(t, s, msgs[0])
	if !bytes.HasSuffix(got, []byte(body)) || len(got) > len(body)+200 {
		t.Errorf("picked up %d octets, want the %d of the message and a Received field", len(got), len(body))
	}
}

// Pickup streams the message: picking up 32 MiB allocates a small fixed
// amount (copy buffers), never the message.
func TestPickupDoesNotHoldTheMessage(t *testing.T) {
	s := initSpool(t)
	p := filepath.Join(s.Dir(), DirMaildrop, "big")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("X-Envelope-From: <a@example.test>\nX-Envelope-To: <b@example.test>\nSubject: big\n\n")
	line := []byte(strings.Repeat("0123456789abcdef", 4) + "\n")
	for n := 0; n < 32<<20; n += len(line) {
		f.Write(line)
	}
	f.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n, probs, err := s.Pickup(t.Context(), PickupOptions{Host: "h.test"})
	runtime.ReadMemStats(&after)
	if n != 1 || err != nil || len(probs) != 0 {
		t.Fatalf("Pickup = %d, %v, %v", n, probs, err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("Pickup of a 32 MiB message allocated %d octets, want under 4 MiB", alloc)
	}
}

// A maildrop name that Drop never gives (a newline in it could forge a log
// line) goes to bad/ under a safe name, and is quoted where it is named.
func TestPickupBadName(t *testing.T) {
	s := initSpool(t)
	name := "x\nstatus=sent"
	os.WriteFile(filepath.Join(s.Dir(), DirMaildrop, name), []byte("no envelope\n"), 0o640)
	_, probs, err := s.Pickup(t.Context(), PickupOptions{Host: "h.test"})
	if err != nil || len(probs) != 1 {
		t.Fatalf("Pickup: %v, %v", probs, err)
	}
	p := probs[0]
	if p.ID != strconv.Quote(name) || strings.ContainsAny(p.Reason+p.MovedTo, "\n") ||
		!strings.HasPrefix(filepath.Base(p.MovedTo), "badname-") || !strings.Contains(p.Reason, `named "x\nstatus=sent"`) {
		t.Errorf("problem %+v", p)
	}
	if left := files(t, s, DirMaildrop); len(left) != 0 {
		t.Errorf("maildrop/ = %q", left)
	}
}
