package plugin

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/containerd/nri/pkg/api"

	"tollgate.dev/tollgate/daemon/audit"
	"tollgate.dev/tollgate/policy"
)

// imageVolumeDir is where containerd's CRI plugin (2.3, 2.4) mounts image volumes
// (KEP-4639), under its state directory whatever that is:
// <state>/io.containerd.grpc.v1.cri/image-volumes/<sandbox id>/<target hex>[/<sub path>].
// NRI shows an image volume only as a read-only bind mount from there (docs/image-volumes.md).
const imageVolumeDir = "io.containerd.grpc.v1.cri/image-volumes"

// maxImageVolumes bounds the distinct images one container may mount as volumes: each is
// one more decision inside the hook's deadline.
const maxImageVolumes = 16

// imageVolume is one image a container mounts as a volume.
type imageVolume struct {
	Path   string // where the container sees it (the first mount of this image)
	Source string // the host path NRI shows
	Target string // "sha256:<hex>": the target of the image record containerd mounted
}

// imageVolumes finds the image volumes among a container's mounts and those that plugins
// before Tollgate add, one per image. A mount from containerd's image-volume directory
// that is not one image volume, as containerd mounts it, is an error: it exposes image
// content that cannot be tied to one image. On error, bad is the mount at fault.
func imageVolumes(mounts ...[]*api.Mount) (vols []imageVolume, bad imageVolume, err error) {
	for _, ms := range mounts {
		for _, m := range ms {
			v, ok, err := classifyMount(m)
			if err != nil {
				return nil, v, err
			}
			if !ok || slices.ContainsFunc(vols, func(o imageVolume) bool { return o.Target == v.Target }) {
				continue
			}
			if len(vols) == maxImageVolumes {
				return nil, v, fmt.Errorf("it mounts more than %d images as volumes", maxImageVolumes)
			}
			vols = append(vols, v)
		}
	}
	return vols, imageVolume{}, nil
}

// classifyMount reports whether m is an image volume, and which. The path is read as
// containerd writes it (clean, absolute, symlinks resolved); anything else from that
// directory is refused rather than interpreted.
func classifyMount(m *api.Mount) (imageVolume, bool, error) {
	src := m.GetSource()
	rest, found := underImageVolumeDir(src)
	if !found {
		return imageVolume{}, false, nil
	}
	dst := m.GetDestination()
	bad := func(why string) (imageVolume, bool, error) {
		return imageVolume{Path: dst, Source: src}, false, fmt.Errorf("its mount at %q from %q %s", dst, src, why)
	}
	if !path.IsAbs(src) || path.Clean(src) != src {
		return bad("is not a canonical path into containerd's image-volume directory")
	}
	parts := strings.SplitN(strings.TrimPrefix(rest, "/"), "/", 3)
	switch {
	case len(parts) < 2:
		return bad("exposes containerd's image-volume directory, not one image volume")
	case !isHex64(parts[1]):
		return bad("is not an image volume as containerd mounts it (no image digest in the path)")
	case m.GetType() != "" && m.GetType() != "bind":
		return bad(fmt.Sprintf("has type %q, not a bind mount", m.GetType()))
	case !slices.Contains(m.GetOptions(), "ro"):
		return bad("is not read-only, as containerd mounts every image volume")
	}
	return imageVolume{Path: dst, Source: src, Target: "sha256:" + parts[1]}, true, nil
}

// underImageVolumeDir finds the first whole path segment pair naming the image-volume
// directory in src (not a sibling such as ".../image-volumes-old") and returns what follows.
func underImageVolumeDir(src string) (rest string, found bool) {
	for off := 0; ; {
		i := strings.Index(src[off:], imageVolumeDir)
		if i < 0 {
			return "", false
		}
		i += off
		rest = src[i+len(imageVolumeDir):]
		if (i == 0 || src[i-1] == '/') && (rest == "" || rest[0] == '/') {
			return rest, true
		}
		off = i + 1
	}
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// checkVolumes decides each image volume of a container whose own image was allowed,
// exactly as a container image is decided (the same Decider: policies, evidence, cache,
// pre-verification). It returns the record the hook call should leave when a volume
// decides it (a denial, or an outcome that says more than the container's), and the
// error that refuses the container.
func (p *Plugin) checkVolumes(ctx context.Context, dec Decider, start time.Time, pod *api.PodSandbox, ctr *api.Container,
	adjust []*api.Mount, own policy.Outcome) (*audit.Entry, error) {
	vols, bad, err := imageVolumes(ctr.GetMounts(), adjust)
	if err != nil {
		return p.volumeRefusal(start, pod, ctr, bad, err)
	}
	var pick *audit.Entry
	for _, v := range vols {
		img, err := p.resolver.ResolveVolume(ctx, v.Target)
		if err == nil && img.ConfigDigest == "" {
			err = errors.New("no image config digest")
		}
		if err != nil {
			return p.volumeRefusal(start, pod, ctr, v,
				fmt.Errorf("cannot establish the identity of its image volume at %q (image %s) from containerd: %w", v.Path, v.Target, err))
		}
		req := policy.Request{Image: img, Namespace: pod.GetNamespace(), Pod: pod.GetName(), Container: ctr.GetName()}
		vctx, call := audit.WithCall(ctx)
		d := dec.Decide(vctx, req)
		e, ok := call.Close()
		if !ok {
			e = audit.Entry{Time: start, Path: "hook", Request: req, Decision: d}
		}
		e.Volume, e.FromVolume = v.Path, true
		if !d.Allowed {
			msg := fmt.Sprintf("tollgate: denied container %q: its image volume at %q: %s",
				ctr.GetName(), v.Path, strings.TrimPrefix(denyMessage(req, d), "tollgate: "))
			e.Decision.Message = msg
			e.Latency = time.Since(start)
			return &e, errors.New(msg)
		}
		if outcomeRank(d.Outcome) > outcomeRank(own) {
			own, pick = d.Outcome, &e
		}
	}
	return pick, nil
}

// volumeRefusal is the plugin's own denial of a container for an image volume it cannot
// tie to an image. Its record names the mount: its path, and as image its host source
// and the target digest in it, if any.
func (p *Plugin) volumeRefusal(start time.Time, pod *api.PodSandbox, ctr *api.Container, v imageVolume, why error) (*audit.Entry, error) {
	err := fmt.Errorf("tollgate: denied container %q: %w", ctr.GetName(), why)
	e := p.ownEntry(start, pod, ctr, err)
	e.Volume, e.FromVolume = v.Path, true
	e.Request.Image = policy.Image{Ref: v.Source, Digests: nonEmpty(v.Target)}
	return &e, err
}

// outcomeRank orders outcomes by how much an operator needs to see them, so that the one
// record of a hook call is the decision that says most.
func outcomeRank(o policy.Outcome) int {
	switch o {
	case policy.Denied:
		return 3
	case policy.AuditFail:
		return 2
	case policy.BreakGlass, policy.Unmatched:
		return 1
	default:
		return 0
	}
}
