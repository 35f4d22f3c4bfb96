package batch

import (
	"context"
	"fmt"
	"time"
)

// startJournal replays the crash journal a killed run may have left, then
// opens the journal for this run and starts its group commit (see
// spool.Journal: lines are written as each Send returns and fsynced in
// groups, so no worker waits for the disk). It returns the IDs of the
// messages whose replay failed: they sit this run out, since delivering
// them would send their journalled recipients again. A journal that cannot
// be read is an error (the run must not deliver); one that cannot be
// opened for writing is a problem, and the run goes on without it.
// A dry run only reads the journal (see journalled).
// journalInterval is the shortest time between two fsyncs of the crash
// journal during a run (see spool.Journal.GroupCommit).
const journalInterval = 20 * time.Millisecond

func (r *runner) startJournal(sum *Summary) (skip map[string]bool, err error) {
	if r.cfg.DryRun {
		return nil, nil
	}
	rep, err := r.spool.ReplayJournal()
	if err != nil {
		return nil, fmt.Errorf("crash journal of spool %s: %w", r.spool.Dir(), err)
	}
	sum.Replayed = rep.Recipients
	for _, p := range rep.Mismatched {
		// A name reused after the crash: the new message is delivered as
		// it is (its recipients were never sent), and the operator hears
		// of the lines that were dropped.
		r.problem(Problem{ID: p.ID, Reason: p.Reason})
	}
	for _, p := range rep.Problems {
		if skip == nil {
			skip = map[string]bool{}
		}
		skip[p.ID] = true
		r.problem(Problem{ID: p.ID, Reason: p.Reason + "; the message waits for the next run", IOError: true})
	}
	j, err := r.spool.OpenJournal()
	if err != nil {
		r.problem(Problem{ID: "journal", Reason: "crash journal cannot be opened; this run's deliveries are not journalled: " + err.Error(), IOError: true})
		return skip, nil
	}
	r.journal = j
	r.removal = startRemover(r.spool, r.removeFailed, r.cfg.SlowRemovals)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- j.GroupCommit(ctx, journalInterval) }()
	r.stopCommit = func() error {
		cancel()
		return <-done
	}
	return skip, nil
}

// endJournal stops the group commit (with a last fsync) and empties the
// journal when it is no longer needed: every message whose recipients it
// lists had its state change committed, no journal write failed, and no
// replay failed (the lines of those messages are still in it). Otherwise
// the journal is kept for the next run's replay, which skips whatever is
// already recorded.
func (r *runner) endJournal(skip map[string]bool) {
	if r.journal == nil {
		return
	}
	defer r.journal.Close()
	r.removal.stop()
	if err := r.stopCommit(); err != nil {
		r.journalFailed(err)
	}
	// The unsynced removals (see apply) are made durable even when the
	// journal is kept, so that fewer of them can come back after a power loss.
	if err := r.spool.SyncQueues(); err != nil {
		r.problem(Problem{ID: "journal", Reason: "spool directories cannot be synced; the crash journal is kept for the next run: " + err.Error(), IOError: true})
		return
	}
	r.mu.Lock()
	keep := r.unapplied > 0 || r.journalBad || len(skip) > 0
	r.mu.Unlock()
	if keep {
		return
	}
	if err := r.journal.Reset(); err != nil {
		r.problem(Problem{ID: "journal", Reason: "crash journal cannot be emptied (the next run replays it, which is harmless): " + err.Error(), IOError: true})
	}
}

// journalFailed reports the first journal write or fsync failure of the run.
func (r *runner) journalFailed(err error) {
	r.mu.Lock()
	first := !r.journalBad
	r.journalBad = true
	r.mu.Unlock()
	if first {
		r.problem(Problem{ID: "journal", Reason: "crash journal write failed; recipients delivered in this run may be sent again if mxflush dies before their message is updated: " + err.Error(), IOError: true})
	}
}
