//go:build k8s

package k8s

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// innerEnv marks the test process that runs inside the private namespaces; its value is the
// work directory the outer process made.
const innerEnv = "TOLLGATE_K8S_WORKDIR"

// TestMain runs the suite twice removed: the outer process (the one `go test` started) makes a
// work directory and runs this same binary again under `unshare --mount --net`, then, whatever
// the inner run did, ends every process left in that namespace or under the node's cgroup
// root by PID, removes the cgroups, puts back the global sysctls the kubelet changes, and
// deletes the work directory. The inner process brings the node up and runs the tests.
func TestMain(m *testing.M) {
	if dir := os.Getenv(innerEnv); dir != "" {
		workDir = dir
		os.Exit(m.Run())
	}
	if why := unavailable(); why != "" {
		// Let the tests report it: they skip, or fail under TOLLGATE_REQUIRE_TOOLS=1.
		skipReason = why
		os.Exit(m.Run())
	}
	os.Exit(runInNamespace())
}

var (
	workDir    string // the inner process's work directory (empty in the outer one)
	skipReason string // set when the node cannot be brought up here
)

// unavailable says why this machine cannot run the suite, or "".
func unavailable() string {
	if os.Geteuid() != 0 {
		return "the k8s suite needs root (namespaces, mounts, cgroups)"
	}
	for _, tool := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " not found on PATH"
		}
	}
	if _, err := findK8s(); err != nil {
		return err.Error()
	}
	return ""
}

// globalSysctls are the kernel settings (not per network namespace) that the kubelet sets.
var globalSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

func runInNamespace() int {
	dir, err := os.MkdirTemp("/tmp", "tgk-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8s:", err)
		return 1
	}
	saved := map[string]string{}
	for _, s := range globalSysctls {
		if b, err := os.ReadFile("/proc/sys/" + s); err == nil {
			saved[s] = strings.TrimSpace(string(b))
		}
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8s:", err)
		return 1
	}
	cmd := exec.Command("unshare", append([]string{"--mount", "--net", "--propagation", "private", "--", self}, os.Args[1:]...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), innerEnv+"="+dir)
	code := 0
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "k8s:", err)
		code = 1
	} else {
		// unshare execs the test binary in place: its PID is the inner process's. Remember
		// its mount namespace, once it differs from ours, to find what it leaves behind.
		mntNS := innerNamespace(cmd.Process.Pid)
		if err := cmd.Wait(); err != nil {
			code = 1
			if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() > 0 {
				code = ee.ExitCode()
			}
		}
		if n := killNamespace(mntNS, cgroupName(dir)); n > 0 {
			fmt.Fprintf(os.Stderr, "k8s: teardown: ended %d process(es) the inner run left\n", n)
		}
	}
	removeCgroups(cgroupName(dir))
	for s, v := range saved {
		if b, _ := os.ReadFile("/proc/sys/" + s); strings.TrimSpace(string(b)) != v {
			if err := os.WriteFile("/proc/sys/"+s, []byte(v), 0o644); err != nil {
				fmt.Fprintf(os.Stderr, "k8s: restoring %s=%s: %v\n", s, v, err)
			}
		}
	}
	if left := mountsUnder(dir); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "k8s: teardown: mounts left under %s: %v\n", dir, left)
		return 1
	}
	if os.Getenv("TOLLGATE_K8S_KEEP") == "" {
		if err := os.RemoveAll(dir); err != nil {
			fmt.Fprintf(os.Stderr, "k8s: teardown: %v\n", err)
		}
	} else {
		fmt.Fprintf(os.Stderr, "k8s: kept %s (TOLLGATE_K8S_KEEP)\n", dir)
	}
	if left := cgroupDirs(cgroupName(dir)); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "k8s: teardown: cgroups left: %v\n", left)
		return 1
	}
	return code
}

// innerNamespace waits (up to 10s) for the process pid to be in a mount namespace other
// than ours and returns it; "" if that never happens (then nothing is matched by namespace:
// the host's own namespace must never be swept).
func innerNamespace(pid int) string {
	ours, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return ""
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
		if err != nil {
			return ""
		}
		if ns != ours {
			return ns
		}
	}
	return ""
}

// cgroupName is the cgroup root of every pod on the node (kubelet's cgroupRoot), one per run.
func cgroupName(dir string) string { return "/" + filepath.Base(dir) }

// killNamespace SIGKILLs, by PID, every process in the mount namespace mntNS or in a cgroup
// under cg, until none is left (or 20s pass), and returns how many it signalled.
func killNamespace(mntNS, cg string) int {
	total := 0
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		pids := strays(mntNS, cg)
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		total += len(pids)
		time.Sleep(100 * time.Millisecond)
	}
	return total
}

func strays(mntNS, cg string) []int {
	if ours, _ := os.Readlink("/proc/self/ns/mnt"); mntNS == ours {
		mntNS = ""
	}
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == os.Getpid() || zombie(ent.Name()) {
			continue
		}
		ns, _ := os.Readlink(filepath.Join("/proc", ent.Name(), "ns/mnt"))
		cgs, _ := os.ReadFile(filepath.Join("/proc", ent.Name(), "cgroup"))
		if (mntNS != "" && ns == mntNS) || strings.Contains(string(cgs), ":"+cg+"/") || strings.HasSuffix(strings.TrimSpace(string(cgs)), ":"+cg) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func zombie(pid string) bool {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X')
}

// mountsUnder lists the host's mount points below dir (there should be none: the node's
// mounts live and die with its private mount namespace).
func mountsUnder(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}
