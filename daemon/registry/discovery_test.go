package registry

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"tollgate.dev/tollgate/policy/cosign"
)

// blobLayer is one layer to push: its bytes, media type and annotations.
type blobLayer struct {
	data      []byte
	mediaType string
	ann       map[string]string
}

// pushManifest writes a manifest of layers (with an empty config) at ref (a tag, or "" for
// by digest only), with subject when not nil, and returns the manifest's bytes.
func pushManifest(t *testing.T, host, repo, ref string, mediaType types.MediaType, artifactType string, subject *v1.Hash, layers ...blobLayer) []byte {
	t.Helper()
	r, _ := name.NewRepository(host+"/"+repo, name.Insecure)
	m := map[string]any{"schemaVersion": 2, "mediaType": string(mediaType),
		"config": emptyConfig{MediaType: mediaTypeEmpty, Digest: digestOf(emptyJSON), Size: 2, Data: emptyJSON}}
	if artifactType != "" {
		m["artifactType"] = artifactType
	}
	if subject != nil {
		m["subject"] = descriptor{MediaType: string(types.OCIManifestSchema1), Digest: subject.String(), Size: 1}
	}
	var descs []descriptor
	for _, l := range append(layers, blobLayer{data: emptyJSON, mediaType: mediaTypeEmpty}) {
		if err := remote.WriteLayer(r, static.NewLayer(l.data, types.MediaType(l.mediaType))); err != nil {
			t.Fatal(err)
		}
		if l.mediaType != mediaTypeEmpty {
			descs = append(descs, descriptor{MediaType: l.mediaType, Digest: digestOf(l.data), Size: int64(len(l.data)), Annotations: l.ann})
		}
	}
	m["layers"] = descs
	raw, _ := json.Marshal(m)
	var target name.Reference = r.Digest(digestOf(raw))
	if ref != "" {
		target = r.Tag(ref)
	}
	if err := remote.Put(target, rawManifest{raw: raw, mediaType: mediaType}); err != nil {
		t.Fatal(err)
	}
	return raw
}

func digestTag(d v1.Hash) string { return strings.Replace(d.String(), ":", "-", 1) }

// cosign `.sig`: one payload blob signed by two signers gives two layers with the same
// blob; both come back, each with its own annotations.
func TestFetchCosignSignatures(t *testing.T) {
	for _, kind := range []string{"ggcr-referrers", "ggcr-no-referrers"} {
		t.Run(kind, func(t *testing.T) {
			host := startRegistry(t, kind).host
			img := pushImage(t, host, "app", "v1")
			payload, _ := (&cosign.Payload{DockerReference: host + "/app", ManifestDigest: img.String()}).Marshal()
			keyless := map[string]string{cosign.AnnotationSignature: "c2lnMg==", cosign.AnnotationCertificate: "-----BEGIN CERTIFICATE-----", cosign.AnnotationBundle: `{"SignedEntryTimestamp":"AA=="}`, "other": "dropped"}
			pushManifest(t, host, "app", digestTag(img)+".sig", types.OCIManifestSchema1, "", nil,
				blobLayer{payload, cosign.MediaTypeSimpleSigning, map[string]string{cosign.AnnotationSignature: "c2lnMQ=="}},
				blobLayer{payload, cosign.MediaTypeSimpleSigning, keyless})
			got, err := testClient(host).Fetch(ctxT(t), host+"/app", img.String())
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 {
				t.Fatalf("Fetch = %v, want two signature layers", keys(got))
			}
			sigs := map[string]map[string]string{}
			for n, data := range got {
				if !strings.HasPrefix(n, digestName(digestOf(payload), MediaTypeCosignSignature)) {
					t.Errorf("name %s", n)
				}
				l, err := cosign.ParseLayer(data)
				if err != nil {
					t.Fatalf("%s: %v", n, err)
				}
				if !bytes.Equal(l.Data, payload) {
					t.Errorf("%s: data %s", n, l.Data)
				}
				sigs[l.Annotations[cosign.AnnotationSignature]] = l.Annotations
			}
			if len(sigs["c2lnMQ=="]) != 1 || sigs["c2lnMg=="][cosign.AnnotationCertificate] == "" || sigs["c2lnMg=="][cosign.AnnotationBundle] == "" || sigs["c2lnMg=="]["other"] != "" {
				t.Errorf("annotations %v", sigs)
			}
		})
	}
}

// cosign v2 keyless `.att`: the certificate travels with the envelope; a key-signed
// attestation layer stays a plain DSSE file.
func TestFetchCosignKeylessAttestation(t *testing.T) {
	host := startGGCR(t, true, nil)
	img := pushImage(t, host, "app", "v1")
	keyless := envelopeJSON(t, "application/vnd.in-toto+json", []byte(`{"_type":"https://in-toto.io/Statement/v1","n":1}`))
	keyed := envelopeJSON(t, "application/vnd.in-toto+json", []byte(`{"_type":"https://in-toto.io/Statement/v1","n":2}`))
	pushManifest(t, host, "app", digestTag(img)+".att", types.OCIManifestSchema1, "", nil,
		blobLayer{keyless, MediaTypeDSSE, map[string]string{annotationPredicateType: "p", cosign.AnnotationCertificate: "CERT", cosign.AnnotationChain: "CHAIN", cosign.AnnotationBundle: "{}"}},
		blobLayer{keyed, MediaTypeDSSE, map[string]string{annotationPredicateType: "p", cosign.AnnotationSignature: ""}})
	got, err := testClient(host).Fetch(ctxT(t), host+"/app", img.String())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[digestName(digestOf(keyed), MediaTypeDSSE)], keyed) {
		t.Errorf("key-signed layer not returned as is: %v", keys(got))
	}
	data := got[digestName(digestOf(keyless), MediaTypeCosignSignature)]
	l, err := cosign.ParseLayer(data)
	if err != nil {
		t.Fatalf("keyless layer: %v (files %v)", err, keys(got))
	}
	if k := l.Keyless(); string(k.Certificate) != "CERT" || string(k.Chain) != "CHAIN" || !bytes.Equal(l.Data, keyless) || l.MediaType != MediaTypeDSSE {
		t.Errorf("keyless layer %+v", l)
	}
}

// The referrers API answers, but empty (as ghcr.io does): the referrers tag fallback index
// holds the bundles, as cosign v3 writes it, in each Sigstore bundle spelling.
func TestFetchReferrersTagWhenAPIEmpty(t *testing.T) {
	host := startGGCR(t, true, nil)
	img := pushImage(t, host, "app", "v1")
	var entries []descriptor
	var want [][]byte
	for i, mt := range []string{MediaTypeSigstoreBundle, "application/vnd.dev.sigstore.bundle+json;version=0.2", "application/vnd.dev.sigstore.bundle+json;version=0.1"} {
		b := []byte(`{"mediaType":"` + mt + `","n":` + string(rune('0'+i)) + `}`)
		// No subject: the registry's API does not list it; only the tag index does.
		raw := pushManifest(t, host, "app", "", types.OCIManifestSchema1, mt, nil, blobLayer{b, mt, nil})
		entries = append(entries, descriptor{MediaType: string(types.OCIManifestSchema1), Digest: digestOf(raw), Size: int64(len(raw)), ArtifactType: mt})
		want = append(want, b)
	}
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": string(types.OCIImageIndex), "manifests": entries})
	r, _ := name.NewRepository(host+"/app", name.Insecure)
	if err := remote.Put(r.Tag(digestTag(img)), rawManifest{raw: idx, mediaType: types.OCIImageIndex}); err != nil {
		t.Fatal(err)
	}
	got, err := testClient(host).Fetch(ctxT(t), host+"/app", img.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("Fetch = %v, want %d bundles", keys(got), len(want))
	}
	for _, b := range want {
		if n := digestName(digestOf(b), MediaTypeSigstoreBundle); !bytes.Equal(got[n], b) {
			t.Errorf("%s missing (have %v)", n, keys(got))
		}
	}
	// A referrers tag that is not an index is a registry fault, not "no evidence".
	other := pushImage(t, host, "app", "v2")
	pushImage(t, host, "app", digestTag(other))
	if _, err := testClient(host).Fetch(ctxT(t), host+"/app", other.String()); err == nil {
		t.Error("Fetch accepted an image as the referrers tag index")
	}
}
