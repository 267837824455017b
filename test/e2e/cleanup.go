//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cgroupRoot is where the cgroupfs hierarchies are mounted (v1 controllers plus, on hybrid
// hosts, "unified"; on a pure v2 host it is the v2 root itself).
const cgroupRoot = "/sys/fs/cgroup"

// teardown runs from t.Cleanup: it stops every helper process, removes pods and
// containers, stops containerd, then removes what containerd and runc leave behind when
// something went wrong (mounts, cgroups, processes), checks that nothing is left and
// removes the directory. Every step runs even if an earlier one failed.
func (e *Env) teardown() {
	t := e.t
	start := time.Now()
	for _, p := range e.procs {
		_ = p.Stop(5 * time.Second)
	}
	if e.ContainerdRunning() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if out, err := e.crictl(ctx, "pods", "-q"); err == nil {
			for _, id := range strings.Fields(out) {
				if _, err := e.crictl(ctx, "stopp", id); err != nil {
					t.Logf("e2e: cleanup: %v", err)
				}
				if _, err := e.crictl(ctx, "rmp", "--force", id); err != nil {
					t.Logf("e2e: cleanup: %v", err)
				}
			}
		}
		cancel()
	}
	_ = e.StopContainerd()
	e.Registry.Close()

	killed := e.killStrays()
	unmounted := e.unmountAll()
	cgroups := e.removeCgroups()
	// runc removes a container's own cgroup but not the pod parents it created (on a node
	// the kubelet owns those), so a few cgroup directories per hierarchy are normal here.
	t.Logf("e2e: cleanup: killed %d stray processes, unmounted %d, removed %d cgroup dirs", killed, unmounted, cgroups)
	if err := e.CheckClean(); err != nil {
		t.Errorf("e2e: cleanup left something behind: %v", err)
	}
	e.dumpLogsOnFailure()
	if os.Getenv("TOLLGATE_E2E_KEEP") == "1" {
		t.Logf("e2e: TOLLGATE_E2E_KEEP=1: keeping %s", e.Dir)
		return
	}
	if err := os.RemoveAll(e.Dir); err != nil {
		t.Errorf("e2e: cleanup: remove %s: %v", e.Dir, err)
	}
	t.Logf("e2e: cleanup done in %s", time.Since(start).Round(time.Millisecond))
}

// strayPIDs finds processes that belong to this environment: shims (their command line
// names our socket or directory) and container processes (in a cgroup under CgroupParent).
func (e *Env) strayPIDs() []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == self {
			continue
		}
		if isZombie(ent.Name()) {
			continue // exited, waiting for its reaper: holds no mount, cgroup or socket
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		cg, _ := os.ReadFile(filepath.Join("/proc", ent.Name(), "cgroup"))
		if strings.Contains(string(cmdline), e.Dir+"/") || strings.Contains(string(cg), e.CgroupParent+"/") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// isZombie reports whether /proc/<pid>/stat says state Z (or X).
func isZombie(pid string) bool {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return true // gone
	}
	// "pid (comm) S ...": comm may hold spaces and parentheses; the state follows the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] == 'Z' || b[i+2] == 'X'
}

// killStrays SIGKILLs every process strayPIDs finds and waits briefly for them to go.
func (e *Env) killStrays() int {
	pids := e.strayPIDs()
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for deadline, left := time.Now().Add(5*time.Second), pids; len(left) > 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		left = e.strayPIDs()
	}
	return len(pids)
}

// mountsUnder lists mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for space and so on).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unmountAll lazily unmounts every mount under Dir (overlay rootfs, sandbox shm, ...).
func (e *Env) unmountAll() int {
	n := 0
	for pass := 0; pass < 3; pass++ {
		mps := mountsUnder(e.Dir)
		if len(mps) == 0 {
			break
		}
		for _, mp := range mps {
			if err := syscall.Unmount(mp, syscall.MNT_DETACH); err == nil {
				n++
			}
		}
	}
	return n
}

// cgroupDirs lists the cgroup directories of CgroupParent in every hierarchy, deepest first.
func (e *Env) cgroupDirs() []string {
	var dirs []string
	roots, _ := filepath.Glob(filepath.Join(cgroupRoot, "*"))
	roots = append(roots, cgroupRoot)
	for _, root := range roots {
		top := filepath.Join(root, e.CgroupParent)
		if st, err := os.Stat(top); err != nil || !st.IsDir() {
			continue
		}
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	return dirs
}

// removeCgroups rmdirs the cgroup tree of CgroupParent (cgroupfs directories are removed
// with rmdir, deepest first, once they hold no process).
func (e *Env) removeCgroups() int {
	n := 0
	for _, d := range e.cgroupDirs() {
		for try := 0; try < 20; try++ {
			err := syscall.Rmdir(d)
			if err == nil || errors.Is(err, syscall.ENOENT) {
				n++
				break
			}
			time.Sleep(50 * time.Millisecond) // EBUSY while a killed task is still exiting
		}
	}
	return n
}

// CheckClean reports anything of the environment still present on the host: processes,
// mounts under Dir, or cgroups under CgroupParent. teardown calls it after cleaning up.
func (e *Env) CheckClean() error {
	var problems []string
	if e.ContainerdRunning() {
		problems = append(problems, "containerd still running")
	}
	if pids := e.strayPIDs(); len(pids) > 0 {
		problems = append(problems, fmt.Sprintf("processes %v", pids))
	}
	if mps := mountsUnder(e.Dir); len(mps) > 0 {
		problems = append(problems, fmt.Sprintf("mounts %v", mps))
	}
	if dirs := e.cgroupDirs(); len(dirs) > 0 {
		problems = append(problems, fmt.Sprintf("cgroups %v", dirs))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// ownerFile in an environment's directory holds the pid of the test process that owns it.
const ownerFile = "owner.pid"

// sweepStale removes environments whose owning test process is gone (a test binary killed
// by -timeout or ^C cannot run its cleanups): their shims and containers, mounts, cgroups
// and directories. Environments of live processes, e.g. a concurrent run, are left alone.
func sweepStale(t testing.TB) {
	dirs, _ := filepath.Glob(filepath.Join(envParent, "tg-????????"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		id := strings.TrimPrefix(filepath.Base(dir), "tg-")
		stale := &Env{Dir: dir, CgroupParent: "/tg-e2e-" + id}
		k, u, c := stale.killStrays(), stale.unmountAll(), stale.removeCgroups()
		err = os.RemoveAll(dir)
		t.Logf("e2e: swept stale environment %s of dead pid %d: killed %d, unmounted %d, %d cgroup dirs, remove: %v", dir, pid, k, u, c, err)
	}
}
