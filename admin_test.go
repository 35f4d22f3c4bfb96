package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mxflush/mxflush/spool"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// fixtureNow is the fixed clock of the admin tests: three hours after the
// first fixture's arrival.
var fixtureNow = time.Date(2026, 11, 29, 15, 0, 0, 0, time.UTC)

// Fixture IDs in testdata/queue.
const (
	idNew    = "1796040000.P1R01.fixture" // new/: bob@a.test, carol@b.test
	idCur    = "1796040060.P1R02.fixture" // cur/: dave@a.test deferred (next 15:30), gone@b.test failed
	idHold   = "1796040120.P1R03.fixture" // hold/: erin@c.test, from <>
	idFailed = "1796040180.P1R04.fixture" // failed/: frank@b.test failed
)

// fixtureSpool copies testdata/queue into a temp dir, with the queue
// directories git cannot keep empty, and returns the spool.
func fixtureSpool(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "spool")
	err := filepath.WalkDir("testdata/queue", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("testdata/queue", p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := spool.Create(dst); err != nil {
		t.Fatal(err)
	}
	return dst
}

// runAt runs mxflush in-process with the clock at fixtureNow.
func runAt(stdin string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := runGlobals(args, Globals{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb,
		now: func() time.Time { return fixtureNow }})
	return code, out.String(), errb.String()
}

// golden compares got with testdata/golden/name (rewritten with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("output differs from %s:\n--- got\n%s\n--- want\n%s", p, got, want)
	}
}

// The listing and show commands, table and JSON, against golden files.
func TestQueueAndShowGolden(t *testing.T) {
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"queue.txt", []string{"queue"}},
		{"queue.json", []string{"queue", "--json"}},
		{"queue-failed-held.txt", []string{"queue", "--failed", "--held"}},
		{"queue-failed.json", []string{"queue", "--failed", "--json"}},
		{"queue-domain-b.txt", []string{"queue", "--domain", "B.TEST."}},
		{"queue-domain-c-held.json", []string{"queue", "--held", "--domain", "c.test", "--json"}},
		{"show-cur.txt", []string{"show", idCur}},
		{"show-cur.json", []string{"show", idCur, "--json"}},
		{"show-held-body.txt", []string{"show", idHold, "--body"}},
		{"show-failed-body.json", []string{"show", idFailed, "--body", "--json"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			sp := fixtureSpool(t)
			code, out, errs := runAt("", append(tc.args, "--spool", sp)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			golden(t, tc.golden, out)
			if strings.HasSuffix(tc.golden, ".json") {
				for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
					var v map[string]any
					if err := json.Unmarshal([]byte(line), &v); err != nil {
						t.Errorf("not one JSON object per line: %v: %s", err, line)
					}
				}
			}
		})
	}
}

// An ID with a slash or ".." is refused before any file is touched (exit 64).
func TestAdminRefusesPathIDs(t *testing.T) {
	for _, cmd := range []string{"show", "retry", "hold", "release", "delete", "requeue"} {
		for _, id := range []string{"../" + idNew, "new/" + idNew, "..", "a..b", ".hidden"} {
			t.Run(cmd+" "+id, func(t *testing.T) {
				sp := fixtureSpool(t)
				code, _, errs := runAt("", cmd, "--spool", sp, id)
				if code != 64 || !strings.Contains(errs, "is not a message ID") {
					t.Fatalf("exit %d, stderr %q; want 64 and 'is not a message ID'", code, errs)
				}
				if _, err := os.Stat(filepath.Join(sp, "new", idNew)); err != nil {
					t.Errorf("the fixture changed: %v", err)
				}
			})
		}
	}
}

// Errors per message: unknown ID (66), wrong queue (65), nothing selected
// or both IDs and a filter (64), a flush holding the lock (75).
func TestAdminErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		errs string
	}{
		{"unknown id", []string{"hold", "1.P1R99.nothere"}, 66, "no such message"},
		{"show unknown", []string{"show", "1.P1R99.nothere"}, 66, "no such message"},
		{"hold a failed message", []string{"hold", idFailed}, 65, "it is in failed/"},
		{"release a queued message", []string{"release", idNew}, 65, "it is in new/"},
		{"requeue a queued message", []string{"requeue", idCur}, 65, "it is in cur/"},
		{"retry a failed message", []string{"retry", idFailed}, 65, "it is in failed/"},
		{"no selection", []string{"delete"}, 64, "give message IDs, --stdin or --domain, --all or --failed"},
		{"ids and filter", []string{"retry", "--all", idNew}, 64, "(one of them)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := fixtureSpool(t)
			code, _, errs := runAt("", append(tc.args, "--spool", sp)...)
			if code != tc.code || !strings.Contains(errs, tc.errs) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errs, tc.code, tc.errs)
			}
		})
	}
	t.Run("locked", func(t *testing.T) {
		sp := fixtureSpool(t)
		unlock, err := openSpool(t, sp).Lock()
		if err != nil {
			t.Fatal(err)
		}
		defer unlock()
		code, _, errs := runAt("", "hold", "--spool", sp, idNew)
		if code != 75 || !strings.Contains(errs, "locked by another flush") {
			t.Fatalf("exit %d, stderr %q; want 75 while the lock is held", code, errs)
		}
		if _, err := os.Stat(filepath.Join(sp, "new", idNew)); err != nil {
			t.Errorf("hold moved the message although the lock was held: %v", err)
		}
	})
}

// One ID not found does not stop the others, and the exit code says so.
func TestAdminPartialFailure(t *testing.T) {
	sp := fixtureSpool(t)
	code, out, errs := runAt("", "hold", "--spool", sp, idNew, "1.P1R99.nothere", idCur)
	if code != 66 || !strings.Contains(errs, "1.P1R99.nothere: no such message") {
		t.Fatalf("exit %d, stderr %q; want 66", code, errs)
	}
	if !strings.Contains(out, "hold: 2 message(s)") {
		t.Errorf("output %q: want both found messages held", out)
	}
	for _, id := range []string{idNew, idCur} {
		if _, err := os.Stat(filepath.Join(sp, "hold", id)); err != nil {
			t.Errorf("%s not in hold/: %v", id, err)
		}
	}
}

// retry clears the next attempt and keeps the message where it is, state
// and all; --json says what it did.
func TestRetryClearsBackoff(t *testing.T) {
	sp := fixtureSpool(t)
	code, out, errs := runAt("", "retry", "--spool", sp, "--json", idCur)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if want := `{"id":"` + idCur + `","action":"retry","from":"cur","to":"cur"}` + "\n"; out != want {
		t.Errorf("json %q, want %q", out, want)
	}
	m, err := openSpool(t, sp).Load(spool.QueueCur, idCur)
	if err != nil {
		t.Fatal(err)
	}
	if !m.NextAttempt.IsZero() || m.Attempts != 2 || m.Replies["dave@a.test"] == "" || len(m.Failed) != 1 {
		t.Errorf("after retry: next %v, attempts %d, replies %v, failed %v; want next cleared, the rest kept",
			m.NextAttempt, m.Attempts, m.Replies, m.Failed)
	}
}

// delete removes what it selects and counts it; --failed empties failed/.
func TestDelete(t *testing.T) {
	sp := fixtureSpool(t)
	code, out, errs := runAt("", "delete", "--spool", sp, "--domain", "a.test")
	if code != 0 || !strings.Contains(out, "delete: 2 message(s)") {
		t.Fatalf("exit %d, out %q, err %q; want 2 deleted (new/ and cur/ have a.test recipients)", code, out, errs)
	}
	code, out, _ = runAt("", "delete", "--spool", sp, "--failed")
	if code != 0 || !strings.Contains(out, "delete: 1 message(s)") {
		t.Fatalf("exit %d, out %q; want 1 deleted from failed/", code, out)
	}
	for q, want := range map[string]int{"new": 0, "cur": 0, "failed": 0, "hold": 1} {
		ents, _ := os.ReadDir(filepath.Join(sp, q))
		if len(ents) != want {
			t.Errorf("%s/ has %d files, want %d", q, len(ents), want)
		}
	}
}

// delete --domain D selects by pending recipients: a deferred message
// whose only D recipient has already failed keeps its pending recipient in
// another domain, and is not deleted. In failed/ a failed recipient counts.
func TestDeleteDomainSparesOtherPendingRecipients(t *testing.T) {
	sp := fixtureSpool(t)
	code, out, errs := runAt("", "delete", "--spool", sp, "--domain", "b.test")
	if code != 0 || !strings.Contains(out, "delete: 1 message(s)") || !strings.Contains(out, idNew) {
		t.Fatalf("exit %d, out %q, err %q; want only %s deleted (carol@b.test pending), not %s (gone@b.test failed, dave@a.test pending)", code, out, errs, idNew, idCur)
	}
	if _, err := openSpool(t, sp).Load(spool.QueueCur, idCur); err != nil {
		t.Errorf("%s with dave@a.test pending was deleted: %v", idCur, err)
	}
	code, out, _ = runAt("", "delete", "--spool", sp, "--failed", "--domain", "b.test")
	if code != 0 || !strings.Contains(out, idFailed) {
		t.Errorf("exit %d, out %q; want %s deleted from failed/ (frank@b.test failed)", code, out, idFailed)
	}
	for q, want := range map[string]int{"new": 0, "cur": 1, "failed": 0, "hold": 1} {
		ents, _ := os.ReadDir(filepath.Join(sp, q))
		if len(ents) != want {
			t.Errorf("%s/ has %d files, want %d", q, len(ents), want)
		}
	}
}

// hold/ is never sent: a held message stays put through a flush --all, and
// after release the next flush delivers it. Round trip on a real spool
// against a loopback receiver.
func TestHoldReleaseRoundTrip(t *testing.T) {
	w := newWorld(t, nil, nil, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.2")
	held := w.enqueue("alice@example.test", msg("held"), "bob@a.test")
	w.enqueue("alice@example.test", msg("sent"), "carol@a.test")
	if code, out, errs := w.run("", "hold", "--spool", w.spool, held); code != 0 || !strings.Contains(out, "hold: "+held+" (new/ -> hold/)") {
		t.Fatalf("hold: exit %d, %q, %q", code, out, errs)
	}
	if code, out, errs := w.flush("--all"); code != 0 {
		t.Fatalf("flush: exit %d\n%s\n%s", code, out, errs)
	}
	if n := w.received(); n != 1 {
		t.Fatalf("received %d messages, want 1: the held one must not be sent", n)
	}
	if got := w.files("hold"); len(got) != 1 || got[0] != held {
		t.Fatalf("hold/ = %v, want [%s]", got, held)
	}
	if code, out, errs := w.run("", "release", "--spool", w.spool, "--all"); code != 0 || !strings.Contains(out, "release: "+held+" (hold/ -> new/)") {
		t.Fatalf("release: exit %d, %q, %q", code, out, errs)
	}
	if code, out, errs := w.flush(); code != 0 {
		t.Fatalf("flush: exit %d\n%s\n%s", code, out, errs)
	}
	if n := w.received(); n != 2 {
		t.Errorf("received %d messages, want 2 after release", n)
	}
	if left := append(w.files("hold"), w.files("new")...); len(left) != 0 {
		t.Errorf("spool still holds %v", left)
	}
}

// requeue puts a failed message back in new/ with its failed recipients
// pending; after the operator fixed the route, the next flush delivers it.
func TestRequeueFromFailed(t *testing.T) {
	w := newWorld(t, nil, nil, "b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.2")
	sp := fixtureSpool(t)
	w.spool = sp
	// Only the failed fixture: clear the others so the flush sends just it.
	for _, p := range []string{"new/" + idNew, "cur/" + idCur, "hold/" + idHold} {
		if err := os.Remove(filepath.Join(sp, p)); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errs := w.run("", "requeue", "--spool", sp, "--failed", "--json")
	if want := `{"id":"` + idFailed + `","action":"requeue","from":"failed","to":"new"}` + "\n"; code != 0 || out != want {
		t.Fatalf("requeue: exit %d, %q (want %q), %q", code, out, want, errs)
	}
	m, err := openSpool(t, sp).Load(spool.QueueNew, idFailed)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.To) != 1 || m.To[0] != "frank@b.test" || len(m.Failed) != 0 || m.Attempts != 0 {
		t.Fatalf("requeued envelope: to %v, failed %v, attempts %d; want frank@b.test pending, no failures, 0 attempts", m.To, m.Failed, m.Attempts)
	}
	if len(w.files("failed")) != 0 {
		t.Errorf("failed/ still has %v", w.files("failed"))
	}
	if code, out, errs := w.flush(); code != 0 {
		t.Fatalf("flush: exit %d\n%s\n%s", code, out, errs)
	}
	if got := w.recv["127.0.0.2"].Messages(); len(got) != 1 {
		t.Errorf("received %d messages, want the requeued one", len(got))
	}
}

// delete --all empties new/, cur/ and hold/ (postsuper -d ALL), leaving
// failed/; --stdin takes IDs one a line (postsuper -d -), and a message
// named ALL or "-" is an ID like any other, never a selection.
func TestAdminAllAndStdin(t *testing.T) {
	sp := fixtureSpool(t)
	code, out, errs := runAt("", "delete", "--spool", sp, "--all")
	if code != 0 || !strings.Contains(out, "delete: 3 message(s)") {
		t.Fatalf("delete --all: exit %d\n%s%s", code, out, errs)
	}
	for q, want := range map[string]int{"new": 0, "cur": 0, "hold": 0, "failed": 1} {
		if ents, _ := os.ReadDir(filepath.Join(sp, q)); len(ents) != want {
			t.Errorf("after delete --all, %s/ has %d files, want %d", q, len(ents), want)
		}
	}

	sp = fixtureSpool(t)
	for _, name := range []string{"ALL", "-"} {
		if err := os.WriteFile(filepath.Join(sp, "new", name), []byte("X-Envelope-From: <a@example.test>\nX-Envelope-To: <b@example.test>\n\nhi\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errs = runAt("  "+idNew+"\n\nALL\n"+idCur+"\n", "hold", "--spool", sp, "--stdin")
	if code != 0 || !strings.Contains(out, "hold: 3 message(s)") {
		t.Fatalf("hold --stdin: exit %d\n%s%s", code, out, errs)
	}
	for _, id := range []string{idNew, "ALL", idCur} {
		if _, err := os.Stat(filepath.Join(sp, "hold", id)); err != nil {
			t.Errorf("%s not held: %v", id, err)
		}
	}
	if _, err := os.Stat(filepath.Join(sp, "new", "-")); err != nil {
		t.Errorf("the message named - was moved: %v", err)
	}
	code, out, errs = runAt("", "release", "--spool", sp, "--stdin")
	if code != 0 || !strings.Contains(out, "release: 0 message(s)") {
		t.Errorf("release --stdin with nothing on stdin: exit %d\n%s%s", code, out, errs)
	}
	code, _, errs = runAt(idNew+"\n", "delete", "--spool", sp, "--stdin", "--all")
	if code != 64 || !strings.Contains(errs, "--stdin names messages by ID") {
		t.Errorf("delete --stdin --all: exit %d, want 64\n%s", code, errs)
	}
}

// expire fails the pending recipients now with 4.4.7 (postsuper -e): the
// sender gets one DSN, queued in new/ for the next flush, with the last
// reply as its diagnostic, and the message goes to failed/. With --domain,
// only that domain's recipients fail; the others stay pending, untried.
func TestExpire(t *testing.T) {
	sp := fixtureSpool(t)
	code, out, errs := runAt("", "expire", "--spool", sp, idCur)
	if code != 0 || !strings.Contains(out, "expire: "+idCur+" (cur/ -> failed/)") {
		t.Fatalf("expire %s: exit %d\n%s%s", idCur, code, out, errs)
	}
	failed, err := os.ReadFile(filepath.Join(sp, "failed", idCur))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(failed), "X-Envelope-Failed: bounced <dave@a.test> 4.4.7 delivery time expired: expired by the operator") ||
		!strings.Contains(string(failed), "X-Envelope-Failed: bounced <gone@b.test> 550 5.1.1") {
		t.Errorf("failed/%s:\n%s", idCur, failed)
	}
	var dsns []string
	ents, _ := os.ReadDir(filepath.Join(sp, "new"))
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(sp, "new", e.Name()))
		if strings.HasPrefix(string(b), "X-Envelope-From: <>\n") {
			dsns = append(dsns, string(b))
		}
	}
	if len(dsns) != 1 || !strings.Contains(dsns[0], "X-Envelope-To: <alice@example.test>") ||
		!strings.Contains(dsns[0], "Status: 4.4.7") || !strings.Contains(dsns[0], "451 4.7.1 Greylisted") || strings.Contains(dsns[0], "Final-Recipient: rfc822; gone@b.test") {
		t.Errorf("want one DSN to alice for dave@a.test (4.4.7, last reply 451), none for the earlier failure; got %d:\n%s", len(dsns), strings.Join(dsns, "\n---\n"))
	}

	sp = fixtureSpool(t)
	code, out, errs = runAt("", "expire", "--spool", sp, "--domain", "b.test")
	if code != 0 || !strings.Contains(out, "expire: "+idNew+" (new/ -> cur/)") || !strings.Contains(out, "expire: 1 message(s)") {
		t.Fatalf("expire --domain b.test: exit %d\n%s%s", code, out, errs)
	}
	rest, err := os.ReadFile(filepath.Join(sp, "cur", idNew))
	if err != nil {
		t.Fatal(err)
	}
	if s := string(rest); !strings.Contains(s, "X-Envelope-To: <bob@a.test>") || strings.Contains(s, "X-Envelope-To: <carol@b.test>") ||
		!strings.Contains(s, "bounced <carol@b.test> 4.4.7") {
		t.Errorf("after expire --domain b.test, %s should keep bob@a.test pending and carol@b.test failed:\n%s", idNew, s)
	}
}
