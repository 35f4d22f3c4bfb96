package batch

import "testing"

func TestSessionsFor(t *testing.T) {
	tests := []struct {
		name                       string
		n, total, perSite, maxConn int
		want                       int
	}{
		{"small site keeps one session", 20, 20, 8, 8, 1},
		{"one more per 20 messages", 21, 21, 8, 8, 2},
		{"large batch alone gets every slot", 2000, 2000, 8, 8, 8},
		{"capped by --conns-per-site", 2000, 2000, 4, 8, 4},
		{"capped by --max-conns", 2000, 2000, 16, 3, 3},
		{"one of twenty equal domains: the slots are full anyway", 500, 10000, 8, 8, 1},
		{"one of two equal domains: half the slots", 1000, 2000, 8, 8, 4},
		{"a large domain beside many small ones", 2000, 2500, 8, 8, 7},
		{"told one", 5000, 5000, 1, 8, 1},
		{"nonsense limits still give one", 5000, 5000, 0, 0, 1},
	}
	for _, tc := range tests {
		if got := sessionsFor(tc.n, tc.total, tc.perSite, tc.maxConn); got != tc.want {
			t.Errorf("%s: sessionsFor(%d, %d, %d, %d) = %d, want %d", tc.name, tc.n, tc.total, tc.perSite, tc.maxConn, got, tc.want)
		}
	}
}
