package ctrd

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"tollgate.dev/tollgate/policy"
)

// Labels and the extension the CRI plugin puts on the container records it creates.
const (
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelPodName       = "io.kubernetes.pod.name"
	labelContainerName = "io.kubernetes.container.name"
	labelKind          = "io.cri-containerd.kind"
	kindSandbox        = "sandbox"
	// criMetadataExtension holds the CRI plugin's container metadata (JSON), among it the
	// image ID the rootfs was built from: the same config digest NRI reports at creation.
	criMetadataExtension = "io.cri-containerd.container.metadata"
)

// Bounds of one RunningContainers pass.
const (
	maxRunningContainers = 10_000           // containers returned; the rest are left out (and logged)
	maxCRIMetadataBytes  = 1 << 20          // one container's CRI metadata extension
	runningListTimeout   = 60 * time.Second // the whole pass, when the caller's deadline is later
)

// containerStore is the part of containerd's container service ctrd uses.
type containerStore interface {
	List(ctx context.Context, filters ...string) ([]containers.Container, error)
}

// taskLister is the part of containerd's task service ctrd uses.
type taskLister interface {
	List(ctx context.Context, in *tasks.ListTasksRequest, opts ...grpc.CallOption) (*tasks.ListTasksResponse, error)
}

// RunningContainers lists the containers of the namespace whose task is running (or
// paused), with their images resolved the way Resolve resolves them at creation: from the
// image ID the CRI plugin recorded for the container, through containerd's content store,
// never a registry. It implements gate.ContainerLister, for the re-check after a policy
// reload. Pod sandbox (pause) containers are left out: NRI never asks about them either.
//
// A container whose image no longer resolves (its image record was removed, or its
// content is gone) is still returned, with what is known: Ref and Repository from the
// image name it was created from, ConfigDigest from the CRI metadata, and no Digests. No
// evidence can bind to such an image, so the re-check reports it unless its policy needs
// no evidence. Such containers are logged together, once per pass. An error is returned
// only when the listing itself fails (containerd unreachable, ctx done): then nothing is
// known, and reporting every container as failing would be wrong.
//
// Containers without the CRI plugin's records (created with ctr, say) are included; their
// image is resolved by name, as for containerd < 2.4, and Container holds their ID.
// At most 10,000 containers are returned.
func (c *Client) RunningContainers(ctx context.Context) ([]policy.Request, error) {
	be, ref, err := c.connect()
	if err != nil {
		return nil, err
	}
	if be.containers == nil || be.tasks == nil {
		return nil, errors.New("the containerd connection cannot list containers")
	}
	ctx, cancel := context.WithTimeout(ctx, runningListTimeout)
	defer cancel()

	ctrs, err := c.runningRecords(ctx, be)
	if err != nil {
		return nil, err
	}
	// One fresh listing up front: an image pulled since the last event is then known, and
	// a containerd that cannot list images fails the pass instead of every container.
	lctx, lcancel := c.ctx(ctx)
	_, err = ref.sync(lctx, be.images)
	lcancel()
	if err != nil {
		return nil, fmt.Errorf("listing images in containerd namespace %q: %w", c.namespace, err)
	}

	out := make([]policy.Request, 0, len(ctrs))
	resolved := map[Ref]resolution{} // containers of one image resolve once
	var unresolved []string
	var firstErr error
	for i := range ctrs {
		r, rerr := containerRef(&ctrs[i])
		res, ok := resolved[r]
		if !ok || rerr != nil {
			res = c.resolveRunning(ctx, r, rerr)
			if isInfraError(ctx, res.err) {
				return nil, fmt.Errorf("resolving the image of container %s: %w", ctrs[i].ID, res.err)
			}
			if rerr == nil {
				resolved[r] = res
			}
		}
		if res.err != nil {
			unresolved = append(unresolved, ctrs[i].ID)
			firstErr = cmp.Or(firstErr, fmt.Errorf("container %s: %w", ctrs[i].ID, res.err))
		}
		out = append(out, requestFor(&ctrs[i], res.img))
	}
	if len(unresolved) > 0 {
		c.log.Warn("running containers whose image no longer resolves in containerd; re-checked with what is known",
			zap.Int("containers", len(unresolved)), zap.Strings("ids", unresolved[:min(len(unresolved), 10)]),
			zap.Error(firstErr))
	}
	slices.SortFunc(out, func(a, b policy.Request) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Pod, b.Pod),
			cmp.Compare(a.Container, b.Container))
	})
	return out, nil
}

// runningRecords returns the container records (sandboxes left out, sorted by ID, at most
// maxRunningContainers) whose task is running or paused.
func (c *Client) runningRecords(ctx context.Context, be *backend) ([]containers.Container, error) {
	tctx, tcancel := c.ctx(ctx)
	resp, err := be.tasks.List(tctx, &tasks.ListTasksRequest{})
	tcancel()
	if err != nil {
		return nil, fmt.Errorf("listing tasks in containerd namespace %q: %w", c.namespace, err)
	}
	running := make(map[string]struct{}, len(resp.GetTasks()))
	for _, t := range resp.GetTasks() {
		switch t.GetStatus() {
		case tasktypes.Status_RUNNING, tasktypes.Status_PAUSED, tasktypes.Status_PAUSING:
			running[t.GetID()] = struct{}{}
		}
	}

	cctx, ccancel := c.ctx(ctx)
	all, err := be.containers.List(cctx)
	ccancel()
	if err != nil {
		return nil, fmt.Errorf("listing containers in containerd namespace %q: %w", c.namespace, err)
	}
	ctrs := slices.DeleteFunc(all, func(ctr containers.Container) bool {
		_, ok := running[ctr.ID]
		return !ok || ctr.Labels[labelKind] == kindSandbox
	})
	slices.SortFunc(ctrs, func(a, b containers.Container) int { return cmp.Compare(a.ID, b.ID) })
	if len(ctrs) > maxRunningContainers {
		c.log.Warn("too many running containers; listing the first ones",
			zap.Int("containers", len(ctrs)), zap.Int("listed", maxRunningContainers))
		ctrs = ctrs[:maxRunningContainers]
	}
	return ctrs, nil
}

// resolution is one image's identity, or why it could not be resolved and what is known.
type resolution struct {
	img policy.Image
	err error
}

func (c *Client) resolveRunning(ctx context.Context, r Ref, refErr error) resolution {
	if refErr == nil {
		img, err := c.ResolveRef(ctx, r)
		if err == nil {
			return resolution{img: img}
		}
		refErr = err
	}
	return resolution{img: knownImage(r), err: refErr}
}

// isInfraError reports whether err says containerd (or time) failed rather than that the
// image is gone: such an error must fail the pass, never turn into a report.
func isInfraError(ctx context.Context, err error) bool {
	return err != nil && (ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled) || errdefs.IsUnavailable(err))
}

// knownImage is what a container's records say about an image that does not resolve: the
// first name that parses as a reference, and the config digest if it is one.
func knownImage(r Ref) policy.Image {
	var img policy.Image
	if d, err := digest.Parse(r.ConfigDigest); err == nil {
		img.ConfigDigest = d.String()
	}
	for _, n := range candidates(r) {
		if p := parseName(n); p.ok {
			img.Ref, img.Repository = p.str, p.repo
			break
		}
	}
	return img
}

// requestFor builds the re-check request. Digests are copied: requests resolved from one
// image must not share a slice.
func requestFor(ctr *containers.Container, img policy.Image) policy.Request {
	img.Digests = slices.Clone(img.Digests)
	req := policy.Request{Image: img, Namespace: ctr.Labels[labelPodNamespace],
		Pod: ctr.Labels[labelPodName], Container: ctr.Labels[labelContainerName]}
	if req.Container == "" {
		req.Container = ctr.ID // not a CRI container: its ID is all there is to name it by
	}
	return req
}

// criMetadata is the part of the CRI plugin's container metadata extension ctrd reads
// (internal/cri/store/container.Metadata, version "v1", as JSON).
type criMetadata struct {
	Version  string
	Metadata struct {
		ImageRef    string // the image ID (config digest) the rootfs was built from
		ImageDigest string // the image record's target at creation
		ImageName   string // the image record's name at creation
		Config      *struct {
			Image *struct {
				UserSpecifiedImage string `json:"user_specified_image"`
			} `json:"image"`
		}
	}
}

// containerRef reads a container's image identity from its records. A CRI container names
// its image by ID in the metadata extension; a container without the extension is known
// only by its image name. The error says why a CRI container's metadata cannot be used:
// the name alone would resolve to whatever the name points at now, not to what runs.
func containerRef(ctr *containers.Container) (Ref, error) {
	r := Ref{Name: ctr.Image}
	ext, ok := ctr.Extensions[criMetadataExtension]
	if !ok || ext == nil {
		return r, nil
	}
	raw := ext.GetValue()
	if len(raw) > maxCRIMetadataBytes {
		return r, fmt.Errorf("CRI metadata of %d bytes %w (limit %d)", len(raw), ErrTooLarge, maxCRIMetadataBytes)
	}
	var m criMetadata
	if err := json.Unmarshal(raw, &m); err != nil {
		return r, fmt.Errorf("reading CRI metadata: %w", err)
	}
	if m.Version != "v1" {
		return r, fmt.Errorf("CRI metadata version %q is not supported", m.Version)
	}
	md := &m.Metadata
	if md.ImageName != "" {
		r.Name = md.ImageName
	}
	if md.Config != nil && md.Config.Image != nil {
		r.UserName = md.Config.Image.UserSpecifiedImage
	}
	r.Digest, r.ConfigDigest = md.ImageDigest, md.ImageRef
	if r.ConfigDigest == "" {
		return r, errors.New("the CRI metadata names no image ID")
	}
	return r, nil
}
