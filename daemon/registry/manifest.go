package registry

import (
	"encoding/json"
	"fmt"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// descriptor is the part of an OCI descriptor this package reads.
type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Platform     *platform         `json:"platform,omitempty"`
}

type platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

func (d descriptor) check() error {
	if _, err := v1.NewHash(d.Digest); err != nil {
		return fmt.Errorf("descriptor digest %q: %w", d.Digest, err)
	}
	if d.Size < 0 {
		return fmt.Errorf("descriptor %s: negative size %d", d.Digest, d.Size)
	}
	return nil
}

// manifest is the part of an image manifest, artifact manifest or index this package reads.
type manifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        *descriptor       `json:"config,omitempty"`
	Layers        []descriptor      `json:"layers,omitempty"`
	Manifests     []descriptor      `json:"manifests,omitempty"`
	Subject       *descriptor       `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

func parseManifest(raw []byte) (*manifest, error) {
	if len(raw) > maxManifestBytes {
		return nil, fmt.Errorf("%w: manifest of %d bytes, over %d", ErrLimitExceeded, len(raw), maxManifestBytes)
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("malformed manifest: %w", err)
	}
	if m.SchemaVersion != 2 {
		return nil, fmt.Errorf("malformed manifest: schemaVersion %d, want 2", m.SchemaVersion)
	}
	return &m, nil
}

// parseReferrers reads a referrers index (from the referrers API or the fallback tag) and
// returns the referrers that may hold evidence, sorted by digest so results do not depend
// on the registry's order. Referrers of other artifact types (SBOMs, signatures) are left
// out before anything is downloaded; malformed entries are an error, since a registry that
// sends them cannot be trusted to have sent the rest.
func parseReferrers(raw []byte) ([]descriptor, error) {
	m, err := parseManifest(raw)
	if err != nil {
		return nil, fmt.Errorf("referrers index: %w", err)
	}
	var out []descriptor
	for _, d := range m.Manifests {
		if err := d.check(); err != nil {
			return nil, fmt.Errorf("referrers index: %w", err)
		}
		if evidenceArtifact(d.ArtifactType) {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	return out, nil
}

// evidenceLayers returns the layers of a manifest that hold evidence, in manifest order.
func evidenceLayers(m *manifest) ([]descriptor, error) {
	var out []descriptor
	for _, l := range m.Layers {
		if !evidenceLayer(l.MediaType) {
			continue
		}
		if err := l.check(); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}
