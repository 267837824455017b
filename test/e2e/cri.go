//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// crictlTimeout bounds one crictl invocation.
const crictlTimeout = 2 * time.Minute

// CommandError is a failed crictl (or other tool) run. Its Error() includes stderr, where
// crictl prints the runtime's message: assert on it for rejections.
type CommandError struct {
	Args   []string
	Stdout string
	Stderr string
	Err    error
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("%s: %v: %s", strings.Join(e.Args, " "), e.Err, e.Message())
}

// Message is the runtime's own message, unquoted: crictl logs it escaped inside
// `level=fatal msg="..."`, after gRPC's "rpc error: code = ... desc = ". For a rejected
// create it reads e.g. `failed to create containerd container: failed to get NRI
// adjustment for container: validator "00-default-validator" rejected container
// adjustment, reason: validation error: required plugin "tollgate" not present`.
// Without such a line it is the trimmed stderr.
func (e *CommandError) Message() string {
	msg := strings.TrimSpace(e.Stderr)
	lines := strings.Split(msg, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		_, quoted, ok := strings.Cut(lines[i], " msg=")
		if !ok || !strings.HasPrefix(quoted, `"`) {
			continue
		}
		if q, err := strconv.QuotedPrefix(quoted); err == nil {
			if u, err := strconv.Unquote(q); err == nil {
				msg = u
				break
			}
		}
	}
	if _, desc, ok := strings.Cut(msg, " desc = "); ok {
		msg = desc
	}
	return msg
}

func (e *CommandError) Unwrap() error { return e.Err }

// Crictl runs crictl against the environment's containerd and returns its stdout. On
// failure the error is a *CommandError.
func (e *Env) Crictl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), crictlTimeout)
	defer cancel()
	return e.crictl(ctx, args...)
}

func (e *Env) crictl(ctx context.Context, args ...string) (string, error) {
	full := append([]string{"--config", e.crictlCfg}, args...)
	cmd := exec.CommandContext(ctx, e.Tools.Crictl, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &CommandError{Args: append([]string{"crictl"}, args...), Stdout: stdout.String(), Stderr: stderr.String(), Err: err}
	}
	return stdout.String(), nil
}

// Pull pulls ref through CRI (so containerd records the pull and emits its image events)
// and returns the image ID, i.e. the config digest "sha256:...".
func (e *Env) Pull(ref string) (string, error) {
	out, err := e.Crictl("pull", ref)
	if err != nil {
		return "", err
	}
	// "Image is up to date for sha256:<hex>"
	f := strings.Fields(out)
	if len(f) == 0 || !strings.HasPrefix(f[len(f)-1], "sha256:") {
		return "", fmt.Errorf("crictl pull %s: unexpected output %q", ref, out)
	}
	return f[len(f)-1], nil
}

// MustPull is Pull that fails the test on error.
func (e *Env) MustPull(t testing.TB, ref string) string {
	t.Helper()
	id, err := e.Pull(ref)
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	t.Logf("e2e: pulled %s as %s", ref, id)
	return id
}

// ImageInfo is the CRI view of an image in containerd.
type ImageInfo struct {
	ID          string   `json:"id"` // config digest
	RepoTags    []string `json:"repoTags"`
	RepoDigests []string `json:"repoDigests"`
	Pinned      bool     `json:"pinned"`
}

// InspectImage returns CRI's status of an image (by reference or ID).
func (e *Env) InspectImage(ref string) (*ImageInfo, error) {
	out, err := e.Crictl("inspecti", "-o", "json", ref)
	if err != nil {
		return nil, err
	}
	var v struct {
		Status ImageInfo `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		return nil, fmt.Errorf("crictl inspecti %s: %w", ref, err)
	}
	return &v.Status, nil
}

// RemoveImage removes an image from containerd through CRI.
func (e *Env) RemoveImage(ref string) error {
	_, err := e.Crictl("rmi", ref)
	return err
}

// Pod is a running pod sandbox.
type Pod struct {
	ID         string
	Name       string
	Namespace  string
	UID        string
	ConfigPath string // pod sandbox config JSON, reused by CreateContainer
}

// PodOption configures RunPod.
type PodOption func(*podConfig)

// WithPodAnnotation sets a pod annotation (NRI plugins and the default validator see it).
func WithPodAnnotation(key, value string) PodOption {
	return func(c *podConfig) { c.Annotations[key] = value }
}

// WithPodLabel sets a pod label.
func WithPodLabel(key, value string) PodOption {
	return func(c *podConfig) { c.Labels[key] = value }
}

// WithPodNamespace sets the pod's Kubernetes namespace (default "e2e").
func WithPodNamespace(ns string) PodOption {
	return func(c *podConfig) { c.Metadata.Namespace = ns }
}

// WithTolerateMissingPlugin sets tollgate.dev/tolerate-missing-plugin=true on the pod, the
// annotation the required-plugin validator accepts instead of a connected plugin.
func WithTolerateMissingPlugin() PodOption { return WithPodAnnotation(TolerateAnnotation, "true") }

// CRI JSON shapes as crictl reads them (snake_case protobuf field names).
type criMetadata struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	UID       string `json:"uid,omitempty"`
	Attempt   uint32 `json:"attempt"`
}

type podConfig struct {
	Metadata     criMetadata       `json:"metadata"`
	LogDirectory string            `json:"log_directory"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	Linux        struct {
		CgroupParent    string `json:"cgroup_parent"`
		SecurityContext struct {
			NamespaceOptions struct {
				Network int `json:"network"` // 2 = NODE: host network, so no CNI is needed
				Pid     int `json:"pid"`     // 0 = POD
				Ipc     int `json:"ipc"`     // 0 = POD
			} `json:"namespace_options"`
		} `json:"security_context"`
	} `json:"linux"`
}

type containerConfig struct {
	Metadata criMetadata `json:"metadata"`
	Image    struct {
		Image string `json:"image"`
	} `json:"image"`
	Command     []string          `json:"command,omitempty"`
	Args        []string          `json:"args,omitempty"`
	Envs        []keyValue        `json:"envs,omitempty"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Mounts      []criMount        `json:"mounts,omitempty"`
	LogPath     string            `json:"log_path"`
	Linux       struct{}          `json:"linux"`
}

// criMount is a CRI Mount: a host path, or (cri-api >= 1.31, KEP-4639) an image volume.
type criMount struct {
	ContainerPath string     `json:"container_path"`
	HostPath      string     `json:"host_path,omitempty"`
	Readonly      bool       `json:"readonly"`
	Image         *imageSpec `json:"image,omitempty"`
	ImageSubPath  string     `json:"image_sub_path,omitempty"`
}

type imageSpec struct {
	Image string `json:"image"`
}

type keyValue struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// RunPod starts a pod sandbox (host network, cgroup under e.CgroupParent) and fails the
// test if it does not start. The sandbox uses the pinned pause image.
func (e *Env) RunPod(t testing.TB, name string, opts ...PodOption) *Pod {
	t.Helper()
	p, err := e.TryRunPod(name, opts...)
	if err != nil {
		t.Fatalf("e2e: run pod %s: %v", name, err)
	}
	t.Logf("e2e: pod %s running as %.12s", name, p.ID)
	return p
}

// TryRunPod is RunPod returning the error instead of failing the test.
func (e *Env) TryRunPod(name string, opts ...PodOption) (*Pod, error) {
	uid := randomHex(8)
	c := podConfig{
		Metadata:     criMetadata{Name: name, Namespace: "e2e", UID: uid},
		LogDirectory: filepath.Join(e.Dir, "logs", name+"-"+uid),
		Labels:       map[string]string{"e2e": "true"},
		Annotations:  map[string]string{},
	}
	c.Linux.CgroupParent = e.CgroupParent + "/pod" + uid
	c.Linux.SecurityContext.NamespaceOptions.Network = 2
	for _, o := range opts {
		o(&c)
	}
	path := filepath.Join(e.Dir, "pod-"+name+"-"+uid+".json")
	if err := writeJSON(path, c); err != nil {
		return nil, err
	}
	out, err := e.Crictl("runp", path)
	if err != nil {
		return nil, err
	}
	return &Pod{ID: strings.TrimSpace(out), Name: name, Namespace: c.Metadata.Namespace, UID: uid, ConfigPath: path}, nil
}

// ContainerOption configures CreateContainer.
type ContainerOption func(*containerConfig)

// WithArgs sets the container's arguments (after the image entrypoint).
func WithArgs(args ...string) ContainerOption {
	return func(c *containerConfig) { c.Args = args }
}

// WithCommand replaces the image entrypoint.
func WithCommand(cmd ...string) ContainerOption {
	return func(c *containerConfig) { c.Command = cmd }
}

// WithEnv adds an environment variable.
func WithEnv(key, value string) ContainerOption {
	return func(c *containerConfig) { c.Envs = append(c.Envs, keyValue{key, value}) }
}

// WithContainerAnnotation sets a container annotation.
func WithContainerAnnotation(key, value string) ContainerOption {
	return func(c *containerConfig) { c.Annotations[key] = value }
}

// WithImageMount mounts image (pulled already, as the kubelet pulls an image volume's
// image before it creates the container) read-only at path: a Kubernetes image volume.
func WithImageMount(path, image string) ContainerOption {
	return func(c *containerConfig) {
		c.Mounts = append(c.Mounts, criMount{ContainerPath: path, Readonly: true, Image: &imageSpec{Image: image}})
	}
}

// WithHostMount bind-mounts a host path read-only at path: a hostPath volume.
func WithHostMount(path, hostPath string) ContainerOption {
	return func(c *containerConfig) {
		c.Mounts = append(c.Mounts, criMount{ContainerPath: path, HostPath: hostPath, Readonly: true})
	}
}

// CreateContainer creates (does not start) a container in pod from image, which must have
// been pulled already. A rejection by NRI (a plugin or the default validator) comes back
// as a *CommandError whose message carries containerd's reason.
func (e *Env) CreateContainer(pod *Pod, name, image string, opts ...ContainerOption) (string, error) {
	c := containerConfig{
		Metadata:    criMetadata{Name: name},
		Labels:      map[string]string{"e2e": "true"},
		Annotations: map[string]string{},
		LogPath:     name + ".log",
	}
	c.Image.Image = image
	for _, o := range opts {
		o(&c)
	}
	path := filepath.Join(e.Dir, "ctr-"+pod.UID+"-"+name+"-"+randomHex(4)+".json")
	if err := writeJSON(path, c); err != nil {
		return "", err
	}
	out, err := e.Crictl("create", "--no-pull", pod.ID, path, pod.ConfigPath)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(out), nil
}

// StartContainer starts a created container.
func (e *Env) StartContainer(id string) error {
	_, err := e.Crictl("start", id)
	return err
}

// RunContainer creates and starts a container and waits until it is running.
func (e *Env) RunContainer(pod *Pod, name, image string, opts ...ContainerOption) (string, error) {
	id, err := e.CreateContainer(pod, name, image, opts...)
	if err != nil {
		return "", err
	}
	if err := e.StartContainer(id); err != nil {
		return id, err
	}
	return id, e.WaitContainerState(id, StateRunning, 30*time.Second)
}

// StopContainer stops a container (SIGTERM, then SIGKILL after timeout).
func (e *Env) StopContainer(id string, timeout time.Duration) error {
	_, err := e.Crictl("stop", "--timeout", fmt.Sprint(int(timeout.Seconds())), id)
	return err
}

// RemoveContainer force-removes a container.
func (e *Env) RemoveContainer(id string) error {
	_, err := e.Crictl("rm", "--force", id)
	return err
}

// StopPod stops and removes a pod sandbox and its containers.
func (e *Env) StopPod(p *Pod) error {
	if _, err := e.Crictl("stopp", p.ID); err != nil {
		return err
	}
	_, err := e.Crictl("rmp", "--force", p.ID)
	return err
}

// ContainerLogs returns what the container wrote to stdout and stderr.
func (e *Env) ContainerLogs(id string) (string, error) { return e.Crictl("logs", id) }

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}
