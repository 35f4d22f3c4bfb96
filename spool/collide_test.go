package spool

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
