package ctrd

import (
	"context"
	"fmt"
	"slices"

	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"

	"tollgate.dev/tollgate/policy"
)

// ResolveVolume returns the identity of the image behind an image volume (KEP-4639).
//
// containerd's CRI plugin (2.3, 2.4) mounts an image volume at
// <state>/io.containerd.grpc.v1.cri/image-volumes/<sandbox>/<hex>, where <hex> is the
// digest of the target (manifest or index) of the image record it resolved the volume's
// reference to, and unpacks it for the sandbox's platform. NRI shows only that path: no
// reference, no config digest. So the binding is: target digest -> the image records of
// the namespace with that target -> the config their manifests name for this node's
// platform, read from containerd's content store like every other binding here. It fails
// when no record has that target; the caller denies. It implements plugin.Resolver.
func (c *Client) ResolveVolume(ctx context.Context, target string) (policy.Image, error) {
	d, err := digest.Parse(target)
	if err != nil {
		return policy.Image{}, fmt.Errorf("image volume target %q: %w", target, err)
	}
	be, ref, err := c.connect()
	if err != nil {
		return policy.Image{}, err
	}
	ctx, cancel := c.ctx(ctx)
	defer cancel()

	names, binds := ref.cat.byTarget(d)
	if len(names) == 0 || ref.done.Load() == 0 {
		if _, err := ref.sync(ctx, be.images); err != nil {
			return policy.Image{}, fmt.Errorf("listing images in containerd namespace %q: %w", c.namespace, err)
		}
		names, binds = ref.cat.byTarget(d)
	}
	if len(names) == 0 {
		return policy.Image{}, fmt.Errorf("no image in containerd namespace %q has target %s", c.namespace, d)
	}
	config, ok := platformConfig(binds)
	if !ok {
		return policy.Image{}, fmt.Errorf("image %s (target %s) has no manifest for platform %s", names[0], d, platforms.DefaultString())
	}
	digests, all, ok := ref.cat.lookup(config)
	if !ok {
		return policy.Image{}, fmt.Errorf("no image in containerd namespace %q leads to config %s", c.namespace, config)
	}
	return imageFor(config, digests, all, names), nil
}

// byTarget returns the names (sorted) of the image records whose target is d that were
// walked successfully, and the bindings of one of them: records with the same target
// hold the same content, so their bindings are the same.
func (c *catalog) byTarget(d digest.Digest) (names []string, binds []binding) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for name, e := range c.byName {
		if e.target == d && !e.failed && len(e.binds) > 0 {
			names = append(names, name)
			binds = e.binds
		}
	}
	slices.Sort(names)
	return names, binds
}
