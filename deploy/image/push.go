package main

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// push writes img to ref and returns the pushed image as a digest reference
// (REPOSITORY@sha256:...), the form later pipeline steps should name it by: a tag can move,
// the digest cannot. insecure speaks plain HTTP to the registry (go-containerregistry does
// so for loopback hosts anyway); credentials come from the Docker config, as `docker login`
// and `crane auth login` leave them.
func push(ctx context.Context, ref string, img v1.Image, insecure bool, opts ...remote.Option) (name.Digest, error) {
	var nopts []name.Option
	if insecure {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("-push %q is not an image reference: %w", ref, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	if d, ok := r.(name.Digest); ok && d.DigestStr() != digest.String() {
		return name.Digest{}, fmt.Errorf("-push %s names digest %s, but the image built is %s", ref, d.DigestStr(), digest)
	}
	opts = append([]remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithUserAgent("tollgate-deploy-image"),
	}, opts...)
	if err := remote.Write(r, img, opts...); err != nil {
		return name.Digest{}, fmt.Errorf("pushing %s: %w", ref, err)
	}
	return r.Context().Digest(digest.String()), nil
}
