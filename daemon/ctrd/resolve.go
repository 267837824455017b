package ctrd

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"

	"tollgate.dev/tollgate/policy"
	"tollgate.dev/tollgate/policy/refname"
)

// ImageNameAnnotation is where containerd's CRI plugin puts the image reference the user
// asked for.
const ImageNameAnnotation = "io.kubernetes.cri.image-name"

// Ref is what the runtime says about a container's image.
type Ref struct {
	// UserName is the reference the pod asked for (the CRI annotation), if any.
	UserName string
	// Name and Digest are NRI's Image.name and Image.digest: the image's first reference
	// and its target, which need not be what the user asked for.
	Name, Digest string
	// ConfigDigest is NRI's Image.config_digest: the image ID the rootfs was built from.
	// Empty with containerd < 2.4.
	ConfigDigest string
}

// RefOf reads a container's image identity from an NRI request.
func RefOf(c *api.Container) Ref {
	img := c.GetImage()
	return Ref{
		UserName:     c.GetAnnotations()[ImageNameAnnotation],
		Name:         img.GetName(),
		Digest:       img.GetDigest(),
		ConfigDigest: img.GetConfigDigest(),
	}
}

// Resolve returns the identity of the image a container is created from. It implements
// plugin.Resolver.
func (c *Client) Resolve(ctx context.Context, ctr *api.Container) (policy.Image, error) {
	return c.ResolveRef(ctx, RefOf(ctr))
}

// ResolveRef returns the image config r names (or, without one, the config the named
// image has for this node's platform) with every manifest and index digest that leads to
// it in containerd's content store. Ref names a record that leads to that config: the
// user's reference when it does, or else another record's name. It fails when no image
// record of the namespace leads to the config; the caller denies.
func (c *Client) ResolveRef(ctx context.Context, r Ref) (policy.Image, error) {
	be, ref, err := c.connect()
	if err != nil {
		return policy.Image{}, err
	}
	ctx, cancel := c.ctx(ctx)
	defer cancel()

	config := digest.Digest(r.ConfigDigest)
	if config == "" {
		if config, err = c.configForName(ctx, be, ref, r); err != nil {
			return policy.Image{}, err
		}
	} else if err := config.Validate(); err != nil {
		return policy.Image{}, fmt.Errorf("image config digest %q: %w", r.ConfigDigest, err)
	}

	// The first lookup waits for a full listing, so that every record leading to the
	// config is known. A miss afterwards is an image pulled a moment ago whose event is
	// still on its way: list again (only new targets are walked).
	digests, names, ok := ref.cat.lookup(config)
	if !ok || ref.done.Load() == 0 {
		if _, err := ref.sync(ctx, be.images); err != nil {
			return policy.Image{}, fmt.Errorf("listing images in containerd namespace %q: %w", c.namespace, err)
		}
		digests, names, ok = ref.cat.lookup(config)
	}
	if !ok {
		return policy.Image{}, fmt.Errorf("no image in containerd namespace %q leads to config %s", c.namespace, config)
	}
	return imageFor(config, digests, names, candidates(r)), nil
}

// configForName finds the config of a named image for this node's platform: the fallback
// for runtimes that do not report config_digest.
func (c *Client) configForName(ctx context.Context, be *backend, ref *refresher, r Ref) (digest.Digest, error) {
	names := candidates(r)
	if len(names) == 0 {
		return "", errNoIdentity
	}
	var lastErr error
	for _, n := range names {
		if d, err := digest.Parse(n); err == nil {
			return d, nil // an image ID is the config digest
		}
		if _, err := ref.refreshName(ctx, be.images, n); err != nil {
			lastErr = err
			continue
		}
		e, ok := ref.cat.get(n)
		if !ok {
			continue
		}
		if d, ok := platformConfig(e.binds); ok {
			return d, nil
		}
		lastErr = fmt.Errorf("image %s has no manifest for platform %s", n, platforms.DefaultString())
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("no image named %s in containerd namespace %q", strings.Join(names, " or "), c.namespace)
	}
	return "", lastErr
}

// platformConfig picks the config this node's platform would run.
func platformConfig(binds []binding) (digest.Digest, bool) {
	if len(binds) == 1 {
		return binds[0].Config, true
	}
	m := platforms.Default()
	var best *binding
	for i := range binds {
		b := &binds[i]
		if b.Platform == nil || !m.Match(*b.Platform) {
			continue
		}
		if best == nil || m.Less(*b.Platform, *best.Platform) {
			best = b
		}
	}
	if best == nil {
		return "", false
	}
	return best.Config, true
}

// candidates are the image record names a container points at, normalized the way the CRI
// plugin names records ("nginx" -> "docker.io/library/nginx:latest"), best first.
func candidates(r Ref) []string {
	var out []string
	for _, n := range []string{r.UserName, r.Name} {
		if n == "" {
			continue
		}
		if p := parseName(n); p.isID {
			out = append(out, n)
		} else if p.ok {
			out = append(out, p.tagged)
		}
	}
	return slices.Compact(out)
}

// imageFor builds the policy view. Ref is the first preferred name among the records that
// lead to config, or else the first such record that is a reference at all: the repository
// a policy matches is then always one whose record provably holds this content.
func imageFor(config digest.Digest, digests, names, preferred []string) policy.Image {
	img := policy.Image{ConfigDigest: config.String(), Digests: digests}
	var pick parsed
	for _, p := range preferred {
		if pp := parseName(p); pp.ok && slices.Contains(names, p) {
			pick = pp
			break
		}
	}
	for _, n := range names {
		if pick.ok {
			break
		}
		pick = parseName(n)
	}
	if pick.ok {
		img.Ref, img.Repository = pick.str, pick.repo
	}
	return img
}

// parsed is an image name, parsed as a reference. Records named by image ID
// ("sha256:<hex>", which the CRI plugin creates) are not references: parsed naively they
// would read as the tag of a repository called "sha256".
type parsed struct {
	ok     bool   // a reference
	isID   bool   // an image ID (a digest)
	str    string // normalized: "docker.io/library/nginx:1.25"
	tagged string // normalized, ":latest" added when it has neither tag nor digest
	repo   string // "docker.io/library/nginx"
}

// parsedNames memoizes parseName: reference parsing is most of a warm Resolve's cost,
// and a node sees few distinct names. Bounded; cleared when full.
var parsedNames = struct {
	sync.RWMutex
	m map[string]parsed
}{m: map[string]parsed{}}

func parseName(n string) parsed {
	parsedNames.RLock()
	p, hit := parsedNames.m[n]
	parsedNames.RUnlock()
	if hit {
		return p
	}
	if _, err := digest.Parse(n); err == nil {
		p = parsed{isID: true}
	} else if named, err := reference.ParseNormalizedNamed(n); err == nil {
		p = parsed{ok: true, str: named.String(), tagged: reference.TagNameOnly(named).String(), repo: named.Name()}
		// Policies, exemptions and the evidence cache key on one spelling of the registry
		// ("ghcr.io:0443" is "ghcr.io"). A port out of range stays as written: the policy
		// refuses it rather than treat it as some other repository.
		if repo, err := refname.Repository(p.repo); err == nil {
			p.str, p.repo = repo+strings.TrimPrefix(p.str, p.repo), repo
		}
	}
	parsedNames.Lock()
	if len(parsedNames.m) >= 4096 {
		clear(parsedNames.m)
	}
	parsedNames.m[n] = p
	parsedNames.Unlock()
	return p
}

// List returns every image config in the namespace with the digests that lead to it, for
// pre-verification after a policy reload. It lists containerd's images again unless Watch
// keeps the catalog current (and no record waits for its walk to be retried).
func (c *Client) List(ctx context.Context) ([]policy.Image, error) {
	be, ref, err := c.connect()
	if err != nil {
		return nil, err
	}
	// While Watch keeps the catalog current, a listing of every image would cost a burst of
	// memory (about 8 MB for 1,000 images, held at once) on every policy reload and change
	// nothing.
	if !ref.current() {
		ctx, cancel := c.ctx(ctx)
		defer cancel()
		if _, err := ref.sync(ctx, be.images); err != nil {
			return nil, fmt.Errorf("listing images in containerd namespace %q: %w", c.namespace, err)
		}
	}
	return c.images(ref, ref.cat.configs(), nil), nil
}

// images builds the policy view of each config.
func (c *Client) images(ref *refresher, configs []digest.Digest, preferred []string) []policy.Image {
	out := make([]policy.Image, 0, len(configs))
	for _, cfg := range configs {
		if digests, names, ok := ref.cat.lookup(cfg); ok {
			out = append(out, imageFor(cfg, digests, names, preferred))
		}
	}
	return out
}
