package ctrd

// RunningContainers against the real local content store (through the fixture) and small
// fakes of containerd's container and task services.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	digest "github.com/opencontainers/go-digest"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"

	"tollgate.dev/tollgate/policy"
)

// fakeContainers is a container service.
type fakeContainers struct {
	list []containers.Container
	err  error
}

func (f *fakeContainers) List(context.Context, ...string) ([]containers.Container, error) {
	return append([]containers.Container(nil), f.list...), f.err
}

// fakeTasks is a task service's List.
type fakeTasks struct {
	procs []*tasktypes.Process
	err   error
}

func (f *fakeTasks) List(context.Context, *tasks.ListTasksRequest, ...grpc.CallOption) (*tasks.ListTasksResponse, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &tasks.ListTasksResponse{Tasks: f.procs}, nil
}

// failingImages is an image store whose List fails.
type failingImages struct {
	*fakeImages
	err error
}

func (s failingImages) List(context.Context, ...string) ([]images.Image, error) { return nil, s.err }

// runNode is a fixture with running containers.
type runNode struct {
	*fixture
	ctrs  *fakeContainers
	tasks *fakeTasks
}

func newRunNode(t *testing.T) *runNode {
	return &runNode{fixture: newFixture(t), ctrs: &fakeContainers{}, tasks: &fakeTasks{}}
}

func (n *runNode) client(opts ...Option) *Client {
	return newWithBackend(&backend{images: n.store, content: n.cs, events: n.subs,
		containers: n.ctrs, tasks: n.tasks}, opts...)
}

// criPod describes a container the way the CRI plugin records it.
type criPod struct {
	id, ns, pod, name string
	user              string // the pod's image field (user_specified_image)
	imageName         string // the image record CRI created the container from
	config            digest.Digest
	kind              string           // "container" unless set
	status            tasktypes.Status // RUNNING unless set; -1: no task
	ext               typeurl.Any      // overrides the metadata extension
}

// add records the container and its task.
func (n *runNode) add(t *testing.T, p criPod) {
	t.Helper()
	kind := p.kind
	if kind == "" {
		kind = "container"
	}
	ext := p.ext
	if ext == nil {
		ext = criExtension(t, p)
	}
	n.ctrs.list = append(n.ctrs.list, containers.Container{
		ID:    p.id,
		Image: p.imageName,
		Labels: map[string]string{labelKind: kind, labelPodNamespace: p.ns, labelPodName: p.pod,
			labelContainerName: p.name},
		Extensions: map[string]typeurl.Any{criMetadataExtension: ext},
	})
	n.task(p.id, p.status)
}

func (n *runNode) task(id string, st tasktypes.Status) {
	if st == -1 {
		return
	}
	if st == 0 {
		st = tasktypes.Status_RUNNING
	}
	n.tasks.procs = append(n.tasks.procs, &tasktypes.Process{ID: id, Pid: 42, Status: st})
}

// criExtension is the CRI plugin's metadata extension, as containerd 2.4 writes it
// (internal/cri/store/container.Metadata, JSON through typeurl).
func criExtension(t *testing.T, p criPod) typeurl.Any {
	t.Helper()
	meta := map[string]any{
		"Version": "v1",
		"Metadata": map[string]any{
			"ID": p.id, "Name": p.name + "_" + p.pod, "SandboxID": "sb-" + p.pod,
			"Config": map[string]any{
				"metadata": map[string]any{"name": p.name},
				"image":    map[string]any{"image": p.config.String(), "user_specified_image": p.user},
			},
			"ImageRef": p.config.String(), "ImageDigest": "", "ImageName": p.imageName,
			"LogPath": "/var/log/pods/x.log", "StopSignal": "SIGTERM", "ProcessLabel": "",
		},
	}
	raw, err := json.Marshal(meta)
	if err != nil {
		t.Fatal(err)
	}
	return rawExtension(raw)
}

func rawExtension(raw []byte) typeurl.Any {
	return &anypb.Any{TypeUrl: "github.com/containerd/cri/pkg/store/container/Metadata", Value: raw}
}

func TestRunningContainers(t *testing.T) {
	n := newRunNode(t)
	cAPI, cOld, cTool := configDigest("api"), configDigest("api old"), configDigest("tool")
	mAPI := n.manifest(cAPI, true)
	idx := n.index(onPlatform(mAPI, "linux/amd64"))
	mTool := n.manifest(cTool, true)
	n.image("ghcr.io/acme/api:1.0", idx)
	n.image(cAPI.String(), idx) // CRI's record by image ID
	n.image("ghcr.io/acme/tool:2", mTool)
	apiImage := policy.Image{Ref: "ghcr.io/acme/api:1.0", Repository: "ghcr.io/acme/api",
		ConfigDigest: cAPI.String(), Digests: strs(mAPI, idx)}

	n.add(t, criPod{id: "c-api", ns: "shop", pod: "api-7d9", name: "api", user: "ghcr.io/acme/api:1.0",
		imageName: "ghcr.io/acme/api:1.0", config: cAPI})
	n.add(t, criPod{id: "c-side", ns: "shop", pod: "api-7d9", name: "sidecar", user: "ghcr.io/acme/api:1.0",
		imageName: "ghcr.io/acme/api:1.0", config: cAPI, status: tasktypes.Status_PAUSED})
	// The image this container runs was deleted: its config no longer resolves, and
	// the name it was created from now leads elsewhere. It is reported with what is known.
	n.add(t, criPod{id: "c-gone", ns: "batch", pod: "job-1", name: "main", user: "ghcr.io/acme/api:0.9",
		imageName: "ghcr.io/acme/api:0.9", config: cOld})
	n.image("ghcr.io/acme/api:0.9", idx)
	// Left out: the pod sandbox, a stopped container, a created one, one without a task.
	n.add(t, criPod{id: "sb", ns: "shop", pod: "api-7d9", name: "", kind: kindSandbox,
		imageName: "registry.k8s.io/pause:3.10", config: configDigest("pause")})
	n.add(t, criPod{id: "c-stopped", ns: "shop", pod: "old", name: "api", imageName: "ghcr.io/acme/api:1.0",
		config: cAPI, status: tasktypes.Status_STOPPED})
	n.add(t, criPod{id: "c-created", ns: "shop", pod: "new", name: "api", imageName: "ghcr.io/acme/api:1.0",
		config: cAPI, status: tasktypes.Status_CREATED})
	n.add(t, criPod{id: "c-notask", ns: "shop", pod: "none", name: "api", imageName: "ghcr.io/acme/api:1.0",
		config: cAPI, status: -1})
	// Not a CRI container (ctr run): known by its image name and its ID.
	n.ctrs.list = append(n.ctrs.list, containers.Container{ID: "debug-shell", Image: "ghcr.io/acme/tool:2"})
	n.task("debug-shell", tasktypes.Status_RUNNING)

	got, err := n.client().RunningContainers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []policy.Request{
		{Container: "debug-shell", Image: policy.Image{Ref: "ghcr.io/acme/tool:2",
			Repository: "ghcr.io/acme/tool", ConfigDigest: cTool.String(), Digests: strs(mTool)}},
		{Namespace: "batch", Pod: "job-1", Container: "main",
			Image: policy.Image{Ref: "ghcr.io/acme/api:0.9", Repository: "ghcr.io/acme/api", ConfigDigest: cOld.String()}},
		{Namespace: "shop", Pod: "api-7d9", Container: "api", Image: apiImage},
		{Namespace: "shop", Pod: "api-7d9", Container: "sidecar", Image: apiImage},
	}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
	if len(got) == 4 && &got[2].Image.Digests[0] == &got[3].Image.Digests[0] {
		t.Error("requests of one image share their Digests slice")
	}
}

func TestRunningContainersPrefersUsersName(t *testing.T) {
	n := newRunNode(t)
	cfg := configDigest("nginx")
	m := n.manifest(cfg, true)
	n.image("docker.io/library/nginx:1.25", m)
	n.image("docker.io/library/nginx:stable", m)
	n.add(t, criPod{id: "c1", ns: "web", pod: "web-0", name: "nginx", user: "nginx:stable",
		imageName: "docker.io/library/nginx:1.25", config: cfg})
	got, err := n.client().RunningContainers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Image.Ref != "docker.io/library/nginx:stable" {
		t.Fatalf("got %+v, want Ref docker.io/library/nginx:stable", got)
	}
}

// A CRI container whose metadata cannot be used is reported unresolved: resolving it by
// name would check whatever the name points at now, not what runs.
func TestRunningContainersUnusableMetadata(t *testing.T) {
	noRef, _ := json.Marshal(map[string]any{"Version": "v1", "Metadata": map[string]any{"ImageName": "ghcr.io/acme/api:1.0"}})
	tests := []struct {
		name string
		ext  typeurl.Any
		want policy.Image
	}{
		{"malformed", rawExtension([]byte(`{"Version":"v1","Metadata":`)),
			policy.Image{Ref: "ghcr.io/acme/api:1.0", Repository: "ghcr.io/acme/api"}},
		{"unknown version", rawExtension([]byte(`{"Version":"v9","Metadata":{}}`)),
			policy.Image{Ref: "ghcr.io/acme/api:1.0", Repository: "ghcr.io/acme/api"}},
		{"oversized", rawExtension([]byte(`{"Version":"v1","Metadata":{"LogPath":"` + strings.Repeat("a", maxCRIMetadataBytes) + `"}}`)),
			policy.Image{Ref: "ghcr.io/acme/api:1.0", Repository: "ghcr.io/acme/api"}},
		{"no image ID", rawExtension(noRef),
			policy.Image{Ref: "ghcr.io/acme/api:1.0", Repository: "ghcr.io/acme/api"}},
		{"image ID is not a digest", rawExtension([]byte(`{"Version":"v1","Metadata":{"ImageRef":"sha256:zz","ImageName":"ghcr.io/acme/api:1.0"}}`)),
			policy.Image{Ref: "ghcr.io/acme/api:1.0", Repository: "ghcr.io/acme/api"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newRunNode(t)
			n.image("ghcr.io/acme/api:1.0", n.manifest(configDigest("api"), true)) // the name resolves
			n.add(t, criPod{id: "c1", ns: "shop", pod: "api", name: "api", imageName: "ghcr.io/acme/api:1.0", ext: tt.ext})
			got, err := n.client().RunningContainers(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			want := []policy.Request{{Namespace: "shop", Pod: "api", Container: "api", Image: tt.want}}
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

// When containerd cannot list, nothing is known: the pass fails instead of reporting every
// container as failing.
func TestRunningContainersFailures(t *testing.T) {
	boom := errors.New("boom")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name  string
		ctx   context.Context
		setup func(n *runNode) *Client
		want  string
	}{
		{"task list fails", context.Background(), func(n *runNode) *Client {
			n.tasks.err = boom
			return n.client()
		}, "listing tasks in containerd namespace \"k8s.io\": boom"},
		{"container list fails", context.Background(), func(n *runNode) *Client {
			n.ctrs.err = boom
			return n.client()
		}, "listing containers in containerd namespace \"k8s.io\": boom"},
		{"image list fails", context.Background(), func(n *runNode) *Client {
			return newWithBackend(&backend{images: failingImages{n.store, fmt.Errorf("rpc: %w", errdefs.ErrUnavailable)},
				content: n.cs, containers: n.ctrs, tasks: n.tasks})
		}, "listing images in containerd namespace"},
		{"no container service", context.Background(), func(n *runNode) *Client {
			return n.fixture.client()
		}, "cannot list containers"},
		{"context done", cancelled, func(n *runNode) *Client { return n.client() }, "context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newRunNode(t)
			cfg := configDigest("api")
			n.image("ghcr.io/acme/api:1.0", n.manifest(cfg, true))
			n.add(t, criPod{id: "c1", ns: "shop", pod: "api", name: "api", imageName: "ghcr.io/acme/api:1.0", config: cfg})
			got, err := tt.setup(n).RunningContainers(tt.ctx)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, %v; want an error containing %q", got, err, tt.want)
			}
		})
	}
}

// Many containers of one image (deleted or not) resolve once each: the pass costs a few
// image listings, not one per container, and stops at the bound.
func TestRunningContainersBounded(t *testing.T) {
	n := newRunNode(t)
	cfg, gone := configDigest("api"), configDigest("gone")
	n.image("ghcr.io/acme/api:1.0", n.manifest(cfg, true))
	for i := range maxRunningContainers + 1 {
		c := cfg
		if i%2 == 1 {
			c = gone
		}
		n.add(t, criPod{id: fmt.Sprintf("c%05d", i), ns: "shop", pod: fmt.Sprintf("p%05d", i), name: "api",
			imageName: "ghcr.io/acme/api:1.0", config: c})
	}
	got, err := n.client().RunningContainers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != maxRunningContainers {
		t.Errorf("got %d containers, want %d", len(got), maxRunningContainers)
	}
	if got[len(got)-1].Pod != fmt.Sprintf("p%05d", maxRunningContainers-1) {
		t.Errorf("last container %+v: the bound should keep the first IDs", got[len(got)-1])
	}
	if n.store.lists > 3 {
		t.Errorf("%d image listings for two images", n.store.lists)
	}
}

// RunningContainers may run while the hook resolves.
func TestRunningContainersConcurrentWithResolve(t *testing.T) {
	n := newRunNode(t)
	cfg := configDigest("api")
	n.image("ghcr.io/acme/api:1.0", n.manifest(cfg, true))
	n.add(t, criPod{id: "c1", ns: "shop", pod: "api", name: "api", imageName: "ghcr.io/acme/api:1.0", config: cfg})
	c := n.client()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := c.RunningContainers(context.Background()); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() {
			if _, err := c.ResolveRef(context.Background(), Ref{ConfigDigest: cfg.String()}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}
