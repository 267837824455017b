//go:build e2e

// Package e2e drives a real containerd (CRI + NRI) for Tollgate's end-to-end tests.
//
// Start gives a test its own containerd, with root, state and sockets under a fresh short
// directory in /tmp, a loopback OCI registry holding a pause image, and crictl wired to it:
//
//	env := Start(t, WithRequiredPlugin())
//	app, _ := env.PushImage("e2e/app:signed", testimage.Spec{Program: testimage.Sleeper, Variant: "signed"})
//	env.MustPull(t, app.Ref)
//	pod := env.RunPod(t, "web")
//	id, err := env.CreateContainer(pod, "app", app.Ref) // err carries crictl's stderr
//
// Everything is torn down by t.Cleanup, which then asserts that no mount, cgroup, process
// or file of the environment is left. containerd's log is printed when the test failed.
//
// The suite needs root and the tools from test/tools/install.sh. Without them tests skip,
// unless TOLLGATE_REQUIRE_TOOLS=1, when they fail.
package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"tollgate.dev/tollgate/test/tools/testimage"
)

// envParent holds the environments' directories. Fixed and short, whatever $TMPDIR says:
// the deepest unix socket (a shim's, 64 hex digits under <dir>/s/) must fit in 108 bytes.
const envParent = "/tmp"

// PauseRepo is the sandbox image's repository and tag in every environment's registry.
const PauseRepo = "e2e/pause:1"

// Env is one running containerd with its registry. Its exported fields are read-only.
type Env struct {
	Dir        string // the environment's directory (short: unix socket paths are limited)
	ConfigPath string // containerd's generated config.toml
	LogPath    string // containerd's stdout and stderr
	Socket     string // containerd's gRPC socket (CRI endpoint)
	NRISocket  string // NRI socket plugins connect to
	// CgroupParent is the cgroupfs parent of every pod this Env starts, e.g. "/tg-e2e-ab12cd".
	CgroupParent string
	PauseImage   string // the pinned sandbox image reference (in Registry)
	Registry     *Registry
	Images       *testimage.Builder // shared by all environments; binaries cached in .cache/e2e-images
	Tools        Tools

	t         testing.TB
	opts      options
	ctrd      *exec.Cmd
	ctrdDone  chan struct{}
	ctrdErr   error
	crictlCfg string
	procs     []*Process
}

// Start launches a containerd for t and registers its teardown with t.Cleanup.
func Start(t testing.TB, opts ...Option) *Env {
	t.Helper()
	tools := RequireTools(t)
	o := options{requestTimeout: defaultRequestLimit, registrationWait: 5 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	sweepStale(t)
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(suffix)
	dir := filepath.Join(envParent, "tg-"+id)
	if err := os.Mkdir(dir, 0o711); err != nil {
		t.Fatalf("e2e: %v", err)
	}
	e := &Env{
		Dir: dir, ConfigPath: filepath.Join(dir, "config.toml"), LogPath: filepath.Join(dir, "containerd.log"),
		Socket: filepath.Join(dir, "c.sock"), NRISocket: filepath.Join(dir, "nri.sock"),
		CgroupParent: "/tg-e2e-" + id, Tools: tools, Images: imageBuilder(),
		t: t, opts: o, crictlCfg: filepath.Join(dir, "crictl.yaml"),
	}
	t.Cleanup(e.teardown)
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}

	var err error
	if e.Registry, err = StartRegistry(); err != nil {
		t.Fatalf("e2e: %v", err)
	}
	t.Logf("e2e: env %s: registry %s", dir, e.Registry.Host)
	pause, err := e.PushImage(PauseRepo, testimage.Spec{Program: testimage.Pause, Variant: "pause"})
	if err != nil {
		t.Fatalf("e2e: push pause image: %v", err)
	}
	e.PauseImage = pause.Ref
	if err := e.writeConfig(); err != nil {
		t.Fatalf("e2e: write config: %v", err)
	}
	crictlYAML := fmt.Sprintf("runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 30\ndebug: false\npull-image-on-create: false\n", e.Socket, e.Socket)
	if err := os.WriteFile(e.crictlCfg, []byte(crictlYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.StartContainerd(); err != nil {
		t.Fatalf("e2e: %v", err)
	}
	// Pull the sandbox image now, so a registry or hosts.toml problem shows here.
	if _, err := e.Pull(e.PauseImage); err != nil {
		t.Fatalf("e2e: pull sandbox image: %v", err)
	}
	return e
}

// imageBuilder returns the process-wide image builder. Its compiled programs live in
// <repo>/.cache/e2e-images (git-ignored), so only the first run compiles them.
func imageBuilder() *testimage.Builder {
	builderOnce.Do(func() {
		dir := filepath.Join(os.TempDir(), "tollgate-e2e-images")
		if root, err := RepoRoot(); err == nil {
			dir = filepath.Join(root, ".cache", "e2e-images")
		}
		builder = testimage.NewBuilder(dir)
	})
	return builder
}

var (
	builderOnce sync.Once
	builder     *testimage.Builder
)

// PushImage builds spec and pushes it to the environment's registry as repoTag
// ("e2e/app:v1"). See testimage.Builder.PushIndex for multi-platform images.
func (e *Env) PushImage(repoTag string, spec testimage.Spec) (*testimage.Pushed, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return e.Images.Push(ctx, e.Registry.Ref(repoTag), spec)
}

// PushIndex is PushImage for a multi-platform OCI index.
func (e *Env) PushIndex(repoTag string, spec testimage.Spec) (*testimage.Pushed, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return e.Images.PushIndex(ctx, e.Registry.Ref(repoTag), spec)
}

// StartContainerd starts containerd with the environment's config and waits until CRI
// answers. The environment starts it already; use this after StopContainerd.
func (e *Env) StartContainerd() error {
	if e.ctrd != nil {
		return fmt.Errorf("containerd already running (pid %d)", e.ctrd.Process.Pid)
	}
	logf, err := os.OpenFile(e.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "\n==== e2e: starting containerd at %s ====\n", time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(e.Tools.Containerd, "--config", e.ConfigPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	// containerd finds the shim on PATH; put ours first. Its own process group, so a test
	// binary interrupted with ^C does not take it down before the cleanup runs.
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(e.Tools.Shim)+":"+os.Getenv("PATH"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	e.ctrd, e.ctrdDone, e.ctrdErr = cmd, make(chan struct{}), nil
	go func(done chan struct{}) {
		e.ctrdErr = cmd.Wait()
		close(done)
	}(e.ctrdDone)
	if err := e.waitReady(30 * time.Second); err != nil {
		return err
	}
	e.t.Logf("e2e: containerd pid %d ready in %s", cmd.Process.Pid, time.Since(start).Round(time.Millisecond))
	return nil
}

// waitReady polls until the CRI runtime reports ready and the NRI socket exists.
func (e *Env) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-e.ctrdDone:
			err := e.ctrdErr
			e.ctrd = nil
			return fmt.Errorf("containerd exited during startup: %v (log: %s)", err, e.LogPath)
		default:
		}
		if _, err := os.Stat(e.NRISocket); err != nil {
			last = fmt.Errorf("NRI socket: %w", err)
		} else if out, err := e.crictl(context.Background(), "info"); err != nil {
			last = err
		} else if !strings.Contains(out, `"RuntimeReady"`) {
			last = fmt.Errorf("crictl info: no RuntimeReady condition")
		} else {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("containerd not ready after %s: %v (log: %s)", limit, last, e.LogPath)
}

// StopContainerd stops containerd with SIGTERM (SIGKILL after 15s) and waits for it.
// Shims and containers keep running, as on a real node.
func (e *Env) StopContainerd() error { return e.stopContainerd(syscall.SIGTERM) }

// KillContainerd kills containerd with SIGKILL, as a crash would.
func (e *Env) KillContainerd() error { return e.stopContainerd(syscall.SIGKILL) }

func (e *Env) stopContainerd(sig syscall.Signal) error {
	if e.ctrd == nil {
		return nil
	}
	pid := e.ctrd.Process.Pid
	_ = e.ctrd.Process.Signal(sig)
	select {
	case <-e.ctrdDone:
	case <-time.After(15 * time.Second):
		_ = e.ctrd.Process.Kill()
		<-e.ctrdDone
	}
	e.ctrd = nil
	e.t.Logf("e2e: containerd pid %d stopped (%v)", pid, sig)
	return nil
}

// RestartContainerd stops containerd and starts it again with the same config and state.
func (e *Env) RestartContainerd() error {
	if err := e.StopContainerd(); err != nil {
		return err
	}
	return e.StartContainerd()
}

// ContainerdRunning reports whether the containerd process of e is alive.
func (e *Env) ContainerdRunning() bool {
	if e.ctrd == nil {
		return false
	}
	select {
	case <-e.ctrdDone:
		return false
	default:
		return true
	}
}

// ContainerdLog returns containerd's log so far.
func (e *Env) ContainerdLog() string {
	b, _ := os.ReadFile(e.LogPath)
	return string(b)
}

// WaitForLog waits until containerd's log contains substr.
func (e *Env) WaitForLog(substr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if strings.Contains(e.ContainerdLog(), substr) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd log has no %q after %s", substr, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dumpLogsOnFailure prints containerd's log and every started process's log when the test
// failed. teardown calls it once everything is stopped, so the logs are complete.
func (e *Env) dumpLogsOnFailure() {
	if !e.t.Failed() {
		return
	}
	for _, p := range e.procs {
		e.t.Logf("e2e: ---- %s log (%s) ----\n%s", p.Name, p.LogPath, tail(p.Log(), 200))
	}
	e.t.Logf("e2e: ---- containerd log (%s) ----\n%s", e.LogPath, tail(e.ContainerdLog(), 300))
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = append([]string{fmt.Sprintf("[... %d lines cut ...]", len(parts)-lines)}, parts[len(parts)-lines:]...)
	}
	return strings.Join(parts, "\n")
}
