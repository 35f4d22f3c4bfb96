package spool

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseShard(t *testing.T) {
	for in, want := range map[string]Shard{"0/1": {0, 1}, "3/4": {3, 4}, "1023/1024": {1023, 1024}} {
		if got, err := ParseShard(in); err != nil || got != want || got.String() != in {
			t.Errorf("ParseShard(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "1", "4/4", "-1/4", "0/0", "0/1025", "a/4", "1/b", "+1/4", "1/4/5", " 1/4"} {
		if _, err := ParseShard(in); err == nil {
			t.Errorf("ParseShard(%q) took it", in)
		}
	}
	// The hash is fixed: shards of different versions agree.
	if got := ShardOf("1732880000.M5P4242Q1.host", 4); got != 2 {
		t.Errorf("ShardOf = %d, want 2 (FNV-1a 64 of the name, mod 4, as computed independently)", got)
	}
}

func mustLock(t *testing.T, s *Spool) func() error {
	t.Helper()
	unlock, err := s.Lock()
	if err != nil {
		t.Fatalf("Lock %q: %v", s.Shard(), err)
	}
	return unlock
}

// The shards of one count run at once; a second run of one shard, an
// unsharded run beside them, and a run with another count are refused,
// each saying why; an unsharded run keeps the shards out.
func TestShardLocks(t *testing.T) {
	s := newSpool(t)
	a := mustLock(t, s.WithShard(Shard{0, 2}))
	b := mustLock(t, s.WithShard(Shard{1, 2}))

	_, err := s.WithShard(Shard{0, 2}).Lock()
	var le *LockedError
	if !errors.As(err, &le) || le.PID != os.Getpid() || !strings.Contains(err.Error(), "shard 0/2 of spool") {
		t.Errorf("second run of shard 0/2: %v, want *LockedError naming the shard and our pid", err)
	}
	_, err = s.Lock()
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "sharded flushes (--shard 0/2, 1/2 running)") {
		t.Errorf("unsharded run beside the shards: %v, want *LockedError naming them", err)
	}
	_, err = s.WithShard(Shard{0, 3}).Lock()
	var ce *ShardCountError
	if !errors.As(err, &ce) || ce.Running != 2 || !strings.Contains(err.Error(), "flushed in 2 shards") {
		t.Errorf("run with 3 shards beside 2: %v, want *ShardCountError", err)
	}
	if err := a(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lock(); !errors.As(err, &le) {
		t.Errorf("unsharded run while shard 1/2 runs: %v, want *LockedError", err)
	}
	if err := b(); err != nil {
		t.Fatal(err)
	}

	whole := mustLock(t, s)
	if _, err := s.WithShard(Shard{1, 2}).Lock(); !errors.As(err, &le) || !strings.Contains(err.Error(), fmt.Sprintf("spool %s is locked by another flush (pid %d)", s.Dir(), os.Getpid())) {
		t.Errorf("shard beside an unsharded run: %v, want *LockedError with its pid", err)
	}
	whole()

	// Another count may start once the others ended; their lock files,
	// which nobody holds, are cleared.
	c := mustLock(t, s.WithShard(Shard{2, 3}))
	defer c()
	for _, name := range files(t, s, ".") {
		if strings.HasSuffix(name, "-of-2") {
			t.Errorf("%s left after the 2-shard runs ended", name)
		}
	}
}

// TestShardLockHelper is the child process of TestShardLockDiesWithProcess.
func TestShardLockHelper(t *testing.T) {
	dir := os.Getenv("SPOOL_SHARD_HELPER")
	if dir == "" {
		t.Skip("helper process only")
	}
	s, err := Open(dir)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	if _, err := s.WithShard(Shard{1, 3}).Lock(); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	time.Sleep(time.Minute)
	os.Exit(0)
}

// A shard killed with SIGKILL leaves no lock: its shard, an unsharded run
// and another count may all run next.
func TestShardLockDiesWithProcess(t *testing.T) {
	s := newSpool(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestShardLockHelper$")
	cmd.Env = append(os.Environ(), "SPOOL_SHARD_HELPER="+s.Dir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "locked\n" {
		t.Fatalf("helper said %q, %v", line, err)
	}
	var le *LockedError
	if _, err := s.WithShard(Shard{1, 3}).Lock(); !errors.As(err, &le) || le.PID != cmd.Process.Pid {
		t.Fatalf("shard 1/3 while the helper holds it: %v, want its pid %d", err, cmd.Process.Pid)
	}
	if _, err := s.Lock(); !errors.As(err, &le) {
		t.Fatalf("unsharded while the helper holds 1/3: %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	mustLock(t, s.WithShard(Shard{1, 3}))()
	mustLock(t, s)()
	mustLock(t, s.WithShard(Shard{0, 5}))()
}

// Every file belongs to exactly one shard: the shards' scans split the
// spool, bad files included, and what a shard creates (an enqueued DSN, a
// message picked up from maildrop/) is its own.
func TestShardScanPickup(t *testing.T) {
	s := initSpool(t)
	const n = 3
	all := map[string]bool{}
	for i := range 60 {
		id, err := s.Enqueue(Envelope{From: "a@x.test", To: []string{fmt.Sprintf("r%d@y.test", i)}}, strings.NewReader("Subject: x\n\nbody\n"))
		if err != nil {
			t.Fatal(err)
		}
		all[id] = true
	}
	for i := range 9 {
		name := fmt.Sprintf("bad%d", i)
		if err := os.WriteFile(filepath.Join(s.Dir(), QueueNew, name), []byte("garbage without a header\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var dropped []string
	for i := range 30 {
		name, err := Drop(filepath.Join(s.Dir(), DirMaildrop), Envelope{From: "a@x.test", To: []string{fmt.Sprintf("d%d@y.test", i)}}, strings.NewReader(dropMsg), 0, direct)
		if err != nil {
			t.Fatal(err)
		}
		dropped = append(dropped, name)
	}
	seen := map[string]int{}
	for i := range n {
		sh := s.WithShard(Shard{i, n})
		picked, probs, err := sh.Pickup(context.Background(), PickupOptions{Host: "relay.test"})
		if err != nil || len(probs) > 0 {
			t.Fatalf("shard %d pickup: %v %v", i, err, probs)
		}
		owned := 0
		for _, d := range dropped {
			if ShardOf(d, n) == i {
				owned++
			}
		}
		if picked != owned {
			t.Errorf("shard %d picked %d, want the %d maildrop files it owns", i, picked, owned)
		}
		left := files(t, s, DirMaildrop)
		for _, d := range left {
			if ShardOf(d, n) == i {
				t.Errorf("shard %d left its maildrop file %s", i, d)
			}
		}
		msgs, probs, err := sh.Scan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range probs {
			if ShardOf(p.ID, n) != i {
				t.Errorf("shard %d moved %s, another shard's file", i, p.ID)
			}
			seen[p.ID]++
		}
		for _, m := range msgs {
			if ShardOf(m.ID, n) != i {
				t.Errorf("shard %d scanned %s, another shard's file", i, m.ID)
			}
			seen[m.ID]++
		}
		dsn, err := sh.Enqueue(Envelope{To: []string{"a@x.test"}}, strings.NewReader("Subject: dsn\n\nx\n"))
		if err != nil {
			t.Fatal(err)
		}
		if ShardOf(dsn, n) != i {
			t.Errorf("shard %d enqueued %s, which shard %d owns", i, dsn, ShardOf(dsn, n))
		}
	}
	if len(files(t, s, DirMaildrop)) != 0 {
		t.Errorf("maildrop/ after every shard's pickup: %q", files(t, s, DirMaildrop))
	}
	if len(seen) != 60+9+30 {
		t.Errorf("the shards saw %d files, want 99", len(seen))
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("%s seen by %d shards", id, c)
		}
	}
	for id := range all {
		if seen[id] != 1 {
			t.Errorf("%s seen by no shard", id)
		}
	}
}

// Each shard replays its own journal; the journal of a run with another
// count (or none) is applied by each shard for its own messages, kept for
// the others and removed by the last; an unsharded run replays them all.
func TestShardJournals(t *testing.T) {
	s := newSpool(t)
	const n = 2
	var ids []string
	for i := range 8 {
		id, err := s.Enqueue(Envelope{From: "a@x.test", To: []string{"b@y.test", "c@z.test"}}, strings.NewReader(fmt.Sprintf("Subject: %d\n\nx\n", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	byShard := map[int][]string{}
	for _, id := range ids {
		byShard[ShardOf(id, n)] = append(byShard[ShardOf(id, n)], id)
	}
	if len(byShard[0]) == 0 || len(byShard[1]) == 0 {
		t.Fatalf("all 8 messages in one shard: %v", byShard)
	}
	// A crashed unsharded run delivered b@ of every message.
	j := openJournal(t, s)
	for _, id := range ids {
		j.Append(id, uidOf(t, s, QueueNew, id), "b@y.test")
	}
	// A crashed shard 1/2 delivered c@ of its messages.
	j1 := openJournal(t, s.WithShard(Shard{1, n}))
	for _, id := range byShard[1] {
		j1.Append(id, uidOf(t, s, QueueNew, id), "c@z.test")
	}
	pending := func(id string) []string {
		for _, q := range []string{QueueNew, QueueCur} {
			if m, err := s.Load(q, id); err == nil {
				return m.To
			}
		}
		return nil // delivered: removed
	}

	rep, err := s.WithShard(Shard{0, n}).ReplayJournal()
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("shard 0 replay: %v %v", err, rep.Problems)
	}
	if rep.Recipients != len(byShard[0]) {
		t.Errorf("shard 0 took off %d recipients, want %d", rep.Recipients, len(byShard[0]))
	}
	for _, id := range byShard[0] {
		if got := pending(id); !slices.Equal(got, []string{"c@z.test"}) {
			t.Errorf("shard 0's %s: pending %q, want c@ only", id, got)
		}
	}
	for _, id := range byShard[1] {
		if got := pending(id); len(got) != 2 {
			t.Errorf("shard 1's %s was changed by shard 0: pending %q", id, got)
		}
	}
	d, _, err := s.readJournal("journal")
	if err != nil || d.Len() != len(byShard[1]) {
		t.Errorf("unsharded journal after shard 0: %d messages, %v; want shard 1's %d", d.Len(), err, len(byShard[1]))
	}
	if d, _, _ := s.readJournal("journal.1-of-2"); d.Len() != len(byShard[1]) {
		t.Errorf("shard 0 touched shard 1's journal")
	}

	rep, err = s.WithShard(Shard{1, n}).ReplayJournal()
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("shard 1 replay: %v %v", err, rep.Problems)
	}
	for _, id := range byShard[1] {
		if got := pending(id); got != nil {
			t.Errorf("shard 1's %s: pending %q, want it delivered", id, got)
		}
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "journal")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the unsharded journal, every line applied, is still there: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(s.Dir(), "journal.1-of-2")); err != nil || fi.Size() != 0 {
		t.Errorf("shard 1's own journal after its replay: %v", err)
	}

	// An unsharded run replays what a shard left.
	j0 := openJournal(t, s.WithShard(Shard{0, n}))
	for _, id := range byShard[0] {
		j0.Append(id, uidOf(t, s, QueueCur, id), "c@z.test")
	}
	rep, err = s.ReplayJournal()
	if err != nil || rep.Recipients != len(byShard[0]) {
		t.Fatalf("unsharded replay: %+v %v", rep, err)
	}
	for _, id := range ids {
		if got := pending(id); got != nil {
			t.Errorf("%s: pending %q after every replay", id, got)
		}
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "journal.0-of-2")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("shard 0's journal after the unsharded replay: %v", err)
	}
}
