package batch

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mxflush/mxflush/spool"
)

// Removal pool sizes. On a filesystem mounted with -o discard and no
// journal (this project's benchmark VM), each unlink of a file with data
// blocks waits for a synchronous TRIM, about 280 µs: 10,000 unlinks took
// 2.8 s on one thread and 1.5-1.75 s on 4-32 threads, since the wait
// happens after the directory lock is released. In flush runs of 10,000
// messages, 4 removers took about 2.0 s, 8 about 1.8 s and 16 about 1.65 s
// (medians of 5); more gave nothing measurable. On an ordinary journalled
// ext4 or tmpfs an unlink takes a few µs and the pool costs nothing
// noticeable.
const (
	removers     = 16
	removalQueue = 256 // messages waiting for a remover before apply blocks
)

// remover deletes the spool files of fully delivered messages on goroutines
// of its own, so that no SMTP session waits for an unlink before its next
// message. It is used only while the crash journal works: the journal
// already holds every delivered recipient, so the file may go at any time
// (a crash first leaves it for the next run's replay to remove), and the
// directories are fsynced once, by endJournal, after stop.
type remover struct {
	ch   chan *spool.Message
	wg   sync.WaitGroup
	fail func(m *spool.Message, err error) // called from a remover goroutine
	slow slowWatch
}

// startRemover starts the pool; fail is told of every file that could not
// be removed (the message is then delivered again unless the journal,
// which must be kept, is replayed first). onSlow (may be nil) is
// Config.SlowRemovals.
func startRemover(sp *spool.Spool, fail func(*spool.Message, error), onSlow func(removers int)) *remover {
	rm := &remover{ch: make(chan *spool.Message, removalQueue), fail: fail, slow: slowWatch{onSlow: onSlow}}
	rm.wg.Add(removers)
	for range removers {
		go func() {
			defer rm.wg.Done()
			for m := range rm.ch {
				start := time.Now()
				if err := sp.RemoveUnsynced(m); err != nil {
					rm.fail(m, err)
				}
				rm.slow.observe(time.Since(start))
			}
		}()
	}
	return rm
}

// Blocked removals. A removal slower than slowRemoval waited in the kernel
// (for a TRIM under -o discard, about 280 µs here, or a network file
// system); on tmpfs or a journalled ext4 one takes a few µs. When half of
// the first slowSample removals are that slow, the removers spend the run
// blocked, and each blocked one holds one of Go's Ps (GOMAXPROCS of them)
// until the scheduler takes it back, and the SMTP sessions wait for one
// (see moreProcs in package main for the figures).
const (
	slowRemoval = 200 * time.Microsecond
	slowSample  = 64
)

// slowWatch calls onSlow once, from a remover, when removals block (see
// slowRemoval); after slowSample removals it stops looking.
type slowWatch struct {
	onSlow func(removers int)

	mu         sync.Mutex
	seen, slow int
	decided    bool
}

func (w *slowWatch) observe(d time.Duration) {
	if w.onSlow == nil {
		return
	}
	w.mu.Lock()
	if w.decided {
		w.mu.Unlock()
		return
	}
	w.seen++
	if d >= slowRemoval {
		w.slow++
	}
	fire := 2*w.slow >= slowSample
	w.decided = fire || w.seen >= slowSample
	w.mu.Unlock()
	if fire {
		w.onSlow(removers)
	}
}

// remove queues m's file for deletion; it blocks only while removalQueue
// messages are waiting.
func (rm *remover) remove(m *spool.Message) { rm.ch <- m }

// stop waits until every queued file is removed (or reported to fail). No
// remove may follow.
func (rm *remover) stop() {
	close(rm.ch)
	rm.wg.Wait()
}

// removeFailed records a delivered message whose file could not be
// removed: its journal lines must survive the run.
func (r *runner) removeFailed(m *spool.Message, err error) {
	r.mu.Lock()
	r.unapplied++
	r.mu.Unlock()
	err = fmt.Errorf("message %s: recording the outcome of %s: %w", m.ID, strings.Join(m.To, ", "), err)
	r.problem(Problem{ID: m.ID, Reason: err.Error(), IOError: true})
}
