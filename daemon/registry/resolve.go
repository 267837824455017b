package registry

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"tollgate.dev/tollgate/policy/refname"
)

// Resolved is what a registry says a reference points to. The node daemon never binds a
// decision to it (it reads containerd's content store); the CLI's `verify --image` does.
type Resolved struct {
	// Ref is the normalized reference that was resolved.
	Ref string
	// Repository is the reference's repository ("registry/path"), the argument Fetch takes.
	Repository string
	// Digest is the digest of the manifest or index the reference names.
	Digest string
	// MediaType is that manifest's media type.
	MediaType string
	// ConfigDigest is the config digest of an image manifest; empty for an index.
	ConfigDigest string
	// Manifests are the entries of an index, in index order; empty for a manifest.
	Manifests []PlatformManifest
}

// PlatformManifest is one entry of an image index.
type PlatformManifest struct {
	Digest       string
	MediaType    string
	OS           string
	Architecture string
	Variant      string
	// ConfigDigest is set for image manifests; nested indexes have none.
	ConfigDigest string
}

// IsIndex reports whether the reference names an image index (or Docker manifest list).
func (r *Resolved) IsIndex() bool { return types.MediaType(r.MediaType).IsIndex() }

// BoundDigests returns the manifest and index digests that are bound to configDigest: the
// manifest itself when its config is configDigest, or, for an index, the index and every
// platform manifest whose config is configDigest. Evidence naming any of them is about that
// image; nil means the config is not part of what the reference names.
func (r *Resolved) BoundDigests(configDigest string) []string {
	if !r.IsIndex() {
		if r.ConfigDigest == configDigest {
			return []string{r.Digest}
		}
		return nil
	}
	var out []string
	for _, m := range r.Manifests {
		if m.ConfigDigest != "" && m.ConfigDigest == configDigest {
			out = append(out, m.Digest)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return append([]string{r.Digest}, out...)
}

// Resolve asks the registry what ref names: the digest and media type of the manifest or
// index, and the config digests of the manifest or of each platform manifest of the index.
func (c *Client) Resolve(ctx context.Context, ref string) (*Resolved, error) {
	r, err := c.parseReference(ref)
	if err != nil {
		return nil, err
	}
	repo := r.Context()
	p, err := c.puller(ctx)
	if err != nil {
		return nil, c.opError(repo, "resolve "+r.Identifier(), err)
	}
	desc, err := p.Get(ctx, r)
	if err != nil {
		return nil, c.opError(repo, "resolve "+r.Identifier(), err)
	}
	canonRepo, _ := refname.Repository(repo.Name()) // parseReference made it canonical but for Docker Hub's name
	res := &Resolved{
		Ref:        canonRepo + strings.TrimPrefix(r.Name(), repo.Name()),
		Repository: canonRepo,
		Digest:     desc.Digest.String(),
		MediaType:  string(desc.MediaType),
	}
	m, err := parseManifest(desc.Manifest)
	if err != nil {
		return nil, c.opError(repo, "resolve "+r.Identifier(), err)
	}
	switch {
	case desc.MediaType.IsImage():
		if m.Config == nil {
			return nil, c.opError(repo, "resolve "+r.Identifier(), fmt.Errorf("manifest %s has no config", res.Digest))
		}
		res.ConfigDigest = m.Config.Digest
	case desc.MediaType.IsIndex():
		if res.Manifests, err = c.platforms(ctx, p, repo, m); err != nil {
			return nil, c.opError(repo, "resolve "+r.Identifier(), err)
		}
	default:
		return nil, c.opError(repo, "resolve "+r.Identifier(), fmt.Errorf("unsupported media type %q", desc.MediaType))
	}
	return res, nil
}

// platforms reads the config digest of every image manifest of an index.
func (c *Client) platforms(ctx context.Context, p *remote.Puller, repo name.Repository, idx *manifest) ([]PlatformManifest, error) {
	if len(idx.Manifests) > maxPlatforms {
		return nil, fmt.Errorf("%w: index has %d manifests, over %d", ErrLimitExceeded, len(idx.Manifests), maxPlatforms)
	}
	out := make([]PlatformManifest, 0, len(idx.Manifests))
	for _, d := range idx.Manifests {
		if err := d.check(); err != nil {
			return nil, err
		}
		pm := PlatformManifest{Digest: d.Digest, MediaType: d.MediaType}
		if plat := d.Platform; plat != nil {
			pm.OS, pm.Architecture, pm.Variant = plat.OS, plat.Architecture, plat.Variant
		}
		if types.MediaType(d.MediaType).IsImage() {
			child, err := p.Get(ctx, repo.Digest(d.Digest))
			if err != nil {
				return nil, fmt.Errorf("platform manifest %s: %w", d.Digest, err)
			}
			cm, err := parseManifest(child.Manifest)
			if err != nil {
				return nil, fmt.Errorf("platform manifest %s: %w", d.Digest, err)
			}
			if cm.Config == nil {
				return nil, fmt.Errorf("platform manifest %s has no config", d.Digest)
			}
			pm.ConfigDigest = cm.Config.Digest
		}
		out = append(out, pm)
	}
	return out, nil
}
