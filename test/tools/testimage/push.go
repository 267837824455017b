package testimage

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Pushed is what a push left in the registry.
type Pushed struct {
	Ref        string // the tag reference pushed, e.g. "127.0.0.1:5000/e2e/app:signed"
	Repository string // "127.0.0.1:5000/e2e/app"
	// Digest is the digest the tag points to: the image manifest, or the index for PushIndex.
	Digest string
	// ManifestDigest is the image manifest for the host platform (equals Digest for an image).
	ManifestDigest string
	// ConfigDigest is the host-platform image's config digest, i.e. containerd's image ID.
	ConfigDigest string
	// Manifests maps each platform ("linux/arm64") to its manifest digest.
	Manifests map[string]string
}

// DigestRef is Repository@Digest.
func (p *Pushed) DigestRef() string { return p.Repository + "@" + p.Digest }

// Push builds spec and pushes it to ref (a tag reference). Registries on localhost or
// 127.0.0.1 are spoken to over plain HTTP. opts go to remote.Write (auth, transport).
func (b *Builder) Push(ctx context.Context, ref string, spec Spec, opts ...remote.Option) (*Pushed, error) {
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		return nil, fmt.Errorf("testimage: reference %q: %w", ref, err)
	}
	img, err := b.Build(ctx, spec)
	if err != nil {
		return nil, err
	}
	if err := remote.Write(tag, img, append(opts, remote.WithContext(ctx))...); err != nil {
		return nil, fmt.Errorf("testimage: push %s: %w", ref, err)
	}
	d, cfg, err := digests(img)
	if err != nil {
		return nil, err
	}
	plat := HostPlatform()
	if len(spec.Platforms) > 0 {
		plat = spec.Platforms[0]
	}
	return &Pushed{
		Ref: tag.String(), Repository: tag.Context().String(),
		Digest: d, ManifestDigest: d, ConfigDigest: cfg,
		Manifests: map[string]string{plat.String(): d},
	}, nil
}

// PushIndex builds a multi-platform index for spec (see BuildIndex) and pushes it to ref.
func (b *Builder) PushIndex(ctx context.Context, ref string, spec Spec, opts ...remote.Option) (*Pushed, error) {
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		return nil, fmt.Errorf("testimage: reference %q: %w", ref, err)
	}
	idx, err := b.BuildIndex(ctx, spec)
	if err != nil {
		return nil, err
	}
	if err := remote.WriteIndex(tag, idx, append(opts, remote.WithContext(ctx))...); err != nil {
		return nil, fmt.Errorf("testimage: push index %s: %w", ref, err)
	}
	idxDigest, err := idx.Digest()
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	p := &Pushed{Ref: tag.String(), Repository: tag.Context().String(), Digest: idxDigest.String(), Manifests: map[string]string{}}
	host := HostPlatform()
	for _, desc := range im.Manifests {
		if desc.Platform == nil {
			continue
		}
		p.Manifests[desc.Platform.String()] = desc.Digest.String()
		if desc.Platform.OS == host.OS && desc.Platform.Architecture == host.Architecture && p.ManifestDigest == "" {
			img, err := idx.Image(desc.Digest)
			if err != nil {
				return nil, err
			}
			if _, p.ConfigDigest, err = digests(img); err != nil {
				return nil, err
			}
			p.ManifestDigest = desc.Digest.String()
		}
	}
	return p, nil
}

func digests(img v1.Image) (manifest, config string, err error) {
	d, err := img.Digest()
	if err != nil {
		return "", "", fmt.Errorf("testimage: manifest digest: %w", err)
	}
	c, err := img.ConfigName()
	if err != nil {
		return "", "", fmt.Errorf("testimage: config digest: %w", err)
	}
	return d.String(), c.String(), nil
}
