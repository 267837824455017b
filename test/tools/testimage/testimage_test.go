package testimage

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestPushVariants(t *testing.T) {
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	b := NewBuilder(t.TempDir())
	ctx := context.Background()

	a, err := b.Push(ctx, host+"/e2e/app:a", Spec{Program: Sleeper, Variant: "a"})
	if err != nil {
		t.Fatal(err)
	}
	a2, err := b.Push(ctx, host+"/e2e/app:a2", Spec{Program: Sleeper, Variant: "a"})
	if err != nil {
		t.Fatal(err)
	}
	bb, err := b.Push(ctx, host+"/e2e/app:b", Spec{Program: Sleeper, Variant: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Digest != a2.Digest || a.ConfigDigest != a2.ConfigDigest {
		t.Errorf("same spec, different digests: %s vs %s", a.Digest, a2.Digest)
	}
	if a.Digest == bb.Digest || a.ConfigDigest == bb.ConfigDigest {
		t.Errorf("variants share digest %s", a.Digest)
	}

	ref, _ := name.ParseReference(a.DigestRef(), name.Insecure)
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cf.Config.Labels[VariantLabel]; got != "a" {
		t.Errorf("variant label = %q", got)
	}
	if cf.Config.Entrypoint[0] != "/sleeper" {
		t.Errorf("entrypoint = %v", cf.Config.Entrypoint)
	}
}

func TestPushIndex(t *testing.T) {
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	b := NewBuilder(t.TempDir())
	p, err := b.PushIndex(context.Background(), host+"/e2e/multi:1", Spec{Program: Pause})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Manifests) != 2 || p.ManifestDigest == "" || p.ManifestDigest == p.Digest || p.ConfigDigest == "" {
		t.Fatalf("index push: %+v", p)
	}
}

func TestUnknownProgram(t *testing.T) {
	b := NewBuilder(t.TempDir())
	if _, err := b.Build(context.Background(), Spec{Program: "nope"}); err == nil {
		t.Fatal("unknown program built")
	}
}
