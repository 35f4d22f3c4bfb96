package batch

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mxflush/mxflush/spool"
)

// With a hop function, domains that share a next hop share one batch, a
// message to several of them is one item (one transaction), and every item
// knows its batch's key.
func TestNewPlanByHop(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	hop := func(d string) string {
		if d == "keep.test" {
			return d
		}
		return "smtp:[127.0.0.1]:1025"
	}
	msgs := []*spool.Message{
		{ID: "m1", Envelope: spool.Envelope{To: []string{"a@x.test", "b@y.test", "k@keep.test"}}},
		{ID: "m2", Envelope: spool.Envelope{To: []string{"c@z.test"}}},
	}
	p := NewPlanBy(msgs, now, true, hop)
	got := map[string][]string{}
	for _, b := range p.Batches {
		for _, it := range b.Items {
			if k := it.keys(); len(k) != 1 || k[0] != b.Domain {
				t.Errorf("item keys %q in batch %q", it.keys(), b.Domain)
			}
			got[b.Domain] = append(got[b.Domain], fmt.Sprint(it.Rcpts()))
		}
	}
	want := map[string][]string{
		"smtp:[127.0.0.1]:1025": {"[a@x.test b@y.test]", "[c@z.test]"},
		"keep.test":             {"[k@keep.test]"},
	}
	if len(got) != len(want) || !slices.Equal(got["smtp:[127.0.0.1]:1025"], want["smtp:[127.0.0.1]:1025"]) ||
		!slices.Equal(got["keep.test"], want["keep.test"]) {
		t.Errorf("batches %v, want %v", got, want)
	}
	if p.states[0].pending != 2 {
		t.Errorf("m1 is in %d batches, want 2", p.states[0].pending)
	}
}
