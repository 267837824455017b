package main

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

func standIns(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, b := range binaries {
		if err := os.WriteFile(filepath.Join(dir, b), []byte("stand-in "+b), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func testOptions(t *testing.T) options {
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return options{
		out: filepath.Join(t.TempDir(), "image"), binDir: standIns(t), ref: "example.test/tollgate:v9",
		version: "v9", revision: "abc123", arch: "arm64", caCerts: ca, created: time.Unix(1700000000, 0).UTC(),
	}
}

// TestBuildLayout builds the image from stand-in binaries, reads the OCI layout back, and
// checks what a node and a registry see: config, labels, files and their modes.
func TestBuildLayout(t *testing.T) {
	o := testOptions(t)
	img, err := build(o)
	if err != nil {
		t.Fatal(err)
	}
	digest, err := writeLayout(o.out, o.ref, img)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := layout.ImageIndexFromPath(o.out)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Digest != digest ||
		im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != o.ref {
		t.Fatalf("index %+v: want one manifest %s named %s", im.Manifests, digest, o.ref)
	}
	got, err := idx.Image(digest)
	if err != nil {
		t.Fatal(err)
	}
	// The layer blob on disk must hash to the digest the manifest names.
	layers, err := got.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %v, %d", err, len(layers))
	}
	want, _ := layers[0].Digest()
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	have, _, err := v1.SHA256(rc)
	rc.Close()
	if err != nil || have != want {
		t.Fatalf("layer blob hashes to %s, manifest says %s (%v)", have, want, err)
	}
	mt, _ := got.MediaType()
	if mt != "application/vnd.oci.image.manifest.v1+json" {
		t.Errorf("manifest media type %s", mt)
	}

	cf, err := got.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cf.Config.Entrypoint, []string{"/usr/local/bin/tollgated"}) || len(cf.Config.Cmd) != 0 {
		t.Errorf("entrypoint %v cmd %v", cf.Config.Entrypoint, cf.Config.Cmd)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("user %q", cf.Config.User)
	}
	if cf.OS != "linux" || cf.Architecture != "arm64" || !cf.Created.Time.Equal(o.created) {
		t.Errorf("platform %s/%s created %v", cf.OS, cf.Architecture, cf.Created)
	}
	for k, v := range map[string]string{
		"org.opencontainers.image.title": "tollgate", "org.opencontainers.image.version": "v9",
		"org.opencontainers.image.revision": "abc123", "org.opencontainers.image.source": "https://github.com/tollgate-dev/tollgate",
		"org.opencontainers.image.created": "2023-11-14T22:13:20Z",
	} {
		if cf.Config.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, cf.Config.Labels[k], v)
		}
	}

	files := layerFiles(t, got)
	wantFiles := map[string]int64{
		"usr/local/bin/tollgated": 0o755, "usr/local/bin/tollgate": 0o755,
		"etc/passwd": 0o644, "etc/group": 0o644, "tmp/": 0o1777,
		"etc/ssl/certs/ca-certificates.crt": 0o644,
	}
	for name, mode := range wantFiles {
		h, ok := files[name]
		if !ok {
			t.Errorf("%s missing from the layer", name)
			continue
		}
		if h.Mode != mode || h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(o.created) {
			t.Errorf("%s: mode %o uid %d gid %d mtime %v", name, h.Mode, h.Uid, h.Gid, h.ModTime)
		}
	}
}

// layerFiles reads every tar header of the image's layers.
func layerFiles(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*tar.Header{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			out[h.Name] = h
		}
		rc.Close()
	}
	return out
}

// TestBuildReproducible: the same inputs give the same digest.
func TestBuildReproducible(t *testing.T) {
	o := testOptions(t)
	a, err := build(o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := build(o)
	if err != nil {
		t.Fatal(err)
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Errorf("two builds from the same inputs: %s and %s", da, db)
	}
}

// TestBuildFailures: a missing binary or an unreadable CA bundle stops the build; an
// absent CA bundle does not (the image then relies on --insecure-registry or none).
func TestBuildFailures(t *testing.T) {
	o := testOptions(t)
	o.binDir = t.TempDir()
	if _, err := build(o); err == nil {
		t.Error("built an image without binaries")
	}
	// An image without its CLI is incomplete: the build names what is missing.
	o = testOptions(t)
	if err := os.Remove(filepath.Join(o.binDir, "tollgate")); err != nil {
		t.Fatal(err)
	}
	if _, err := build(o); err == nil || !strings.Contains(err.Error(), "tollgate") {
		t.Errorf("built an image without tollgate: %v", err)
	}
	o = testOptions(t)
	o.caCerts = t.TempDir() // a directory: exists, cannot be read as a file
	if _, err := build(o); err == nil {
		t.Error("built an image with an unreadable CA bundle")
	}
	o = testOptions(t)
	o.caCerts = filepath.Join(t.TempDir(), "absent.crt")
	img, err := build(o)
	if err != nil {
		t.Fatalf("absent CA bundle: %v", err)
	}
	if _, ok := layerFiles(t, img)["etc/ssl/certs/ca-certificates.crt"]; ok {
		t.Error("CA bundle present although none was given")
	}
}

// TestDockerfileInStep: the Dockerfile builds and copies the same binaries as this builder.
func TestDockerfileInStep(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var build, copied []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && f[0] == "-o":
			build = f
		case len(f) > 1 && f[0] == "COPY" && f[1] == "--from=build":
			copied = f
		}
	}
	for _, bin := range binaries {
		if !slices.Contains(build, "./cmd/"+bin) {
			t.Errorf("Dockerfile does not build ./cmd/%s: %q", bin, build)
		}
		if !slices.Contains(copied, "/out/"+bin) {
			t.Errorf("Dockerfile does not copy /out/%s: %q", bin, copied)
		}
	}
}
