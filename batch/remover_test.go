package batch

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mxflush/mxflush/spool"
)

// The remover pool deletes every queued file by the time stop returns, and
// a file that cannot be removed is reported for its own message while the
// others still go.
func TestRemoverRemovesAllAndReportsFailures(t *testing.T) {
	dir := t.TempDir()
	sp, err := spool.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	const n = 300 // more than removalQueue: remove must block, not drop
	for range n {
		if _, err := sp.Enqueue(spool.Envelope{From: "a@src.test", To: []string{"b@dst.test"}}, strings.NewReader("Subject: x\r\n\r\nbody\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	msgs, probs, err := sp.Scan(context.Background())
	if err != nil || len(probs) > 0 || len(msgs) != n {
		t.Fatalf("scan: %d messages, problems %v, err %v", len(msgs), probs, err)
	}
	gone := msgs[7]
	if err := os.Remove(filepath.Join(dir, spool.QueueNew, gone.ID)); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	failed := map[string]error{}
	rm := startRemover(sp, func(m *spool.Message, err error) {
		mu.Lock()
		failed[m.ID] = err
		mu.Unlock()
	})
	for _, m := range msgs {
		rm.remove(m)
	}
	rm.stop()

	if len(failed) != 1 || failed[gone.ID] == nil {
		t.Errorf("failures %v, want only %s", failed, gone.ID)
	}
	left, err := os.ReadDir(filepath.Join(dir, spool.QueueNew))
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("%d files left in new/ after stop, want 0 (first %s)", len(left), left[0].Name())
	}
}
