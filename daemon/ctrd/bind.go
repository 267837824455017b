package ctrd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Limits bound what ctrd reads from containerd's content store for one image.
type Limits struct {
	MaxBlobBytes int64 // a manifest or an index (default 4 MiB, the registries' common cap)
	MaxChildren  int   // manifests listed in one index (default 1024)
	MaxDepth     int   // indexes nested in indexes (default 2)
	MaxNodes     int   // parsed manifests and indexes kept in memory (default 65536)
}

// DefaultLimits are the limits New applies unless told otherwise.
var DefaultLimits = Limits{MaxBlobBytes: 4 << 20, MaxChildren: 1024, MaxDepth: 2, MaxNodes: 1 << 16}

// ErrTooLarge reports a manifest or index beyond Limits.MaxBlobBytes.
var ErrTooLarge = errors.New("exceeds the size limit")

// binding records that a manifest (Chain[0]) names Config as its image config, reached from
// the image record's target through the indexes Chain[1:] (innermost first).
type binding struct {
	Config   digest.Digest
	Chain    []digest.Digest
	Platform *ocispec.Platform // from the innermost index; nil for a plain manifest
}

// node is what one manifest or index says, parsed. Both facts are immutable: the blob is
// addressed by its digest, and the bytes were checked against that digest when read.
type node struct {
	config   digest.Digest        // a manifest's config
	children []ocispec.Descriptor // an index's manifests
	isIndex  bool
}

// binder walks image targets through a content store, caching parsed nodes. Missing
// children (platforms containerd did not pull) are skipped and never cached, so they are
// looked at again on the next walk.
type binder struct {
	provider content.Provider
	lim      Limits

	mu    sync.RWMutex
	nodes map[digest.Digest]node
}

func newBinder(p content.Provider, lim Limits) *binder {
	return &binder{provider: p, lim: lim, nodes: make(map[digest.Digest]node)}
}

// walk returns every manifest reachable from target whose content is present, with the
// config it names. partial is true when some child was absent from the store.
func (b *binder) walk(ctx context.Context, target ocispec.Descriptor) (binds []binding, partial bool, err error) {
	if !images.IsIndexType(target.MediaType) && !images.IsManifestType(target.MediaType) {
		return nil, false, fmt.Errorf("image target %s has unsupported media type %q", target.Digest, target.MediaType)
	}
	err = b.walkInto(ctx, target, nil, 0, &binds, &partial)
	return binds, partial, err
}

func (b *binder) walkInto(ctx context.Context, desc ocispec.Descriptor, outer []digest.Digest, depth int, out *[]binding, partial *bool) error {
	n, err := b.node(ctx, desc)
	if err != nil {
		return err
	}
	chain := append([]digest.Digest{desc.Digest}, outer...)
	if !n.isIndex {
		*out = append(*out, binding{Config: n.config, Chain: chain})
		return nil
	}
	if depth >= b.lim.MaxDepth {
		return fmt.Errorf("index %s: indexes nested deeper than %d", desc.Digest, b.lim.MaxDepth)
	}
	for _, child := range n.children {
		if !images.IsIndexType(child.MediaType) && !images.IsManifestType(child.MediaType) {
			continue // artifacts and unknown entries lead to no image config
		}
		before := len(*out)
		err := b.walkInto(ctx, child, chain, depth+1, out, partial)
		if errdefs.IsNotFound(err) {
			*partial = true // a platform containerd did not pull
			continue
		}
		if err != nil {
			return fmt.Errorf("index %s: %w", desc.Digest, err)
		}
		if child.Platform != nil && images.IsManifestType(child.MediaType) {
			for i := before; i < len(*out); i++ {
				(*out)[i].Platform = child.Platform
			}
		}
	}
	return nil
}

// node returns the parsed manifest or index for desc, reading it at most once.
func (b *binder) node(ctx context.Context, desc ocispec.Descriptor) (node, error) {
	b.mu.RLock()
	n, ok := b.nodes[desc.Digest]
	b.mu.RUnlock()
	if ok {
		if n.isIndex != images.IsIndexType(desc.MediaType) {
			return node{}, fmt.Errorf("blob %s is referenced with media type %q but is not one", desc.Digest, desc.MediaType)
		}
		return n, nil
	}
	data, err := readBlob(ctx, b.provider, desc, b.lim.MaxBlobBytes)
	if err != nil {
		return node{}, err
	}
	if n, err = parseNode(desc, data, b.lim); err != nil {
		return node{}, err
	}
	b.mu.Lock()
	if len(b.nodes) >= b.lim.MaxNodes {
		clear(b.nodes) // rare; everything is re-readable from the store
	}
	b.nodes[desc.Digest] = n
	b.mu.Unlock()
	return n, nil
}

// parseNode parses a manifest or an index, as its descriptor's media type says it is. A
// blob whose own mediaType disagrees is rejected: one set of bytes must not be readable as
// both (the confusion behind CVE-2021-41190).
func parseNode(desc ocispec.Descriptor, data []byte, lim Limits) (node, error) {
	var probe struct {
		MediaType string            `json:"mediaType"`
		Config    *json.RawMessage  `json:"config"`
		Manifests []json.RawMessage `json:"manifests"`
		Layers    *json.RawMessage  `json:"layers"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return node{}, fmt.Errorf("blob %s: malformed JSON: %w", desc.Digest, err)
	}
	if probe.MediaType != "" && probe.MediaType != desc.MediaType {
		return node{}, fmt.Errorf("blob %s: declares media type %q, referenced as %q", desc.Digest, probe.MediaType, desc.MediaType)
	}
	if images.IsIndexType(desc.MediaType) {
		if probe.Config != nil || probe.Layers != nil {
			return node{}, fmt.Errorf("index %s: has a config or layers, as a manifest would", desc.Digest)
		}
		if len(probe.Manifests) > lim.MaxChildren {
			return node{}, fmt.Errorf("index %s: %d manifests, more than the limit of %d", desc.Digest, len(probe.Manifests), lim.MaxChildren)
		}
		var idx ocispec.Index
		if err := json.Unmarshal(data, &idx); err != nil {
			return node{}, fmt.Errorf("index %s: %w", desc.Digest, err)
		}
		for _, c := range idx.Manifests {
			if err := c.Digest.Validate(); err != nil {
				return node{}, fmt.Errorf("index %s: child digest %q: %w", desc.Digest, c.Digest, err)
			}
		}
		return node{isIndex: true, children: idx.Manifests}, nil
	}
	if probe.Manifests != nil {
		return node{}, fmt.Errorf("manifest %s: lists manifests, as an index would", desc.Digest)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return node{}, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	if err := m.Config.Digest.Validate(); err != nil {
		return node{}, fmt.Errorf("manifest %s: config digest %q: %w", desc.Digest, m.Config.Digest, err)
	}
	return node{config: m.Config.Digest}, nil
}

// readBlob reads one blob whole, refusing it beyond max bytes and checking its digest:
// the binding of a manifest to a config is only as good as the bytes it was read from.
func readBlob(ctx context.Context, p content.Provider, desc ocispec.Descriptor, max int64) ([]byte, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("descriptor digest %q: %w", desc.Digest, err)
	}
	if desc.Size < 0 || desc.Size > max {
		return nil, fmt.Errorf("blob %s: %d bytes %w of %d bytes", desc.Digest, desc.Size, ErrTooLarge, max)
	}
	ra, err := p.ReaderAt(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	defer ra.Close()
	if size := ra.Size(); size != desc.Size {
		if size > max {
			return nil, fmt.Errorf("blob %s: %d bytes in the store %w of %d bytes", desc.Digest, size, ErrTooLarge, max)
		}
		return nil, fmt.Errorf("blob %s: %d bytes in the store, descriptor says %d", desc.Digest, size, desc.Size)
	}
	data := make([]byte, desc.Size)
	if _, err := io.ReadFull(io.NewSectionReader(ra, 0, desc.Size), data); err != nil {
		return nil, fmt.Errorf("blob %s: reading: %w", desc.Digest, err)
	}
	if got := desc.Digest.Algorithm().FromBytes(data); got != desc.Digest {
		return nil, fmt.Errorf("blob %s: content hashes to %s", desc.Digest, got)
	}
	return data, nil
}
