//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// CRI container states as crictl prints them.
const (
	StateCreated = "CONTAINER_CREATED"
	StateRunning = "CONTAINER_RUNNING"
	StateExited  = "CONTAINER_EXITED"
)

// Container is one line of `crictl ps -a`.
type Container struct {
	ID           string `json:"id"`
	PodSandboxID string `json:"podSandboxId"`
	Metadata     struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Image struct {
		Image string `json:"image"`
	} `json:"image"`
	ImageRef    string            `json:"imageRef"` // as containerd resolved it (image ID or digest ref)
	State       string            `json:"state"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// Containers lists every container (any state) of the environment.
func (e *Env) Containers() ([]Container, error) {
	out, err := e.Crictl("ps", "-a", "-o", "json")
	if err != nil {
		return nil, err
	}
	var v struct {
		Containers []Container `json:"containers"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		return nil, fmt.Errorf("crictl ps: %w", err)
	}
	return v.Containers, nil
}

// ContainerStatus is the part of `crictl inspect` that tests look at; Raw has it all.
type ContainerStatus struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	ExitCode int32  `json:"exitCode"`
	Reason   string `json:"reason"`
	Message  string `json:"message"`
	Image    struct {
		Image string `json:"image"`
	} `json:"image"`
	ImageRef string          `json:"imageRef"`
	ImageID  string          `json:"imageId"`
	Raw      json.RawMessage `json:"-"`
}

// InspectContainer returns a container's CRI status.
func (e *Env) InspectContainer(id string) (*ContainerStatus, error) {
	out, err := e.Crictl("inspect", "-o", "json", id)
	if err != nil {
		return nil, err
	}
	var v struct {
		Status ContainerStatus `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		return nil, fmt.Errorf("crictl inspect %s: %w", id, err)
	}
	v.Status.Raw = json.RawMessage(out)
	return &v.Status, nil
}

// WaitContainerState polls until container id is in state (e.g. StateRunning).
func (e *Env) WaitContainerState(id, state string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		st, err := e.InspectContainer(id)
		if err == nil && st.State == state {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("container %.12s not %s after %s: %w", id, state, limit, err)
			}
			return fmt.Errorf("container %.12s is %s (%s %s), not %s after %s", id, st.State, st.Reason, st.Message, state, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitContainerLog polls the container's output until it contains substr. Output reaches
// the CRI log file asynchronously (through the shim), so a running container's first line
// may not be there yet.
func (e *Env) WaitContainerLog(id, substr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		out, err := e.ContainerLogs(id)
		if err == nil && strings.Contains(out, substr) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("container %.12s output lacks %q after %s: %q (%v)", id, substr, limit, out, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
