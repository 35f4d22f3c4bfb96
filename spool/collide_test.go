package spool

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// A producer that reuses a name still held in cur/ or failed/ gets its new
// message delivered under a fresh name; neither message is lost or
// overwritten.
func TestScanReusedName(t *testing.T) {
	for _, later := range []string{QueueCur, QueueFailed} {
		t.Run(later, func(t *testing.T) {
			s := newSpool(t)
			const id = "report.eml"
			old := "X-Envelope-From: <a@example.test>\nX-Envelope-To: <b@example.test>\nX-Envelope-Attempts: 1\n\nSubject: day 1\n\nold\n"
			if later == QueueFailed {
				old = "X-Envelope-From: <a@example.test>\nX-Envelope-Failed: <b@example.test> 550 no\n\nSubject: day 1\n\nold\n"
			}
			writeRaw(t, s, later, id, old)
			writeRaw(t, s, QueueNew, id, "X-Envelope-From: <a@example.test>\nX-Envelope-To: <boss@example.test>\n\nSubject: day 2\n\nnew\n")
			msgs, probs := mustScan(t, s)
			if len(probs) != 0 {
				t.Fatalf("problems: %+v", probs)
			}
			var fresh *Message
			for _, m := range msgs {
				if m.Queue == QueueNew {
					fresh = m
				}
			}
			if fresh == nil || fresh.ID == id || len(fresh.To) != 1 || fresh.To[0] != "boss@example.test" {
				t.Fatalf("the day-2 message was not scanned under a fresh name: %+v", msgs)
			}
			if b, err := os.ReadFile(filepath.Join(s.Dir(), later, id)); err != nil || string(b) != old {
				t.Errorf("%s/%s changed: %q, %v", later, id, b, err)
			}
			// Deferring the fresh one never overwrites the older message.
			if err := s.Defer(fresh, Envelope{From: fresh.From, To: fresh.To, Attempts: 1}); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(filepath.Join(s.Dir(), later, id)); string(b) != old {
				t.Errorf("Defer overwrote %s/%s", later, id)
			}
			if b, _ := os.ReadFile(filepath.Join(s.Dir(), QueueCur, fresh.ID)); !strings.Contains(string(b), "day 2") {
				t.Errorf("cur/%s does not hold the day-2 message: %q", fresh.ID, b)
			}
		})
	}
}

// RemoveUnsynced deletes like Remove (the directory fsync is left to
// SyncQueues, which the caller runs before forgetting its own record).
func TestRemoveUnsynced(t *testing.T) {
	s := newSpool(t)
	writeRaw(t, s, QueueNew, "gone", "X-Envelope-From: <a@example.test>\nX-Envelope-To: <b@example.test>\n\nbody\n")
	msgs, _ := mustScan(t, s)
	if len(msgs) != 1 {
		t.Fatalf("scan: %+v", msgs)
	}
	if err := s.RemoveUnsynced(msgs[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), QueueNew, "gone")); !os.IsNotExist(err) {
		t.Errorf("file still there: %v", err)
	}
	if err := s.SyncQueues(); err != nil {
		t.Errorf("SyncQueues: %v", err)
	}
	if err := s.RemoveUnsynced(msgs[0]); err == nil {
		t.Error("removing a message twice did not fail")
	}
}

// The same alert, same body, under a reused name: the first one to
// gone@ failed and is kept in failed/; the next one, to oncall@, must be
// delivered, not removed as a "stale copy" because its body is the same.
// Whether failed/ was written with a UID (this version) or without (an
// older one), a copy whose recipient the other lacks is a new message.
func TestScanReusedNameSameBody(t *testing.T) {
	const body = "\nSubject: disk full\n\nweb1: / is 100% full\n"
	for _, tc := range []struct{ name, failed string }{
		{"failed/ with a UID", "X-Envelope-From: <cron@example.test>\nX-Envelope-Id: 9f86d081884c7d659a2feaa0c55ad015\nX-Envelope-Attempts: 1\nX-Envelope-Failed: bounced <gone@a.test> 550 5.1.1 No such user\n"},
		{"failed/ from an older version", "X-Envelope-From: <cron@example.test>\nX-Envelope-Attempts: 1\nX-Envelope-Failed: bounced <gone@a.test> 550 5.1.1 No such user\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSpool(t)
			writeRaw(t, s, "failed", "alert.eml", tc.failed+body)
			writeRaw(t, s, "new", "alert.eml", "X-Envelope-From: <cron@example.test>\nX-Envelope-To: <oncall@a.test>\n"+body)
			msgs, probs := mustScan(t, s)
			if len(probs) != 0 || len(msgs) != 1 || msgs[0].ID == "alert.eml" || !slices.Equal(msgs[0].To, []string{"oncall@a.test"}) {
				t.Fatalf("scan: %+v, problems %+v; want the alert to oncall@ under a fresh name", msgs, probs)
			}
			if _, err := os.Stat(filepath.Join(s.Dir(), "failed", "alert.eml")); err != nil {
				t.Errorf("failed/alert.eml: %v", err)
			}
		})
	}
}

// A copy left by a crash between a state change's rename and its unlink is
// recognised by its UID, whatever the two envelopes say: the later one has
// fewer recipients (some delivered) and the earlier is a plain file whose
// fingerprint the state change wrote down.
func TestScanStaleCopyByUID(t *testing.T) {
	s := newSpool(t)
	p := writeRaw(t, s, "new", "report.eml", "From: a@example.test\nTo: b@a.test, c@a.test\nSubject: r\n\nbody\n")
	msgs, _ := mustScan(t, s)
	m := msgs[0]
	// Defer up to its rename into cur/; the crash comes before its unlink
	// of new/report.eml, which stays exactly as it was.
	env := m.Envelope
	env.To, env.Attempts = []string{"c@a.test"}, 1
	nenv, err := normalize(env, true)
	if err != nil {
		t.Fatal(err)
	}
	body, err := s.Open(m)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.writeState(QueueCur, m.ID, nenv, body, true)
	body.Close()
	if err != nil {
		t.Fatal(err)
	}
	msgs, probs := mustScan(t, s)
	if len(probs) != 0 || len(msgs) != 1 || msgs[0].Queue != "cur" || !slices.Equal(msgs[0].To, []string{"c@a.test"}) {
		t.Errorf("scan: %+v, problems %+v; want only cur/report.eml", msgs, probs)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("stale new/ copy not removed: %v", err)
	}
}

// A cron job copies the same alert template into new/ with cp -p every
// day: same name, size, modification time and header. Yesterday's copy
// waits in cur/ (deferred, its fingerprint written down as its UID);
// today's has the same fingerprint, but it is another message, not a
// stale copy: the kernel gave it a status change time after yesterday's
// state was written.
func TestScanSameTemplateCopiedAgain(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the status change time is read on Linux only")
	}
	s := newSpool(t)
	const content = "From: cron@example.test\nTo: oncall@a.test\nSubject: disk full\n\nweb1\n"
	stamp := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	p := writeRaw(t, s, "new", "alert.eml", content)
	os.Chtimes(p, stamp, stamp)
	msgs, _ := mustScan(t, s)
	if err := s.Defer(msgs[0], Envelope{From: msgs[0].From, To: msgs[0].To, Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	p = writeRaw(t, s, "new", "alert.eml", content) // cp -p: same bytes, same mtime
	os.Chtimes(p, stamp, stamp)
	msgs, probs := mustScan(t, s)
	if len(probs) != 0 || len(msgs) != 2 {
		t.Errorf("scan: %d messages, problems %+v; want yesterday's in cur/ and today's under a fresh name", len(msgs), probs)
	}
}
