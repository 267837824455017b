package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestPush pushes the built image to an in-process registry and reads it back: the
// manifest the registry serves must hash to the digest of the image built, and push must
// name it by that digest.
func TestPush(t *testing.T) {
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	img, err := build(testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	ref := host + "/tollgate-dev/tollgate:v9"
	pushed, err := push(context.Background(), ref, img, true)
	if err != nil {
		t.Fatal(err)
	}
	if pushed.String() != host+"/tollgate-dev/tollgate@"+want.String() {
		t.Errorf("push returned %s, want %s/tollgate-dev/tollgate@%s", pushed, host, want)
	}

	tag, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(tag)
	if err != nil {
		t.Fatalf("reading back %s: %v", ref, err)
	}
	if desc.Digest != want {
		t.Errorf("registry serves %s as %s, built image is %s", ref, desc.Digest, want)
	}
	got, err := desc.Image()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := layerFiles(t, got)["usr/local/bin/tollgated"]; !ok {
		t.Error("pushed image lacks usr/local/bin/tollgated")
	}
}

// TestPushFailures: a malformed reference, a digest reference naming another image, and an
// unreachable registry are errors, never a reported push.
func TestPushFailures(t *testing.T) {
	img, err := build(testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New())
	host := strings.TrimPrefix(srv.URL, "http://")
	srv.Close() // nothing listens there any more
	for name, ref := range map[string]string{
		"malformed":    "UPPER/Case:!",
		"wrong digest": "127.0.0.1:1/x@sha256:" + strings.Repeat("0", 64),
		"unreachable":  host + "/x:1",
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if d, err := push(ctx, ref, img, true, remote.WithRetryBackoff(remote.Backoff{Steps: 1})); err == nil {
				t.Errorf("push %s succeeded: %s", ref, d)
			}
		})
	}
}
