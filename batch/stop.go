package batch

import "context"

// skipped is the outcome of a recipient whose transaction was never opened
// because the run was stopped (Config.Stop): it is left queued exactly as it
// was, still due, and the run does not count it as an attempt.
const skipped Status = "skipped"

// changed is the outcome of a recipient whose message could not be sent
// because its file was no longer the one the scan read (spool.ErrChanged):
// like skipped, it is left queued as it is and is no attempt (no event, no
// count, never expired or bounced); the run reports a spool problem.
const changed Status = "changed"

// stopped reports whether the run was told to stop opening transactions.
func (r *runner) stopped() bool {
	return r.cfg.Stop != nil && r.cfg.Stop.Err() != nil
}

// stopReason is why the run stopped ("after --max-runtime 30s", "by
// SIGTERM"): the cause given to Config.Stop, or "" when it did not stop.
func (r *runner) stopReason() string {
	if !r.stopped() {
		return ""
	}
	if c := context.Cause(r.cfg.Stop); c != nil && c != context.Canceled {
		return c.Error()
	}
	return "early"
}

// skip leaves items untouched because the run stopped before their
// transaction: no event, no journal line, no count in the row. A message
// all of whose batches were skipped keeps its file as it is; one whose other
// batches ran is applied with these recipients still pending (see apply).
func (r *runner) skip(items []*Item) {
	if r.cfg.DryRun {
		return
	}
	for _, it := range items {
		for _, rc := range it.rcpts {
			it.state.record(rc.spooled, outcome{status: skipped})
		}
		if it.state.done() {
			r.applyOrReport(it.state)
		}
	}
}

// changedFile reports, once per message, that its file was swapped after
// the scan (see changed).
func (r *runner) changedFile(st *msgState, err error) {
	st.mu.Lock()
	first := !st.changed
	st.changed = true
	st.mu.Unlock()
	if first {
		r.problem(Problem{ID: st.m.ID, Reason: "not sent, the file is left for the next scan: " + err.Error()})
	}
}

// leftQueuedAdd counts n messages left in the spool, still due, by a stop.
func (r *runner) leftQueuedAdd(n int) {
	r.mu.Lock()
	r.leftQueued += n
	r.mu.Unlock()
}
