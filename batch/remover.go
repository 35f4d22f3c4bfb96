package batch

import (
	"fmt"
	"strings"
	"sync"

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
	sp   *spool.Spool
	ch   chan *spool.Message
	wg   sync.WaitGroup
	fail func(m *spool.Message, err error) // called from a remover goroutine
}

// startRemover starts the pool; fail is told of every file that could not
// be removed (the message is then delivered again unless the journal,
// which must be kept, is replayed first).
func startRemover(sp *spool.Spool, fail func(*spool.Message, error)) *remover {
	rm := &remover{sp: sp, ch: make(chan *spool.Message, removalQueue), fail: fail}
	rm.wg.Add(removers)
	for range removers {
		go func() {
			defer rm.wg.Done()
			for m := range rm.ch {
				if err := sp.RemoveUnsynced(m); err != nil {
					rm.fail(m, err)
				}
			}
		}()
	}
	return rm
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
