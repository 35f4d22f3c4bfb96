package batch

import (
	"slices"
	"testing"
	"time"

	"github.com/mxflush/mxflush/spool"
)

func TestNewPlanGroupsByDomain(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	msgs := []*spool.Message{
		{ID: "m1", Envelope: spool.Envelope{To: []string{"a@x.test", "b@Y.test", "c@x.test", "d@z.test"}}},
		{ID: "m2", Envelope: spool.Envelope{To: []string{"e@y.test", "user@bücher.test"}}},
		{ID: "m3", Envelope: spool.Envelope{To: []string{"f@x.test"}, NextAttempt: now.Add(time.Minute)}},
		{ID: "m4", Envelope: spool.Envelope{To: []string{"g@x.test", "nobody", "h@[127.0.0.1]"}}},
	}
	p := NewPlan(msgs, now, false)
	if p.Messages != 3 || p.NotDue != 1 {
		t.Fatalf("Messages=%d NotDue=%d, want 3 and 1", p.Messages, p.NotDue)
	}
	got := map[string][][]string{}
	var order []string
	for _, b := range p.Batches {
		order = append(order, b.Domain)
		for _, it := range b.Items {
			got[b.Domain] = append(got[b.Domain], it.Rcpts())
		}
	}
	want := map[string][][]string{
		"x.test":             {{"a@x.test", "c@x.test"}, {"g@x.test"}},
		"y.test":             {{"b@Y.test"}, {"e@y.test"}},
		"z.test":             {{"d@z.test"}},
		"xn--bcher-kva.test": {{"user@bücher.test"}},
		"[127.0.0.1]":        {{"h@[127.0.0.1]"}},
	}
	for d, w := range want {
		if !slices.EqualFunc(got[d], w, slices.Equal) {
			t.Errorf("%s: items %v, want %v", d, got[d], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("domains %v, want %d of them", order, len(want))
	}
	if order[0] != "x.test" && order[0] != "y.test" {
		t.Errorf("largest batch should start first, order %v", order)
	}
	if len(p.invalid) != 1 || p.invalid[0].rcpt != "nobody" {
		t.Errorf("invalid recipients %+v, want nobody", p.invalid)
	}
	if all := NewPlan(msgs, now, true); all.Messages != 4 || all.NotDue != 0 {
		t.Errorf("with all: Messages=%d NotDue=%d, want 4 and 0", all.Messages, all.NotDue)
	}
}

func TestBackoff(t *testing.T) {
	min, max := 5*time.Minute, 4*time.Hour
	for _, tc := range []struct {
		attempts int
		want     time.Duration
	}{{1, 5 * time.Minute}, {2, 10 * time.Minute}, {3, 20 * time.Minute}, {6, 160 * time.Minute}, {7, 4 * time.Hour}, {50, 4 * time.Hour}} {
		if got := Backoff(tc.attempts, min, max); got != tc.want {
			t.Errorf("Backoff(%d) = %v, want %v", tc.attempts, got, tc.want)
		}
	}
}
