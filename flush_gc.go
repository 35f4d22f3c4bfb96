package main

import (
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
)

// Garbage collector settings of a flush. A flush keeps every envelope in
// its plan for the whole run (about 700 octets each, live) while delivery
// makes short-lived garbage (a few KiB per message). For most queues Go's
// default target (the heap may grow 100% over what is live) is right, with
// a soft memory limit as a safety net: 10,000 messages took 11% less CPU
// than at 25% (1.03 s against 1.16 s, medians of 6). From bigPlan queued
// files on, the target is 25% and the limit grows with the queue
// (limitPerFile octets a file, at least gcMemoryLimit), so that the
// collector never chases a limit below the live plan: 100,000 queued
// messages took 90-93 MB of RSS, against 102 MB at 25% without a limit (with
// the extra Ps of moreProcs) and 141 MB at 100%.
const (
	smallGCPercent = 100
	bigGCPercent   = 25
	gcMemoryLimit  = 85 << 20 // bytes; soft (runtime/debug.SetMemoryLimit)
	limitPerFile   = 900      // bytes of memory limit per queued file in a big plan
	bigPlan        = 50000    // files in new/ and cur/
)

// tuneGC applies those settings for a spool whose new/ and cur/ hold
// queued files (counted before the scan, see countQueued), except where
// GOGC or GOMEMLIMIT in the environment says otherwise.
func tuneGC(queued int) {
	percent, limit := smallGCPercent, int64(gcMemoryLimit)
	if queued >= bigPlan {
		percent, limit = bigGCPercent, max(limit, int64(queued)*limitPerFile)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(percent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(limit)
	}
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

// moreProcs is batch.Config.SlowRemovals: when removing delivered files
// blocks in the kernel, each of the blocked removers holds one of Go's Ps
// while it waits, so the scheduler gets one more P per remover (unless
// GOMAXPROCS is set). Measured on 10,000 messages with a spool whose
// unlinks wait for a TRIM, medians of 10 to 12 runs: 1.85 s with 2 Ps (and
// a slow mode near 3 s in a third of the runs), 2.3 s with 4, 1.7-1.9 s
// with 8, 1.65 s with 18 and no slow run.
func moreProcs(removers int) {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + removers)
}
