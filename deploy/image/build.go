package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	// entrypoint and user match the Dockerfile. The default user is distroless' "nonroot":
	// the CLI needs nothing more, and the DaemonSet sets runAsUser 0 explicitly because
	// containerd's and NRI's sockets are root-owned (docs/operations.md).
	entrypoint = "/usr/local/bin/tollgated"
	user       = "65532:65532"
	binDir     = "usr/local/bin"
	// maxBinary bounds what we read into memory per binary.
	maxBinary = 256 << 20
)

// binaries go into binDir, as in the Dockerfile: the node daemon and the CLI.
var binaries = []string{"tollgated", "tollgate"}

type options struct {
	out, binDir, ref  string
	version, revision string
	arch, caCerts     string
	created           time.Time
}

// labels are the OCI annotations the Dockerfile sets too.
func (o options) labels() map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":       "tollgate",
		"org.opencontainers.image.description": "Node-level supply-chain gate for Kubernetes: a containerd NRI plugin that verifies in-toto evidence",
		"org.opencontainers.image.source":      "https://github.com/tollgate-dev/tollgate",
		"org.opencontainers.image.url":         "https://github.com/tollgate-dev/tollgate",
		"org.opencontainers.image.version":     o.version,
		"org.opencontainers.image.created":     o.created.Format(time.RFC3339),
	}
	if o.revision != "" {
		l["org.opencontainers.image.revision"] = o.revision
	}
	return l
}

// file is one entry of the image's single layer.
type file struct {
	name string
	mode int64
	data []byte // nil for a directory
}

// build assembles the image: one layer with the binaries, a passwd/group naming root and
// nonroot, a writable /tmp and (when found) a CA bundle for registry TLS.
func build(o options) (v1.Image, error) {
	files := []file{
		{name: "etc/", mode: 0o755},
		{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{name: "tmp/", mode: 0o1777},
		{name: "usr/", mode: 0o755},
		{name: "usr/local/", mode: 0o755},
		{name: binDir + "/", mode: 0o755},
	}
	for _, b := range binaries {
		data, err := readBounded(filepath.Join(o.binDir, b))
		if err != nil {
			return nil, fmt.Errorf("reading %s (run `make build` first): %w", b, err)
		}
		files = append(files, file{name: binDir + "/" + b, mode: 0o755, data: data})
	}
	if o.caCerts != "" {
		data, err := readBounded(o.caCerts)
		switch {
		case err == nil:
			files = append(files,
				file{name: "etc/ssl/", mode: 0o755}, file{name: "etc/ssl/certs/", mode: 0o755},
				file{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: data})
		case !os.IsNotExist(err):
			return nil, fmt.Errorf("reading CA bundle: %w", err)
		}
	}

	layerTar, err := tarFiles(files, o.created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("building layer: %w", err)
	}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		History:   v1.History{Created: v1.Time{Time: o.created}, CreatedBy: "deploy/image", Comment: "tollgate binaries"},
		MediaType: types.OCILayer,
	})
	if err != nil {
		return nil, fmt.Errorf("adding layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = "linux", o.arch, v1.Time{Time: o.created}
	cf.Config.Entrypoint = []string{entrypoint}
	cf.Config.Cmd = nil
	cf.Config.User = user
	cf.Config.WorkingDir = "/"
	cf.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
	cf.Config.Labels = o.labels()
	cf.Config.ExposedPorts = map[string]struct{}{"9090/tcp": {}}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("setting config: %w", err)
	}
	return mutate.Annotations(img, o.labels()).(v1.Image), nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxBinary+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxBinary {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxBinary)
	}
	return data, nil
}

// tarFiles writes a deterministic tar: fixed order, owner root, one timestamp.
func tarFiles(files []file, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, ModTime: mtime, Format: tar.FormatPAX}
		if f.data == nil {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("tar %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("tar %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeLayout replaces dir with an OCI layout holding img, tagged ref in the index.
func writeLayout(dir, ref string, img v1.Image) (v1.Hash, error) {
	if err := os.RemoveAll(dir); err != nil {
		return v1.Hash{}, err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("creating layout %s: %w", dir, err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": ref,
	})); err != nil {
		return v1.Hash{}, fmt.Errorf("writing image to %s: %w", dir, err)
	}
	return img.Digest()
}
