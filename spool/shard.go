package spool

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// MaxShards bounds a Shard's Count: each shard has a lock file and a
// journal in the spool root, and a run with more shards than that is a
// typo rather than a deployment.
const MaxShards = 1024

// Shard is the part of the spool one flush owns when several flushes
// share it (flush --shard I/N): the message files whose names hash to
// Index modulo Count. The zero Shard (Count 0) is the whole spool.
//
// The key is the file name, not the recipients' domains or the inode: a
// message with recipients in several domains and sites belongs to exactly
// one shard, so its file (whose state changes rewrite it as a whole) is
// only ever changed by that shard's run; and a name survives every state
// change and every queue (new/, cur/, failed/, bad/), which an inode does
// not (a state change writes a new file). The hash is the 64-bit FNV-1a of
// the name's bytes (a fixed function, so runs of different versions or
// hosts agree on which shard owns a file).
type Shard struct {
	Index, Count int
}

// ParseShard reads "I/N", I from 0 to N-1 (Kubernetes'
// JOB_COMPLETION_INDEX is such an I), N from 1 to MaxShards.
func ParseShard(s string) (Shard, error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || strings.HasPrefix(a, "+") || strings.HasPrefix(b, "+") {
		return Shard{}, fmt.Errorf("shard %q: want I/N with whole numbers, such as 0/4 (I from 0 to N-1)", s)
	}
	if n < 1 || n > MaxShards {
		return Shard{}, fmt.Errorf("shard %q: N must be from 1 to %d", s, MaxShards)
	}
	if i < 0 || i >= n {
		return Shard{}, fmt.Errorf("shard %q: I must be from 0 to %d (N-1)", s, n-1)
	}
	return Shard{Index: i, Count: n}, nil
}

// Sharded reports whether sh is part of the spool rather than all of it.
func (sh Shard) Sharded() bool { return sh.Count > 0 }

// String is "I/N", or "" for the whole spool.
func (sh Shard) String() string {
	if !sh.Sharded() {
		return ""
	}
	return strconv.Itoa(sh.Index) + "/" + strconv.Itoa(sh.Count)
}

// Owns reports whether the file named name belongs to sh; the whole spool
// owns every name.
func (sh Shard) Owns(name string) bool {
	if !sh.Sharded() {
		return true
	}
	return ShardOf(name, sh.Count) == sh.Index
}

// ShardOf is the index of the shard of Count n that owns the file named
// name: FNV-1a 64 of the name, modulo n.
func ShardOf(name string, n int) int {
	h := fnv.New64a()
	h.Write([]byte(name))
	return int(h.Sum64() % uint64(n))
}

// suffix names sh's own files in the spool root: "3-of-4".
func (sh Shard) suffix() string {
	return strconv.Itoa(sh.Index) + "-of-" + strconv.Itoa(sh.Count)
}

// parseSuffix reads what suffix wrote; ok is false for anything else.
func parseSuffix(s string) (sh Shard, ok bool) {
	a, b, found := strings.Cut(s, "-of-")
	if !found {
		return Shard{}, false
	}
	sh, err := ParseShard(a + "/" + b)
	if err != nil || sh.suffix() != s {
		return Shard{}, false
	}
	return sh, true
}

// WithShard returns a Spool for the same directory that sees only sh's
// files: Scan and List read only the names sh owns, Pickup takes only the
// maildrop/ files it owns, every file it creates (a DSN, a message picked
// up, a file renamed after a name collision) gets a name it owns, Lock
// takes sh's lock (see Lock) and the crash journal is sh's own (see
// OpenJournal). The zero Shard gives the whole spool.
func (s *Spool) WithShard(sh Shard) *Spool {
	c := *s
	c.shard = sh
	return &c
}

// Shard returns the part of the spool s sees.
func (s *Spool) Shard() Shard { return s.shard }
