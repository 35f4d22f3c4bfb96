package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuGroup sums the CPU time of a daemon that is many processes (Postfix's
// master, qmgr, smtp, cleanup, ...), which the rusage of one child cannot
// see. With a cgroup v2 hierarchy it is a cgroup of its own: processes
// started into it (clone3 with CLONE_INTO_CGROUP, SysProcAttr.CgroupFD)
// and all their descendants are counted in its cpu.stat, including those
// that exited. Without one, it falls back to /proc: the times of a root
// process and its children, with the children it reaped (cutime, cstime).
type cpuGroup struct {
	dir string   // the cgroup; "" for the /proc fallback
	fd  *os.File // open on dir, for SysProcAttr.CgroupFD
}

// newCPUGroup makes a cgroup named name under the cgroup v2 mount, or
// returns the fallback when there is none or it is not writable.
func newCPUGroup(name string) *cpuGroup {
	root := cgroup2Mount()
	if root == "" {
		return &cpuGroup{}
	}
	dir := filepath.Join(root, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return &cpuGroup{}
	}
	fd, err := os.Open(dir)
	if err != nil {
		os.Remove(dir)
		return &cpuGroup{}
	}
	return &cpuGroup{dir: dir, fd: fd}
}

// how names the method, for the tables' notes.
func (g *cpuGroup) how() string {
	if g.dir != "" {
		return "cgroup v2 cpu.stat"
	}
	return "/proc/PID/stat of the master and its children"
}

// cgroup2Mount is where /proc/self/mounts has a cgroup2 file system.
func cgroup2Mount() string {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[2] == "cgroup2" {
			return f[1]
		}
	}
	return ""
}

// attr returns the SysProcAttr that starts a command inside the group.
func (g *cpuGroup) attr() *syscall.SysProcAttr {
	if g.fd == nil {
		return nil
	}
	return &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(g.fd.Fd())}
}

// usage is the CPU time used so far: by every process of the cgroup, or by
// root (a PID) and its children.
func (g *cpuGroup) usage(root int) (time.Duration, error) {
	if g.dir != "" {
		b, err := os.ReadFile(filepath.Join(g.dir, "cpu.stat"))
		if err != nil {
			return 0, err
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "usage_usec "); ok {
				us, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				return time.Duration(us) * time.Microsecond, err
			}
		}
		return 0, fmt.Errorf("%s/cpu.stat has no usage_usec", g.dir)
	}
	return treeCPU(root)
}

// pids lists the processes in the cgroup (none for the fallback).
func (g *cpuGroup) pids() []int {
	if g.dir == "" {
		return nil
	}
	b, _ := os.ReadFile(filepath.Join(g.dir, "cgroup.procs"))
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if p, err := strconv.Atoi(f); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// remove kills what is left in the cgroup, one PID at a time (they are
// all processes this harness started), and removes it.
func (g *cpuGroup) remove() {
	if g.dir == "" {
		return
	}
	for try := 0; try < 50; try++ {
		ps := g.pids()
		if len(ps) == 0 {
			break
		}
		for _, p := range ps {
			syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	g.fd.Close()
	os.Remove(g.dir)
}

// clockTick is USER_HZ, the unit of /proc/PID/stat's times (100 on Linux).
const clockTick = 100

// treeCPU sums utime, stime, cutime and cstime of root and of its direct
// children: Postfix's master forks every daemon itself, and the times of
// those that exited are in its cutime and cstime.
func treeCPU(root int) (time.Duration, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	var ticks int64
	found := false
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, t, err := procTimes(pid)
		if err != nil {
			continue // gone meanwhile
		}
		if pid == root {
			found = true
		}
		if pid == root || ppid == root {
			ticks += t
		}
	}
	if !found {
		return 0, errors.New("the master process is gone")
	}
	return time.Duration(ticks) * time.Second / clockTick, nil
}

// procTimes reads the parent and utime+stime+cutime+cstime of pid.
func procTimes(pid int) (ppid int, ticks int64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): ppid is field 4, utime..cstime 14-17.
	if len(f) < 15 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ppid, _ = strconv.Atoi(f[1])
	for _, s := range f[11:15] {
		v, _ := strconv.ParseInt(s, 10, 64)
		ticks += v
	}
	return ppid, ticks, nil
}
