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

// A small queue gets Go's default GC target with the soft memory limit; a
// big one (bigPlan files in new/ and cur/) the tight target and a limit
// that grows with the queue, so that 100,000 queued messages stay under
// 100 MB without the collector chasing a limit below the live plan. GOGC
// and GOMEMLIMIT win.
func TestTuneGC(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	os.Unsetenv("GOGC")
	os.Unsetenv("GOMEMLIMIT")
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

	tuneGC(6)
	if p, l := debug.SetGCPercent(-1), debug.SetMemoryLimit(-1); p != smallGCPercent || l != gcMemoryLimit {
		t.Errorf("small queue: GC percent %d, limit %d; want %d and %d", p, l, smallGCPercent, gcMemoryLimit)
	}
	tuneGC(bigPlan)
	if p, l := debug.SetGCPercent(-1), debug.SetMemoryLimit(-1); p != bigGCPercent || l != gcMemoryLimit {
		t.Errorf("big queue: GC percent %d, limit %d; want %d and %d", p, l, bigGCPercent, gcMemoryLimit)
	}
	tuneGC(1000000) // a limit under the live plan would have the collector chase it
	if l := debug.SetMemoryLimit(-1); l != 1000000*limitPerFile {
		t.Errorf("queue of 1,000,000: limit %d, want %d", l, 1000000*limitPerFile)
	}
	t.Setenv("GOGC", "300")
	debug.SetGCPercent(300)
	tuneGC(6)
	if p := debug.SetGCPercent(-1); p != 300 {
		t.Errorf("with GOGC=300: GC percent %d, want it left at 300", p)
	}
}

// moreProcs adds one P per blocked remover, unless GOMAXPROCS is set.
func TestMoreProcs(t *testing.T) {
	old := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(old) })
	t.Setenv("GOMAXPROCS", "")
	os.Unsetenv("GOMAXPROCS")
	moreProcs(16)
	if n := runtime.GOMAXPROCS(0); n != old+16 {
		t.Errorf("GOMAXPROCS %d after moreProcs(16), want %d", n, old+16)
	}
	runtime.GOMAXPROCS(old)
	t.Setenv("GOMAXPROCS", strconv.Itoa(old))
	moreProcs(16)
	if n := runtime.GOMAXPROCS(0); n != old {
		t.Errorf("GOMAXPROCS %d with GOMAXPROCS set in the environment, want it left at %d", n, old)
	}
}
