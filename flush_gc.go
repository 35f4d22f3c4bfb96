package main

import (
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
)

// Garbage collector settings of a flush. A flush keeps every envelope in
// its plan for the whole run (about 700 octets each, live, more with many
// recipients) while delivery makes short-lived garbage (a few KiB per
// message). For most queues Go's default target (the heap may grow 100%
// over what is live) is right: 10,000 messages took 11% less CPU than at
// 25% (1.03 s against 1.16 s, medians of 6). From bigPlan queued files on,
// the target is 10%, so that 100,000 queued messages stay under 100 MB of
// RSS (98 MB on 2026-12-05, with the extra Ps of moreProcs; 101-103 MB at
// 15%, where 89-95 MB had been measured a week before; 141 MB at 100%). No memory limit is set: one below the live plan (envelopes with
// many recipients) would have the collector run without a break.
const (
	smallGCPercent = 100
	bigGCPercent   = 10
	bigPlan        = 50000 // files in new/ and cur/
)

// tuneGC sets the GC target for a spool whose new/ and cur/ hold queued
// files (counted before the scan, see countQueued), unless GOGC is set in
// the environment. It returns a func that puts the target and GOMAXPROCS
// (see moreProcs) back as they were, for callers that run more than one
// flush in a process (the tests).
func tuneGC(queued int) (restore func()) {
	percent, procs := debug.SetGCPercent(-1), runtime.GOMAXPROCS(0)
	debug.SetGCPercent(percent) // -1 above only read it
	restore = func() {
		debug.SetGCPercent(percent)
		runtime.GOMAXPROCS(procs)
	}
	if os.Getenv("GOGC") != "" {
		return restore
	}
	if queued >= bigPlan {
		debug.SetGCPercent(bigGCPercent)
	} else {
		debug.SetGCPercent(smallGCPercent)
	}
	return restore
}

// countQueued counts the entries of spool's new/ and cur/ without keeping
// their names (a few milliseconds for 100,000). It is an estimate for
// tuneGC: a directory that cannot be read counts as far as it was read
// (the scan reports the error).
func countQueued(spool string) int {
	n := 0
	for _, q := range []string{"new", "cur"} {
		f, err := os.Open(filepath.Join(spool, q))
		if err != nil {
			continue
		}
		for {
			names, err := f.Readdirnames(4096)
			n += len(names)
			if err != nil { // io.EOF at the end
				break
			}
		}
		f.Close()
	}
	return n
}

// moreProcs returns batch.Config.SlowRemovals: when removing delivered
// files blocks in the kernel, each of the blocked removers holds one of
// Go's Ps while it waits, so the scheduler gets one more P per remover
// over base, the GOMAXPROCS the run started with (unless GOMAXPROCS is set
// in the environment). Measured on 10,000 messages with a spool whose
// unlinks wait for a TRIM, medians of 10 to 12 runs: 1.85 s with 2 Ps (and
// a slow mode near 3 s in a third of the runs), 2.3 s with 4, 1.7-1.9 s
// with 8, 1.65 s with 18 and no slow run.
func moreProcs(base int) func(removers int) {
	return func(removers int) {
		if os.Getenv("GOMAXPROCS") == "" {
			runtime.GOMAXPROCS(base + removers)
		}
	}
}
