package batch

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxflush/mxflush/spool"
)

// The remover pool deletes every queued file by the time stop returns, and
// a file that cannot be removed is reported for its own message while the
// others still go.
func TestRemoverRemovesAllAndReportsFailures(t *testing.T) {
	dir := t.TempDir()
	sp, err := spool.Create(dir)
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
	}, nil)
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

// slowWatch fires once, with the pool size, when half of the first
// slowSample removals blocked; fast removals early on settle it for the run.
func TestSlowWatch(t *testing.T) {
	fast, slow := 10*time.Microsecond, time.Millisecond
	repeat := func(d time.Duration, n int) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = d
		}
		return out
	}
	tests := []struct {
		name   string
		seq    []time.Duration
		fireAt int // index of the observation that fires; -1: none
	}{
		{"all fast", repeat(fast, 200), -1},
		{"all slow", repeat(slow, 200), slowSample/2 - 1},
		{"slow after the sample", append(repeat(fast, slowSample), repeat(slow, 100)...), -1},
		{"half slow, interleaved", func() []time.Duration {
			var s []time.Duration
			for range slowSample {
				s = append(s, fast, slow)
			}
			return s
		}(), slowSample - 1},
		{"under half slow", append(repeat(slow, slowSample/2-1), repeat(fast, 100)...), -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var fired []int
			i := 0
			w := slowWatch{onSlow: func(n int) {
				if n != removers {
					t.Errorf("onSlow(%d), want the pool size %d", n, removers)
				}
				fired = append(fired, i)
			}}
			for ; i < len(tc.seq); i++ {
				w.observe(tc.seq[i])
			}
			want := []int{tc.fireAt}
			if tc.fireAt < 0 {
				want = nil
			}
			if !slices.Equal(fired, want) {
				t.Errorf("fired at %v, want %v", fired, want)
			}
		})
	}
	var w slowWatch // no callback: nothing to do, no panic
	w.observe(slow)
}
