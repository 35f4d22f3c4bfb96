package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// floorThreads is how many goroutines unlink at once in the disk floor
// row, as many as mxflush's remover pool (batch.removers).
const floorThreads = 16

// tmpfsMagic is f_type of statfs(2) on tmpfs.
const tmpfsMagic = 0x01021994

// isTmpfs reports whether dir exists on a tmpfs.
func isTmpfs(dir string) bool {
	var st syscall.Statfs_t
	return syscall.Statfs(dir, &st) == nil && st.Type == tmpfsMagic
}

// fsInfo names the file system that holds dir and its mount options, from
// the longest mount point of /proc/self/mounts that contains it, such as
// "ext4 on / (rw,relatime,discard)".
func fsInfo(dir string) string {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return "unknown file system"
	}
	best, info := -1, "unknown file system"
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 {
			continue
		}
		mp := f[1]
		inside := dir == mp || strings.HasPrefix(dir, strings.TrimSuffix(mp, "/")+"/")
		if inside && len(mp) > best {
			best, info = len(mp), fmt.Sprintf("%s on %s (%s)", f[2], mp, f[3])
		}
	}
	return info
}

// unlinkFloor writes n spool files as flush's rows do, syncs them, then
// unlinks them all on floorThreads goroutines, and returns the time of the
// unlinks alone. No relayer that deletes each file it delivered can finish
// faster on this disk; with -o discard and no ext4 journal each unlink
// waits for a TRIM of the file's blocks.
func (w *world) unlinkFloor(ctx context.Context, n int) (result, error) {
	dir := filepath.Join(w.cfg.dir, "spool")
	if err := writeSpool(dir, n, 1, w.cfg.size); err != nil {
		return result{}, err
	}
	names, err := os.ReadDir(filepath.Join(dir, "new"))
	if err != nil {
		return result{}, err
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	start := time.Now()
	for t := range floorThreads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := t; i < len(names) && ctx.Err() == nil; i += floorThreads {
				if err := os.Remove(filepath.Join(dir, "new", names[i].Name())); err != nil {
					mu.Lock()
					first = cmp.Or(first, err)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	r := result{InProc: true}
	r.Wall = time.Since(start)
	if err := cmp.Or(first, ctx.Err()); err != nil {
		return r, fmt.Errorf("disk floor: %w", err)
	}
	return r, nil
}
