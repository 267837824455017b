// Package testimage builds tiny single-binary container images for Tollgate's tests without
// Docker, and pushes them to a registry with go-containerregistry.
//
// Two programs are available, both static Go binaries compiled on demand from the sources
// under programs/ (embedded here, so the builder works from any directory):
//
//   - Pause: the pod sandbox process; blocks until SIGTERM/SIGINT.
//   - Sleeper: a workload; prints one line and sleeps until signalled.
//
// An image is the binary at "/<program>" as entrypoint plus empty /etc, /tmp, /proc, /dev
// and /sys directories. Spec.Variant is written into a label and an environment variable,
// so two variants of one program have different config and manifest digests while sharing
// the layer: exactly what "signed vs unsigned" or "re-tag" scenarios need.
package testimage

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Program names a binary the builder can put into an image.
type Program string

const (
	Pause   Program = "pause"
	Sleeper Program = "sleeper"
)

// VariantLabel and VariantEnv carry Spec.Variant in the image config.
const (
	VariantLabel = "dev.tollgate.test.variant"
	VariantEnv   = "TOLLGATE_VARIANT"
)

//go:embed programs/pause/main.go
var pauseSrc []byte

//go:embed programs/sleeper/main.go
var sleeperSrc []byte

var sources = map[Program][]byte{Pause: pauseSrc, Sleeper: sleeperSrc}

// epoch fixes every timestamp, so a Spec always yields the same digests.
var epoch = time.Unix(0, 0).UTC()

// Spec describes one image.
type Spec struct {
	Program Program           // required: Pause or Sleeper
	Variant string            // free text; different variants give different digests
	Labels  map[string]string // extra config labels
	Env     []string          // extra environment ("K=V")
	Cmd     []string          // arguments after the entrypoint (Sleeper: a duration)
	// Platforms lists the platforms of an index; empty means the host's linux platform.
	// Only BuildIndex and PushIndex use more than the first.
	Platforms []v1.Platform
}

// Builder compiles the programs once per GOARCH into its work directory and assembles
// images from them. It is safe for concurrent use, also by several processes sharing one
// directory: binaries are named by a hash of their source and the Go version and appear
// there by atomic rename, so a directory under a cache (e.g. .cache/) is reused across runs.
type Builder struct {
	dir string
	mu  sync.Mutex
}

// NewBuilder returns a Builder that keeps sources and binaries under dir (created if
// missing).
func NewBuilder(dir string) *Builder {
	return &Builder{dir: dir}
}

// HostPlatform is linux on the architecture of the running test binary.
func HostPlatform() v1.Platform { return v1.Platform{OS: "linux", Architecture: runtime.GOARCH} }

// Binary compiles program p for linux/goarch (unless already built) and returns its path.
func (b *Builder) Binary(ctx context.Context, p Program, goarch string) (string, error) {
	src, ok := sources[p]
	if !ok {
		return "", fmt.Errorf("testimage: unknown program %q", p)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	sum := sha256.Sum256(append([]byte(runtime.Version()+"\n"), src...))
	out := filepath.Join(b.dir, "bin", fmt.Sprintf("%s-linux-%s-%x", p, goarch, sum[:6]))
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(b.dir, "src-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	mod := fmt.Sprintf("module tollgate.test/%s\n\ngo 1.22\n", p)
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), src, 0o644); err != nil {
		return "", err
	}
	tmp := filepath.Join(dir, "out")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", tmp, ".")
	cmd.Dir = dir
	// A standalone module: no workspace, no VCS stamping, static, for the target arch.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOWORK=off", "GOFLAGS=-buildvcs=false")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("testimage: compile %s for %s: %w\n%s", p, goarch, err, msg)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	return out, nil
}

// Build assembles the image for spec on its first platform (default: HostPlatform).
func (b *Builder) Build(ctx context.Context, spec Spec) (v1.Image, error) {
	plat := HostPlatform()
	if len(spec.Platforms) > 0 {
		plat = spec.Platforms[0]
	}
	return b.build(ctx, spec, plat)
}

// BuildIndex assembles an OCI image index with one image per spec.Platforms entry (default:
// the host platform plus linux/arm64, or linux/amd64 on an arm64 host).
func (b *Builder) BuildIndex(ctx context.Context, spec Spec) (v1.ImageIndex, error) {
	plats := spec.Platforms
	if len(plats) == 0 {
		other := "arm64"
		if runtime.GOARCH == "arm64" {
			other = "amd64"
		}
		plats = []v1.Platform{HostPlatform(), {OS: "linux", Architecture: other}}
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range plats {
		img, err := b.build(ctx, spec, p)
		if err != nil {
			return nil, err
		}
		p := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{MediaType: types.OCIManifestSchema1, Platform: &p},
		})
	}
	return idx, nil
}

func (b *Builder) build(ctx context.Context, spec Spec, plat v1.Platform) (v1.Image, error) {
	if spec.Program == "" {
		return nil, fmt.Errorf("testimage: Spec.Program is empty")
	}
	binPath, err := b.Binary(ctx, spec.Program, plat.Architecture)
	if err != nil {
		return nil, err
	}
	layerTar, err := rootfsTar(binPath, "/"+string(spec.Program))
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("testimage: layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: epoch}, CreatedBy: "testimage " + string(spec.Program),
	}})
	if err != nil {
		return nil, fmt.Errorf("testimage: append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = plat.OS, plat.Architecture, plat.Variant
	cf.Created = v1.Time{Time: epoch}
	labels := map[string]string{VariantLabel: spec.Variant}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	cf.Config = v1.Config{
		Entrypoint: []string{"/" + string(spec.Program)},
		Cmd:        spec.Cmd,
		Env:        append([]string{"PATH=/", VariantEnv + "=" + spec.Variant}, spec.Env...),
		Labels:     labels,
		WorkingDir: "/",
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("testimage: config: %w", err)
	}
	return img, nil
}

// rootfsTar returns an uncompressed tar with the directories a container runtime expects
// and the binary at dest.
func rootfsTar(binPath, dest string) ([]byte, error) {
	data, err := os.ReadFile(binPath)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"dev/", "etc/", "proc/", "sys/", "tmp/"} {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: mode, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: dest[1:], Mode: 0o755, Size: int64(len(data)), ModTime: epoch}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
