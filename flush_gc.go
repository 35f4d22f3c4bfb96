package main

import (
	"os"
	"runtime/debug"
)

// flushGCPercent is the garbage collector's target for a flush: the heap
// may grow 25% over what is live, not Go's default 100%.
const flushGCPercent = 25

// tuneGC sets flushGCPercent unless GOGC is set in the environment. A flush
// keeps every due envelope in its plan for the whole run (about 600 octets
// each) while delivery makes short-lived garbage (a few KiB per message),
// so with the default target the peak is twice the plan: measured on
// 100,000 queued messages, 141 MB of RSS at 100% against 96 MB at 25%, for
// a few percent more CPU.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(flushGCPercent)
	}
}
