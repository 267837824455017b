package registry

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Artifact is one piece of evidence to attach.
type Artifact struct {
	// Name is the file name Fetch returns it under (the title annotation): a clean relative
	// path such as "build.abcd1234.link" or "sub.abcd1234/x.link".
	Name string
	// MediaType is MediaTypeDSSE or MediaTypeInTotoLink.
	MediaType string
	Data      []byte
}

// emptyJSON is the OCI 1.1 empty descriptor's content, the config of every artifact.
var emptyJSON = []byte("{}")

// Attach pushes evidence next to the image ref names (a tag is resolved to the digest of its
// index or manifest; name a platform manifest by digest to attach to it instead).
//
// Every artifact becomes an OCI 1.1 referrer: an image manifest with artifactType
// ArtifactTypeInToto, the empty config, one layer carrying the title annotation, and
// subject = the image. go-containerregistry keeps the `sha256-<hex>` fallback index up to
// date where the registry has no referrers API. DSSE envelopes whose payload is an in-toto
// Statement are also appended, as cosign does, to the `sha256-<hex>.att` image.
//
// Attach is idempotent: referrer manifests carry no timestamp, so the same artifact yields
// the same manifest digest, and a layer already in the .att image is not appended again.
// Concurrent Attach calls for one image may lose .att layers (last writer wins), as with
// cosign itself.
func (c *Client) Attach(ctx context.Context, ref string, artifacts []Artifact) error {
	if err := c.checkArtifacts(artifacts); err != nil {
		return err
	}
	r, err := c.parseReference(ref)
	if err != nil {
		return err
	}
	repo := r.Context()
	p, err := c.puller(ctx)
	if err != nil {
		return c.opError(repo, "connect", err)
	}
	pu, err := c.pusher(ctx)
	if err != nil {
		return c.opError(repo, "connect", err)
	}
	desc, err := p.Get(ctx, r)
	if err != nil {
		return c.opError(repo, "resolve "+r.Identifier(), err)
	}
	subject := descriptor{MediaType: string(desc.MediaType), Digest: desc.Digest.String(), Size: desc.Size}
	var statements []attestation
	for _, a := range artifacts {
		if err := pushReferrer(ctx, pu, repo, subject, a); err != nil {
			return c.opError(repo, fmt.Sprintf("attach %s to %s", a.Name, subject.Digest), err)
		}
		if pt := statementPredicateType(a); pt != "" {
			statements = append(statements, attestation{data: a.Data, predicateType: pt})
		}
	}
	if len(statements) == 0 {
		return nil
	}
	tag := repo.Tag(strings.Replace(subject.Digest, ":", "-", 1) + cosignAttSuffix)
	if err := appendAttestations(ctx, p, pu, tag, statements); err != nil {
		return c.opError(repo, "update cosign attestations "+tag.TagStr(), err)
	}
	return nil
}

func (c *Client) checkArtifacts(artifacts []Artifact) error {
	if len(artifacts) > c.maxArtifacts {
		return fmt.Errorf("%w: %d artifacts, over %d (WithMaxArtifacts)", ErrLimitExceeded, len(artifacts), c.maxArtifacts)
	}
	names := map[string]bool{}
	for _, a := range artifacts {
		if _, err := SanitizeName(a.Name); err != nil {
			return fmt.Errorf("attach: %w", err)
		}
		if names[a.Name] {
			return fmt.Errorf("attach: two artifacts named %q", a.Name)
		}
		names[a.Name] = true
		if a.MediaType != MediaTypeDSSE && a.MediaType != MediaTypeInTotoLink {
			return fmt.Errorf("attach %s: media type %q, want %s or %s", a.Name, a.MediaType, MediaTypeDSSE, MediaTypeInTotoLink)
		}
		if n := int64(len(a.Data)); n > c.maxArtifactBytes {
			return fmt.Errorf("attach %s: %w: %d bytes, over the %d-byte per-artifact limit (WithMaxArtifactBytes)", a.Name, ErrLimitExceeded, n, c.maxArtifactBytes)
		}
	}
	return nil
}

// referrerManifest is an OCI 1.1 artifact manifest (an image manifest with artifactType).
type referrerManifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	ArtifactType  string       `json:"artifactType"`
	Config        emptyConfig  `json:"config"`
	Layers        []descriptor `json:"layers"`
	Subject       descriptor   `json:"subject"`
}

type emptyConfig struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	Data      []byte `json:"data"`
}

// rawManifest is a manifest to PUT as is.
type rawManifest struct {
	raw       []byte
	mediaType types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mediaType, nil }
func (m rawManifest) digest() (v1.Hash, int64, error)     { return v1.SHA256(bytes.NewReader(m.raw)) }

func pushReferrer(ctx context.Context, pu *remote.Pusher, repo name.Repository, subject descriptor, a Artifact) error {
	cfg := static.NewLayer(emptyJSON, mediaTypeEmpty)
	blob := static.NewLayer(a.Data, types.MediaType(a.MediaType))
	for _, l := range []v1.Layer{cfg, blob} {
		if err := pu.Upload(ctx, repo, l); err != nil {
			return fmt.Errorf("upload blob: %w", err)
		}
	}
	cfgDigest, _ := cfg.Digest()
	blobDigest, _ := blob.Digest()
	m := referrerManifest{
		SchemaVersion: 2,
		MediaType:     string(types.OCIManifestSchema1),
		ArtifactType:  ArtifactTypeInToto,
		Config:        emptyConfig{MediaType: mediaTypeEmpty, Digest: cfgDigest.String(), Size: int64(len(emptyJSON)), Data: emptyJSON},
		Layers: []descriptor{{
			MediaType:   a.MediaType,
			Digest:      blobDigest.String(),
			Size:        int64(len(a.Data)),
			Annotations: map[string]string{AnnotationTitle: a.Name},
		}},
		Subject: descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size},
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	rm := rawManifest{raw: raw, mediaType: types.OCIManifestSchema1}
	h, _, err := rm.digest()
	if err != nil {
		return err
	}
	// go-containerregistry's Put notices the subject and, where the registry has no
	// referrers API, adds the manifest to the fallback index unless it is there already.
	if err := pu.Put(ctx, repo.Digest(h.String()), rm); err != nil {
		return fmt.Errorf("put referrer manifest %s: %w", h, err)
	}
	return nil
}

// attestation is a DSSE envelope carrying an in-toto Statement.
type attestation struct {
	data          []byte
	predicateType string
}

// statementPredicateType returns the predicateType of a DSSE envelope whose payload is an
// in-toto Statement, or "" for anything else (links, Metablocks, malformed input). It reads
// the envelope only to label it; it checks nothing.
func statementPredicateType(a Artifact) string {
	if a.MediaType != MediaTypeDSSE {
		return ""
	}
	var env struct {
		Payload string `json:"payload"`
	}
	if json.Unmarshal(a.Data, &env) != nil {
		return ""
	}
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		if payload, err = base64.URLEncoding.DecodeString(env.Payload); err != nil {
			return ""
		}
	}
	var st struct {
		Type          string `json:"_type"`
		PredicateType string `json:"predicateType"`
	}
	if json.Unmarshal(payload, &st) != nil || !strings.HasPrefix(st.Type, "https://in-toto.io/Statement/") {
		return ""
	}
	return st.PredicateType
}

// appendAttestations adds the statements missing from cosign's attestation image, building
// the image the way cosign v2 does: OCI manifest and config, one uncompressed layer per
// DSSE envelope with media type MediaTypeDSSE and the annotations
// {"dev.cosignproject.cosign/signature": "", "predicateType": <uri>}.
func appendAttestations(ctx context.Context, p *remote.Puller, pu *remote.Pusher, tag name.Tag, atts []attestation) error {
	base, err := existingAttestations(ctx, p, tag)
	if err != nil {
		return err
	}
	layers, err := base.Layers()
	if err != nil {
		return err
	}
	if len(layers)+len(atts) > maxAttLayers {
		return fmt.Errorf("%w: %d layers, over cosign's %d", ErrLimitExceeded, len(layers)+len(atts), maxAttLayers)
	}
	have := map[v1.Hash]bool{}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		have[d] = true
	}
	var adds []mutate.Addendum
	for _, a := range atts {
		l := static.NewLayer(a.data, MediaTypeDSSE)
		d, _ := l.Digest()
		if have[d] {
			continue
		}
		have[d] = true
		adds = append(adds, mutate.Addendum{Layer: l, Annotations: map[string]string{
			annotationCosignSignature: "",
			annotationPredicateType:   a.predicateType,
		}})
	}
	if len(adds) == 0 {
		return nil
	}
	img, err := mutate.Append(base, adds...)
	if err != nil {
		return err
	}
	return pu.Push(ctx, tag, img)
}

// existingAttestations returns the current .att image, or cosign's empty starting point.
func existingAttestations(ctx context.Context, p *remote.Puller, tag name.Tag) (v1.Image, error) {
	desc, err := p.Get(ctx, tag)
	if isNotFound(err) {
		return mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON), nil
	}
	if err != nil {
		return nil, err
	}
	if !desc.MediaType.IsImage() {
		return nil, fmt.Errorf("%s is a %s, not an image", tag, desc.MediaType)
	}
	if m, err := parseManifest(desc.Manifest); err != nil {
		return nil, err
	} else if len(m.Layers) > maxAttLayers {
		return nil, fmt.Errorf("%w: %d layers, over cosign's %d", ErrLimitExceeded, len(m.Layers), maxAttLayers)
	}
	return desc.Image()
}
