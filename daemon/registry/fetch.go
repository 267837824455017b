package registry

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"tollgate.dev/tollgate/policy/cosign"
)

// Fetch returns all evidence stored for the given subject digests ("sha256:<hex>", the
// digests of an index, of platform manifests, or both) in repo ("registry/path", no tag).
//
// It reads, for each digest, the OCI 1.1 referrers (through the referrers API, and the
// `sha256-<hex>` fallback tag where the registry has no API or its API lists no evidence:
// cosign v3 writes Sigstore bundles there, and ghcr.io's API answers empty), and cosign's
// `sha256-<hex>.att` and `sha256-<hex>.sig` images. Only DSSE envelopes, in-toto links,
// Sigstore bundles (v0.1 to v0.3, GitHub's pushed attestations among them) and cosign
// signatures are downloaded; other referrers (SBOMs) are skipped unopened. A blob stored
// in several places is returned once.
//
// The map is keyed by file name: the blob's org.opencontainers.image.title annotation when
// it is a clean relative path (see SanitizeName), otherwise "sha256-<hex>" plus an extension
// for its media type (.dsse.json, .link, .sigstore.json). A cosign layer whose annotations
// hold its signature or keyless material (every `.sig` layer, keyless `.att` layers) is
// returned with them, as a cosign.Layer file "sha256-<hex>.cosign.json".
//
// No evidence is an empty map and a nil error. A registry or network failure is an error
// naming the registry and repository; exceeding a limit is an error wrapping
// ErrLimitExceeded. Either way no partial result is returned.
func (c *Client) Fetch(ctx context.Context, repo string, digests ...string) (map[string][]byte, error) {
	r, err := c.parseRepository(repo)
	if err != nil {
		return nil, err
	}
	subjects := make([]name.Digest, 0, len(digests))
	seen := map[string]bool{}
	for _, d := range digests {
		if _, err := v1.NewHash(d); err != nil {
			return nil, fmt.Errorf("subject digest %q: %w", d, err)
		}
		if !seen[d] {
			seen[d] = true
			subjects = append(subjects, r.Digest(d))
		}
	}
	p, err := c.puller(ctx)
	if err != nil {
		return nil, c.opError(r, "connect", err)
	}
	f := &fetch{c: c, p: p, repo: r, files: map[string][]byte{}, blobs: map[string]bool{}, manifests: map[string]bool{}}
	for _, s := range subjects {
		if err := f.referrers(ctx, s); err != nil {
			return nil, err
		}
		if err := f.cosignImage(ctx, s, cosignAttSuffix, "attestations"); err != nil {
			return nil, err
		}
		if err := f.cosignImage(ctx, s, cosignSigSuffix, "signatures"); err != nil {
			return nil, err
		}
	}
	return f.files, nil
}

// fetch is the state of one Fetch call: what was read, and what the limits have left.
type fetch struct {
	c         *Client
	p         *remote.Puller
	repo      name.Repository
	files     map[string][]byte
	blobs     map[string]bool // blobs already returned (digest, and signature of a cosign layer)
	manifests map[string]bool // referrer manifests already read
	opened    int             // evidence referrers opened
	total     int64           // bytes returned
}

func (f *fetch) referrers(ctx context.Context, subject name.Digest) error {
	op := "list referrers of " + subject.DigestStr()
	idx, err := remote.Referrers(subject, remote.WithContext(ctx), remote.Reuse(f.p))
	if err != nil {
		return f.c.opError(f.repo, op, err)
	}
	raw, err := idx.RawManifest()
	if err != nil {
		return f.c.opError(f.repo, op, err)
	}
	refs, err := parseReferrers(raw)
	if err != nil {
		return f.c.opError(f.repo, op, err)
	}
	if len(refs) == 0 {
		if refs, err = f.fallbackReferrers(ctx, subject); err != nil {
			return err
		}
	}
	for _, d := range refs {
		if f.manifests[d.Digest] {
			continue
		}
		f.manifests[d.Digest] = true
		if f.opened++; f.opened > f.c.maxArtifacts {
			return f.c.opError(f.repo, op, fmt.Errorf("%w: more than %d evidence referrers (WithMaxArtifacts)", ErrLimitExceeded, f.c.maxArtifacts))
		}
		if err := f.manifest(ctx, f.repo.Digest(d.Digest), "read referrer "+d.Digest); err != nil {
			return err
		}
	}
	return nil
}

// fallbackReferrers reads the referrers tag fallback index of a subject, for registries
// whose referrers API answers but lists nothing (go-containerregistry reads the tag only
// when there is no API). No tag is no referrers.
func (f *fetch) fallbackReferrers(ctx context.Context, subject name.Digest) ([]descriptor, error) {
	tag := f.repo.Tag(strings.Replace(subject.DigestStr(), ":", "-", 1))
	op := "read referrers tag " + tag.TagStr()
	desc, err := f.p.Get(ctx, tag)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, f.c.opError(f.repo, op, err)
	}
	if desc.MediaType != types.OCIImageIndex {
		return nil, f.c.opError(f.repo, op, fmt.Errorf("the tag holds a %s, not an OCI image index", desc.MediaType))
	}
	refs, err := parseReferrers(desc.Manifest)
	if err != nil {
		return nil, f.c.opError(f.repo, op, err)
	}
	return refs, nil
}

// cosignImage reads cosign's attestation (".att") or signature (".sig") image of a
// subject, if there is one.
func (f *fetch) cosignImage(ctx context.Context, subject name.Digest, suffix, what string) error {
	tag := f.repo.Tag(strings.Replace(subject.DigestStr(), ":", "-", 1) + suffix)
	err := f.manifest(ctx, tag, "read cosign "+what+" "+tag.TagStr())
	if isNotFound(err) {
		return nil
	}
	return err
}

// manifest reads one manifest and the evidence layers it lists.
func (f *fetch) manifest(ctx context.Context, ref name.Reference, op string) error {
	desc, err := f.p.Get(ctx, ref)
	if err != nil {
		return f.c.opError(f.repo, op, err)
	}
	m, err := parseManifest(desc.Manifest)
	if err != nil {
		return f.c.opError(f.repo, op, err)
	}
	layers, err := evidenceLayers(m)
	if err != nil {
		return f.c.opError(f.repo, op, err)
	}
	for _, l := range layers {
		if err := f.blob(ctx, l); err != nil {
			return f.c.opError(f.repo, op, err)
		}
	}
	return nil
}

// blob downloads one evidence layer within the limits and files it under its name.
func (f *fetch) blob(ctx context.Context, l descriptor) error {
	// cosign gives every signer of an image a layer with the same payload blob: the
	// signature in the annotation tells them apart.
	key := l.Digest + "\x00" + l.Annotations[cosign.AnnotationSignature]
	if f.blobs[key] {
		return nil
	}
	c := f.c
	switch {
	case len(f.blobs) >= c.maxArtifacts:
		return fmt.Errorf("%w: more than %d evidence files (WithMaxArtifacts)", ErrLimitExceeded, c.maxArtifacts)
	case l.Size > c.maxArtifactBytes:
		return fmt.Errorf("%w: blob %s is %d bytes, over the %d-byte per-artifact limit (WithMaxArtifactBytes)", ErrLimitExceeded, l.Digest, l.Size, c.maxArtifactBytes)
	case f.total+l.Size > c.maxImageEvidenceBytes:
		return fmt.Errorf("%w: evidence over the %d-byte per-image limit (WithMaxImageEvidenceBytes)", ErrLimitExceeded, c.maxImageEvidenceBytes)
	}
	data, err := f.download(ctx, l)
	if err != nil {
		return err
	}
	taken := func(s string) bool { _, ok := f.files[s]; return ok }
	n := fileName(l.Annotations[AnnotationTitle], l.Digest, l.MediaType, taken)
	if ann := cosignLayer(l); ann != nil {
		// The signature or certificate is in the manifest, not the blob: keep them together.
		if data, err = cosign.MarshalLayer(l.MediaType, ann, data); err != nil {
			return fmt.Errorf("cosign layer %s: %w", l.Digest, err)
		}
		n = fileName("", l.Digest, MediaTypeCosignSignature, taken)
	}
	f.blobs[key] = true
	f.total += int64(len(data))
	f.files[n] = data
	return nil
}

// download reads a blob whose size was checked against the limits. The read is bounded
// again, since a registry may send more than the manifest promised, and go-containerregistry
// checks the digest when the body ends.
func (f *fetch) download(ctx context.Context, l descriptor) ([]byte, error) {
	layer, err := f.p.Layer(ctx, f.repo.Digest(l.Digest))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", l.Digest, err)
	}
	rc, err := layer.Compressed()
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", l.Digest, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, l.Size+1))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", l.Digest, err)
	}
	if int64(len(data)) != l.Size {
		return nil, fmt.Errorf("blob %s: %d bytes, manifest says %d", l.Digest, len(data), l.Size)
	}
	return data, nil
}
