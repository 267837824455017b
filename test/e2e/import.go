//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"runtime"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Imported is an image written straight into containerd's content and image stores.
type Imported struct {
	Name           string // the image record's name, e.g. "127.0.0.1:5000/bench/many-7:1"
	ManifestDigest string
	ConfigDigest   string
}

// ImportImages writes one small image per name into containerd's stores in the CRI
// namespace, as a pull would leave its metadata: a manifest, a config of its own (so every
// image has its own ID) and one shared empty layer, with the content labels that keep
// containerd's garbage collector off them. The layers are not unpacked, so no container
// can be created from these images; they are what a node with many images has in its
// stores, for what reads them (listings, image identity, pre-verification). A thousand
// take a few seconds, where a thousand pulls take minutes.
func (e *Env) ImportImages(ctx context.Context, names []string) ([]Imported, error) {
	c, err := containerd.New(e.Socket, containerd.WithDefaultNamespace(CRINamespace))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctx = namespaces.WithNamespace(ctx, CRINamespace)
	ctx, done, err := c.WithLease(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = done(context.WithoutCancel(ctx)) }()
	layer, diffID, err := emptyLayer()
	if err != nil {
		return nil, err
	}
	cs := c.ContentStore()
	layerDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(layer), Size: int64(len(layer))}
	if err := writeBlob(ctx, cs, layerDesc, layer, nil); err != nil {
		return nil, err
	}
	out := make([]Imported, 0, len(names))
	for i, name := range names {
		img, err := importOne(ctx, c, layerDesc, diffID, name, i)
		if err != nil {
			return out, fmt.Errorf("import %s: %w", name, err)
		}
		out = append(out, img)
	}
	return out, nil
}

// importOne writes image number i: its config, its manifest and its image record.
func importOne(ctx context.Context, c *containerd.Client, layer ocispec.Descriptor, diffID digest.Digest, name string, i int) (Imported, error) {
	cfg, err := json.Marshal(ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config:   ocispec.ImageConfig{Labels: map[string]string{"dev.tollgate.test.import": fmt.Sprint(i)}},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
	})
	if err != nil {
		return Imported{}, err
	}
	cfgDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfgDesc, Layers: []ocispec.Descriptor{layer}}
	m.SchemaVersion = 2
	man, err := json.Marshal(m)
	if err != nil {
		return Imported{}, err
	}
	manDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(man), Size: int64(len(man))}
	cs := c.ContentStore()
	if err := writeBlob(ctx, cs, cfgDesc, cfg, nil); err != nil {
		return Imported{}, err
	}
	// The labels are the references containerd's garbage collector follows from a manifest.
	refs := map[string]string{
		"containerd.io/gc.ref.content.config": cfgDesc.Digest.String(),
		"containerd.io/gc.ref.content.l.0":    layer.Digest.String(),
	}
	if err := writeBlob(ctx, cs, manDesc, man, refs); err != nil {
		return Imported{}, err
	}
	_, err = c.ImageService().Create(ctx, images.Image{Name: name, Target: manDesc})
	if errdefs.IsAlreadyExists(err) {
		_, err = c.ImageService().Update(ctx, images.Image{Name: name, Target: manDesc})
	}
	if err != nil {
		return Imported{}, err
	}
	return Imported{Name: name, ManifestDigest: manDesc.Digest.String(), ConfigDigest: cfgDesc.Digest.String()}, nil
}

func writeBlob(ctx context.Context, cs content.Store, desc ocispec.Descriptor, data []byte, labels map[string]string) error {
	var opts []content.Opt
	if labels != nil {
		opts = append(opts, content.WithLabels(labels))
	}
	return content.WriteBlob(ctx, cs, "import-"+desc.Digest.String(), bytes.NewReader(data), desc, opts...)
}

// emptyLayer is a gzipped tar with one directory, and its diff ID.
func emptyLayer() ([]byte, digest.Digest, error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	if err := tw.WriteHeader(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
		return nil, "", err
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return gz.Bytes(), digest.FromBytes(raw.Bytes()), nil
}
