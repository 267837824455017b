//go:build k8s

package k8s

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

const cgroupFS = "/sys/fs/cgroup"

// cgroupV1 reports whether the machine mounts the legacy per-controller hierarchies.
func cgroupV1() bool {
	var st syscall.Statfs_t
	// cgroup2fs magic: the unified hierarchy is mounted at the top.
	return syscall.Statfs(cgroupFS, &st) == nil && st.Type != 0x63677270
}

// hierarchies are the directories under which cgroup cg lives: each v1 controller (and the
// named systemd one), or the v2 root.
func hierarchies() []string {
	if !cgroupV1() {
		return []string{cgroupFS}
	}
	ents, _ := os.ReadDir(cgroupFS)
	var out []string
	for _, e := range ents {
		p := filepath.Join(cgroupFS, e.Name())
		if st, err := os.Stat(p); err == nil && st.IsDir() && e.Type()&os.ModeSymlink == 0 {
			out = append(out, p)
		}
	}
	return out
}

// makeCgroupRoot creates cg in every hierarchy for the kubelet's cgroupRoot, which must
// exist. A new cpuset cgroup starts with no CPUs or memory nodes: copy its parent's.
func makeCgroupRoot(cg string) error {
	for _, h := range hierarchies() {
		dir := filepath.Join(h, cg)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("creating cgroup %s: %w", dir, err)
		}
		if filepath.Base(h) == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(h, f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
					return fmt.Errorf("%s/%s: %w", dir, f, err)
				}
			}
		}
	}
	return nil
}

// cgroupDirs lists cg and everything below it, deepest first.
func cgroupDirs(cg string) []string {
	var dirs []string
	for _, h := range hierarchies() {
		top := filepath.Join(h, cg)
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	sort.Slice(dirs, func(i, j int) bool { return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/") })
	return dirs
}

// removeCgroups rmdirs cg's tree once its processes are gone (EBUSY while one still exits).
func removeCgroups(cg string) {
	for _, d := range cgroupDirs(cg) {
		for try := 0; try < 40; try++ {
			if err := syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
