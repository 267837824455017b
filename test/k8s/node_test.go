//go:build k8s

package k8s

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"tollgate.dev/tollgate/test/e2e"
	"tollgate.dev/tollgate/test/tools/testimage"
)

// The node's addresses. Only lo and the CNI bridge exist in the namespace; the kubelet
// refuses a 127/8 node IP, so a second address on lo serves.
const (
	nodeIP      = "10.255.0.1"
	nodeName    = "tgk-node"
	podSubnet   = "10.88.0.0/24"
	serviceCIDR = "10.0.0.0/24"
	apiServer   = "https://" + nodeIP + ":6443"
	pauseRepo   = "k8s/pause:1"
)

// node is one Kubernetes node with its control plane, all inside the test's private mount
// and network namespaces: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
// containerd (with Tollgate's shipped drop-in) and the kubelet. /run, /var, /etc and /opt
// are the work directory's, so the shipped manifests' host paths work unchanged and the
// machine's own are never touched.
type node struct {
	t          *testing.T
	dir        string
	bins       k8sBins
	tools      e2e.Tools
	repo       string
	kubeconfig string
	pki        *pki
	registry   *e2e.Registry
	images     *testimage.Builder
	procs      []*proc
	kubelet    *proc
	containerd *proc
	noDropIn   bool // containerd starts without Tollgate's drop-in (see requireTollgate)
}

// startNode brings the node up, with Tollgate's drop-in in place from the start, and
// registers its teardown. It fails the test when anything does not come up, with the
// failing component's log.
func startNode(t *testing.T) *node { t.Helper(); return startNodeWith(t, true) }

// startNodeWith is startNode; without dropIn containerd runs with NRI on but no plugin
// required, as a node before Tollgate, until requireTollgate.
func startNodeWith(t *testing.T, dropIn bool) *node {
	t.Helper()
	if skipReason != "" {
		e2e.Unavailable(t, "%s", skipReason)
	}
	bins, err := findK8s()
	if err != nil {
		e2e.Unavailable(t, "%v", err)
	}
	tools := e2e.RequireTools(t)
	repo, err := e2e.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, dir: workDir, bins: bins, tools: tools, repo: repo, noDropIn: !dropIn,
		images: testimage.NewBuilder(filepath.Join(repo, ".cache", "e2e-images"))}
	t.Cleanup(n.stop)
	start := time.Now()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("k8s: %s: %v", what, err) // stop prints the components' logs
		}
	}
	must("namespace", n.setupNamespace())
	n.registry, err = e2e.StartRegistryAt(nodeIP + ":0")
	must("registry", err)
	pause, err := n.push(pauseRepo, testimage.Spec{Program: testimage.Pause, Variant: "pause"})
	must("pause image", err)
	must("containerd", n.startContainerd(pause.Ref))
	n.pki, err = newPKI(filepath.Join(n.dir, "pki"), []net.IP{net.ParseIP(nodeIP), net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")},
		[]string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "localhost"})
	must("pki", err)
	n.kubeconfig = filepath.Join(n.dir, "kubeconfig")
	must("kubeconfig", n.pki.kubeconfig(n.kubeconfig, apiServer))
	must("control plane", n.startControlPlane())
	must("kubelet", n.startKubelet())
	t.Logf("k8s: node %s Ready in %s (registry %s)", nodeName, time.Since(start).Round(time.Millisecond), n.registry.Host)
	return n
}

// setupNamespace readies the private namespaces unshare made: lo up with the node address,
// and the work directory's /run, /var, /etc and /opt in place of the machine's.
func (n *node) setupNamespace() error {
	for _, args := range [][]string{{"link", "set", "lo", "up"}, {"addr", "add", nodeIP + "/32", "dev", "lo"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	for _, d := range []string{"run", "var/lib", "var/log", "ovl"} {
		if err := os.MkdirAll(filepath.Join(n.dir, d), 0o755); err != nil {
			return err
		}
	}
	for link, target := range map[string]string{"var/run": "/run", "var/lock": "/run/lock", "var/tmp": "/tmp"} {
		if err := os.Symlink(target, filepath.Join(n.dir, link)); err != nil {
			return err
		}
	}
	for _, m := range []struct{ src, dst string }{{"run", "/run"}, {"var", "/var"}} {
		if err := syscall.Mount(filepath.Join(n.dir, m.src), m.dst, "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s on %s: %w", m.src, m.dst, err)
		}
	}
	// /etc and /opt: the machine's content, with this node's changes in a tmpfs upper layer.
	ovl := filepath.Join(n.dir, "ovl")
	if err := syscall.Mount("tmpfs", ovl, "tmpfs", 0, "size=64m"); err != nil {
		return fmt.Errorf("tmpfs: %w", err)
	}
	for _, d := range []string{"/etc", "/opt"} {
		up, wk := filepath.Join(ovl, d, "up"), filepath.Join(ovl, d, "wk")
		if err := os.MkdirAll(up, 0o755); err != nil {
			return err
		}
		if err := os.MkdirAll(wk, 0o755); err != nil {
			return err
		}
		opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", d, up, wk)
		if err := syscall.Mount("overlay", d, "overlay", 0, opts); err != nil {
			return fmt.Errorf("overlay on %s: %w", d, err)
		}
	}
	for _, d := range []string{"/etc/containerd/conf.d", "/etc/containerd/certs.d", "/etc/cni/net.d", "/opt/cni/bin",
		"/etc/kubernetes/manifests", "/var/lib/kubelet", "/run/lock"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}

func (n *node) push(repoTag string, spec testimage.Spec) (*testimage.Pushed, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return n.images.Push(ctx, n.registry.Ref(repoTag), spec)
}

// startContainerd writes a main config that imports conf.d, Tollgate's shipped drop-in into
// conf.d (NRI on, the "tollgate" plugin required: the node fails closed from the start),
// a hosts.toml for the plain-HTTP test registry, and the CNI bridge.
func (n *node) startContainerd(sandbox string) error {
	cfg := fmt.Sprintf(`version = 3
imports = ['/etc/containerd/conf.d/*.toml']

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = %q
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = '/etc/containerd/certs.d'

[plugins.'io.containerd.cri.v1.runtime']
  enable_selinux = false
  disable_apparmor = true
  # Root lacks CAP_SYS_RESOURCE here: runc cannot set CRI's negative oom_score_adj.
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = 'io.containerd.runc.v2'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      BinaryName = %q
      SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['/opt/cni/bin']
    conf_dir = '/etc/cni/net.d'
`, sandbox, n.tools.Runc)
	dropIn, err := os.ReadFile(filepath.Join(n.repo, "deploy", "containerd", "10-tollgate.toml"))
	if err != nil {
		return err
	}
	hostDir := filepath.Join("/etc/containerd/certs.d", n.registry.Host)
	if err := os.MkdirAll(hostDir, 0o755); err != nil {
		return err
	}
	hosts := fmt.Sprintf("server = \"http://%[1]s\"\n\n[host.\"http://%[1]s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", n.registry.Host)
	cni := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "tgk", "plugins": [{"type": "bridge", "bridge": "cni0",
  "isGateway": true, "ipMasq": false, "hairpinMode": true,
  "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}}]}`, podSubnet)
	files := map[string][]byte{
		"/etc/containerd/config.toml":        []byte(cfg),
		dropInPath:                           dropIn,
		filepath.Join(hostDir, "hosts.toml"): []byte(hosts),
		"/etc/cni/net.d/10-tgk.conflist":     []byte(cni),
	}
	if n.noDropIn {
		delete(files, dropInPath)
	}
	for path, data := range files {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return err
		}
	}
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		if err := copyFile(filepath.Join(n.bins.cni, p), filepath.Join("/opt/cni/bin", p), 0o755); err != nil {
			return err
		}
	}
	return n.runContainerd()
}

// dropInPath is where the node's containerd reads Tollgate's shipped drop-in.
const dropInPath = "/etc/containerd/conf.d/10-tollgate.toml"

// runContainerd starts containerd on the config startContainerd wrote and waits until it
// answers.
func (n *node) runContainerd() error {
	var err error
	cmd := exec.Command(n.tools.Containerd, "--config", "/etc/containerd/config.toml")
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(n.tools.Shim)+":"+os.Getenv("PATH"))
	if n.containerd, err = n.start("containerd", cmd); err != nil {
		return err
	}
	return waitFor(30*time.Second, func() error {
		if n.containerd.exited() {
			return errStop("containerd exited")
		}
		_, err := n.ctr("version")
		return err
	})
}

// requireTollgate puts Tollgate's shipped drop-in in place on a node started without it and
// restarts containerd, as an operator enabling Tollgate on a running node does; running
// containers keep running (their shims outlive containerd). It waits until the node is
// Ready again.
func (n *node) requireTollgate() error {
	dropIn, err := os.ReadFile(filepath.Join(n.repo, "deploy", "containerd", "10-tollgate.toml"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(dropInPath, dropIn, 0o644); err != nil {
		return err
	}
	n.containerd.stop(30 * time.Second)
	n.noDropIn = false
	if err := n.runContainerd(); err != nil {
		return err
	}
	return n.waitReady()
}

// ctr runs ctr against the node's containerd in CRI's namespace.
func (n *node) ctr(args ...string) (string, error) {
	out, err := exec.Command(n.tools.Ctr, append([]string{"--address", "/run/containerd/containerd.sock", "-n", "k8s.io"}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (n *node) startControlPlane() error {
	p := n.pki
	etcdDir := filepath.Join(n.dir, "etcd")
	if _, err := n.start("etcd", exec.Command(n.bins.etcd, "--data-dir", etcdDir, "--name", nodeName,
		"--listen-client-urls", "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379",
		"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", nodeName+"=http://127.0.0.1:2380", "--log-level", "warn")); err != nil {
		return err
	}
	api, err := n.start("kube-apiserver", exec.Command(n.bins.path("kube-apiserver"),
		"--etcd-servers=http://127.0.0.1:2379", "--advertise-address="+nodeIP, "--bind-address=0.0.0.0", "--secure-port=6443",
		"--cert-dir="+filepath.Join(n.dir, "apiserver"),
		"--tls-cert-file="+p.serverCert, "--tls-private-key-file="+p.serverKey, "--client-ca-file="+p.caCert,
		"--kubelet-client-certificate="+p.adminCert, "--kubelet-client-key="+p.adminKey,
		"--service-account-key-file="+p.saPub, "--service-account-signing-key-file="+p.saKey,
		"--service-account-issuer=https://kubernetes.default.svc", "--service-cluster-ip-range="+serviceCIDR,
		"--authorization-mode=Node,RBAC", "--allow-privileged=true",
		// No kube-proxy: the API server reaches webhooks at their endpoints' pod IPs.
		"--enable-aggregator-routing=true", "--v=1"))
	if err != nil {
		return err
	}
	if err := waitFor(90*time.Second, func() error {
		if api.exited() {
			return errStop("kube-apiserver exited")
		}
		_, err := n.kubectl("get", "--raw", "/readyz")
		return err
	}); err != nil {
		return err
	}
	if _, err := n.start("kube-controller-manager", exec.Command(n.bins.path("kube-controller-manager"),
		"--kubeconfig="+n.kubeconfig, "--authentication-kubeconfig="+n.kubeconfig, "--authorization-kubeconfig="+n.kubeconfig,
		"--service-account-private-key-file="+p.saKey, "--root-ca-file="+p.caCert,
		"--leader-elect=false", "--bind-address=127.0.0.1", "--v=1")); err != nil {
		return err
	}
	_, err = n.start("kube-scheduler", exec.Command(n.bins.path("kube-scheduler"),
		"--kubeconfig="+n.kubeconfig, "--authentication-kubeconfig="+n.kubeconfig, "--authorization-kubeconfig="+n.kubeconfig,
		"--leader-elect=false", "--bind-address=127.0.0.1", "--v=1"))
	return err
}

// startKubelet starts the kubelet with the cgroupfs driver under a cgroup root of its own
// (failCgroupV1: false, for machines on cgroup v1) and waits for the node to be Ready.
func (n *node) startKubelet() error {
	cg := cgroupName(n.dir)
	if err := makeCgroupRoot(cg); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: %s
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
staticPodPath: /etc/kubernetes/manifests
fileCheckFrequency: 2s
syncFrequency: 5s
address: %s
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: %s}
authorization: {mode: AlwaysAllow}
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
failSwapOn: false
protectKernelDefaults: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "1Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
`, cg, nodeIP, n.pki.caCert)
	path := filepath.Join(n.dir, "kubelet.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return err
	}
	var err error
	n.kubelet, err = n.start("kubelet", exec.Command(n.bins.path("kubelet"), "--config="+path,
		"--kubeconfig="+n.kubeconfig, "--hostname-override="+nodeName, "--node-ip="+nodeIP, "--v=1"))
	if err != nil {
		return err
	}
	return n.waitReady()
}

// waitReady waits for the node's Ready condition.
func (n *node) waitReady() error {
	return waitFor(120*time.Second, func() error {
		if n.kubelet.exited() {
			return errStop("kubelet exited")
		}
		out, err := n.kubectl("get", "node", nodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if err != nil {
			return err
		}
		if out != "True" {
			return fmt.Errorf("node Ready=%q", out)
		}
		return nil
	})
}

// stop tears the node down in order: kubelet first (nothing restarts pods), then every pod
// through CRI, then containerd and the control plane. What is left (shims, containers) the
// outer process ends by PID with the namespace.
func (n *node) stop() {
	if n.t.Failed() {
		n.dumpLogs()
	}
	if n.kubelet != nil {
		n.kubelet.stop(10 * time.Second)
	}
	if n.containerd != nil && !n.containerd.exited() {
		crictl := exec.Command(n.tools.Crictl, "--runtime-endpoint", "unix:///run/containerd/containerd.sock", "--timeout", "60s", "rmp", "-af")
		if out, err := crictl.CombinedOutput(); err != nil {
			n.t.Logf("k8s: teardown: crictl rmp: %v: %s", err, out)
		}
	}
	for i := len(n.procs) - 1; i >= 0; i-- {
		n.procs[i].stop(10 * time.Second)
	}
	if n.registry != nil {
		n.registry.Close()
	}
}

func (n *node) dumpLogs() {
	for _, p := range n.procs {
		b, _ := os.ReadFile(p.log)
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		n.t.Logf("k8s: ---- last lines of %s ----\n%s", p.name, strings.Join(lines, "\n"))
	}
}

// proc is one long-running component, logging to <dir>/<name>.log.
type proc struct {
	name, log string
	cmd       *exec.Cmd
	done      chan struct{}
}

func (n *node) start(name string, cmd *exec.Cmd) (*proc, error) {
	logPath := filepath.Join(n.dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	n.procs = append(n.procs, p)
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process (by its PID), then SIGKILL to its process group after
// timeout.
func (p *proc) stop(timeout time.Duration) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// errStop ends waitFor at once.
type errStop string

func (e errStop) Error() string { return string(e) }

// waitFor calls f until it returns nil, an errStop, or limit passes; the last error says why.
func waitFor(limit time.Duration, f func() error) error {
	deadline := time.Now().Add(limit)
	for {
		err := f()
		var stop errStop
		if err == nil || errors.As(err, &stop) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s: %w", limit, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// kubectl runs kubectl against the node; the error carries stderr.
func (n *node) kubectl(args ...string) (string, error) {
	return n.kubectlIn(nil, args...)
}

func (n *node) kubectlIn(stdin []byte, args ...string) (string, error) {
	cmd := exec.Command(n.bins.path("kubectl"), append([]string{"--kubeconfig", n.kubeconfig}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// must runs kubectl and fails the test on error.
func (n *node) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := n.kubectl(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}
