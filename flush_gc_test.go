package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
)

// A small queue gets Go's default GC target, a big one (bigPlan files in
// new/ and cur/) the tight one, so that 100,000 queued messages stay under
// 100 MB; no memory limit is set. GOGC wins.
func TestTuneGC(t *testing.T) {
	t.Setenv("GOGC", "")
	os.Unsetenv("GOGC")
	oldPercent := debug.SetGCPercent(100)
	oldLimit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetGCPercent(oldPercent); debug.SetMemoryLimit(oldLimit) })

	spool := t.TempDir()
	for _, q := range []string{"new", "cur"} {
		if err := os.Mkdir(filepath.Join(spool, q), 0o700); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if err := os.WriteFile(filepath.Join(spool, q, fmt.Sprint(i)), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := countQueued(spool); n != 6 {
		t.Errorf("countQueued = %d, want 6", n)
	}
	for _, tc := range []struct{ queued, want int }{{6, smallGCPercent}, {bigPlan, bigGCPercent}, {bigPlan - 1, smallGCPercent}} {
		debug.SetGCPercent(70)
		restore := tuneGC(tc.queued)
		if p := debug.SetGCPercent(-1); p != tc.want {
			t.Errorf("%d queued: GC percent %d, want %d", tc.queued, p, tc.want)
		}
		restore()
		if p := debug.SetGCPercent(100); p != 70 {
			t.Errorf("%d queued: GC percent %d after restore, want 70 as before", tc.queued, p)
		}
	}
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		t.Errorf("memory limit %d, want none", l)
	}
	t.Setenv("GOGC", "300")
	debug.SetGCPercent(300)
	tuneGC(bigPlan)
	if p := debug.SetGCPercent(100); p != 300 {
		t.Errorf("with GOGC=300: GC percent %d, want it left at 300", p)
	}
}

// moreProcs sets one P per blocked remover over the run's base, unless
// GOMAXPROCS is set; tuneGC's restore puts GOMAXPROCS and the GC target
// back, so that a second flush in the process starts from the same place.
func TestMoreProcs(t *testing.T) {
	old := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(old) })
	t.Setenv("GOMAXPROCS", "")
	os.Unsetenv("GOMAXPROCS")
	t.Setenv("GOGC", "")
	os.Unsetenv("GOGC")
	for range 2 { // the second run does not add to the first
		restore := tuneGC(bigPlan)
		moreProcs(runtime.GOMAXPROCS(0))(16)
		if n := runtime.GOMAXPROCS(0); n != old+16 {
			t.Errorf("GOMAXPROCS %d after moreProcs(16), want %d", n, old+16)
		}
		restore()
		if n := runtime.GOMAXPROCS(0); n != old {
			t.Errorf("GOMAXPROCS %d after restore, want %d", n, old)
		}
	}
	t.Setenv("GOMAXPROCS", strconv.Itoa(old))
	moreProcs(old)(16)
	if n := runtime.GOMAXPROCS(0); n != old {
		t.Errorf("GOMAXPROCS %d with GOMAXPROCS set in the environment, want it left at %d", n, old)
	}
}
