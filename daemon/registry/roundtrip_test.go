package registry

import (
	"bytes"
	"maps"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

const slsaV1 = "https://slsa.dev/provenance/v1"

// TestAttachFetchRoundTrip attaches a Statement, a Metablock link and a DSSE link in a
// sublayout directory, and fetches them back under the same names, on every registry kind.
// It also checks what a registry without the referrers API holds: the fallback index and
// cosign's .att image, written as cosign writes it. Attaching twice changes nothing.
func TestAttachFetchRoundTrip(t *testing.T) {
	for _, kind := range registryKinds {
		t.Run(kind, func(t *testing.T) {
			reg := startRegistry(t, kind)
			ctx := ctxT(t)
			c := testClient(reg.host)
			img := pushImage(t, reg.host, "team/app", "v1")
			repo := reg.host + "/team/app"

			// Nothing attached yet: an empty map, not an error.
			got, err := c.Fetch(ctx, repo, img.String())
			if err != nil || len(got) != 0 {
				t.Fatalf("Fetch before Attach = %v, %v; want empty map, nil", keys(got), err)
			}

			arts := []Artifact{
				{Name: "provenance.intoto.json", MediaType: MediaTypeDSSE, Data: statementEnvelope(t, img, slsaV1)},
				{Name: "build.abcd1234.link", MediaType: MediaTypeInTotoLink, Data: metablockLink("build")},
				{Name: "sub.abcd1234/x.link", MediaType: MediaTypeDSSE, Data: envelopeJSON(t, "application/vnd.in-toto+json", []byte(`{"_type":"link","name":"x"}`))},
			}
			for range 2 { // the second Attach must not duplicate anything
				if err := c.Attach(ctx, repo+":v1", arts); err != nil {
					t.Fatalf("Attach: %v", err)
				}
			}

			got, err = c.Fetch(ctx, repo, img.String())
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			want := map[string][]byte{}
			for _, a := range arts {
				want[a.Name] = a.Data
			}
			if !maps.EqualFunc(got, want, bytes.Equal) {
				t.Fatalf("Fetch returned %v, want %v", keys(got), keys(want))
			}

			checkFallback(t, reg, repo, img, len(arts))
			checkCosignAtt(t, repo, img)
		})
	}
}

// checkFallback: a registry without the referrers API holds the fallback index, listing
// each referrer once; one with the API holds no fallback tag.
func checkFallback(t *testing.T, reg testRegistry, repo string, img v1.Hash, n int) {
	t.Helper()
	fallback, ok := rawGet(t, repo+":"+tagOf(img))
	if reg.referrers {
		if ok {
			t.Errorf("registry with referrers API got a fallback tag")
		}
		return
	}
	if !ok {
		t.Fatalf("no referrers fallback tag %s", tagOf(img))
	}
	if len(fallback.Manifests) != n {
		t.Errorf("fallback index lists %d referrers, want %d", len(fallback.Manifests), n)
	}
	for _, d := range fallback.Manifests {
		if d.ArtifactType != ArtifactTypeInToto {
			t.Errorf("fallback entry artifactType %q", d.ArtifactType)
		}
	}
}

// checkCosignAtt: the .att image holds the one Statement, once, as cosign writes it.
func checkCosignAtt(t *testing.T, repo string, img v1.Hash) {
	t.Helper()
	att, ok := rawGet(t, repo+":"+tagOf(img)+".att")
	if !ok {
		t.Fatal("no cosign .att image")
	}
	if att.MediaType != "application/vnd.oci.image.manifest.v1+json" || att.Config.MediaType != "application/vnd.oci.image.config.v1+json" {
		t.Errorf(".att media types %s / %s, want OCI manifest / config as cosign", att.MediaType, att.Config.MediaType)
	}
	if len(att.Layers) != 1 {
		t.Fatalf(".att has %d layers, want 1 (only the Statement, once)", len(att.Layers))
	}
	l := att.Layers[0]
	if l.MediaType != MediaTypeDSSE || l.Annotations["predicateType"] != slsaV1 {
		t.Errorf(".att layer %s %v", l.MediaType, l.Annotations)
	}
	if v, ok := l.Annotations["dev.cosignproject.cosign/signature"]; !ok || v != "" {
		t.Errorf(".att layer lacks the empty cosign signature annotation: %v", l.Annotations)
	}
}

// TestMultiArch resolves an index and attaches evidence to the index and to one platform
// manifest; Fetch takes both digests, and a digest without evidence yields nothing.
func TestMultiArch(t *testing.T) {
	for _, kind := range registryKinds {
		t.Run(kind, func(t *testing.T) {
			reg := startRegistry(t, kind)
			ctx := ctxT(t)
			c := testClient(reg.host)
			repo := reg.host + "/multi"
			idx, mans, cfgs := pushIndex(t, reg.host, "multi", "v2")

			res, err := c.Resolve(ctx, repo+":v2")
			if err != nil {
				t.Fatal(err)
			}
			if res.Digest != idx.String() || !res.IsIndex() || len(res.Manifests) != 2 || res.Repository != repo {
				t.Fatalf("Resolve = %+v", res)
			}
			for i, m := range res.Manifests {
				if m.Digest != mans[i].String() || m.ConfigDigest != cfgs[i].String() || m.OS != "linux" {
					t.Errorf("platform %d = %+v, want %s config %s", i, m, mans[i], cfgs[i])
				}
			}
			if b := res.BoundDigests(cfgs[1].String()); !slices.Equal(b, []string{idx.String(), mans[1].String()}) {
				t.Errorf("BoundDigests = %v", b)
			}
			if b := res.BoundDigests("sha256:" + zeros); b != nil {
				t.Errorf("BoundDigests(unknown config) = %v, want nil", b)
			}
			single, err := c.Resolve(ctx, repo+"@"+mans[0].String())
			if err != nil || single.ConfigDigest != cfgs[0].String() || single.IsIndex() {
				t.Fatalf("Resolve(platform) = %+v, %v", single, err)
			}

			onIndex := Artifact{Name: "index.intoto.json", MediaType: MediaTypeDSSE, Data: statementEnvelope(t, idx, slsaV1)}
			onArm := Artifact{Name: "arm64.intoto.json", MediaType: MediaTypeDSSE, Data: statementEnvelope(t, mans[1], slsaV1)}
			if err := c.Attach(ctx, repo+":v2", []Artifact{onIndex}); err != nil {
				t.Fatal(err)
			}
			if err := c.Attach(ctx, repo+"@"+mans[1].String(), []Artifact{onArm}); err != nil {
				t.Fatal(err)
			}

			got, err := c.Fetch(ctx, repo, idx.String(), mans[1].String())
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(keys(got), []string{onArm.Name, onIndex.Name}) {
				t.Errorf("Fetch(index, arm64) = %v", keys(got))
			}
			got, err = c.Fetch(ctx, repo, mans[0].String())
			if err != nil || len(got) != 0 {
				t.Errorf("Fetch(amd64) = %v, %v; want nothing", keys(got), err)
			}
		})
	}
}

const zeros = "0000000000000000000000000000000000000000000000000000000000000000"

func keys(m map[string][]byte) []string { return slices.Sorted(maps.Keys(m)) }
