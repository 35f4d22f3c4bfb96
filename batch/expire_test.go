package batch

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mxflush/mxflush/deliver"
	"github.com/mxflush/mxflush/spool"
)

// Expire fails the pending recipients with 4.4.7 and moves the message to
// failed/; a message from the null sender gets no DSN (RFC 3464 §2: a DSN
// is never sent about a DSN), its failures noted not-bounced.
func TestExpireNullSender(t *testing.T) {
	sp, err := spool.Create(filepath.Join(t.TempDir(), "spool"))
	if err != nil {
		t.Fatal(err)
	}
	body := "X-Envelope-From: <>\nX-Envelope-To: <bob@a.test>\nX-Envelope-Attempts: 1\nX-Envelope-Reply: <bob@a.test> 451 4.7.1 later\nSubject: dsn\n\nhi\n"
	if err := os.WriteFile(filepath.Join(sp.Dir(), "cur", "m1"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := sp.Load(spool.QueueCur, "m1")
	if err != nil {
		t.Fatal(err)
	}
	n, err := Expire(sp, m, nil, Config{Deliver: deliver.Options{Helo: "relay.test"}})
	if err != nil || n != 1 {
		t.Fatalf("Expire: %d, %v", n, err)
	}
	f, err := sp.Load(spool.QueueFailed, "m1")
	if err != nil {
		t.Fatalf("not in failed/: %v", err)
	}
	if len(f.Failed) != 1 || f.Failed[0].Notice != spool.NoticeNone || f.Failed[0].Reply[:5] != "4.4.7" {
		t.Errorf("failures %+v, want bob@a.test 4.4.7 not bounced", f.Failed)
	}
	if ents, _ := os.ReadDir(filepath.Join(sp.Dir(), "new")); len(ents) != 0 {
		t.Errorf("a DSN about a DSN was queued: %v", ents)
	}
}
