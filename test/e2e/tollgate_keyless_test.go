//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"

	"tollgate.dev/tollgate/policy/cosign"
	"tollgate.dev/tollgate/policy/cosign/cosigntest"
)

const (
	keylessIssuer = "https://token.actions.githubusercontent.com"
	keylessSAN    = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
	keylessOther  = "https://github.com/acme/other/.github/workflows/release.yml@refs/heads/main"
)

// TestTollgateKeyless is scenario 19 (issue 13): an image whose only evidence is a keyless
// Sigstore bundle in its OCI 1.1 referrers, signed by a Sigstore made in the test
// (sigstore-go's testing CA, Rekor and CT log; its trust material a TrustedRoot document
// in the policy directory), runs; required from another identity, the same image is
// refused with a message that names both identities.
func TestTollgateKeyless(t *testing.T) {
	start := time.Now()
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	trusted, err := cosigntest.TrustedRoot(vs)
	if err != nil {
		t.Fatal(err)
	}
	env := Start(t, WithRequiredPlugin())
	g := newGate(t, env)
	writeFile(t, filepath.Join(g.policyDir, "test-sigstore.json"), string(trusted))
	writeFile(t, filepath.Join(g.policyDir, "test-sigstore.yaml"), `apiVersion: tollgate.dev/v1alpha1
kind: TrustedRoot
metadata:
  name: test-sigstore
spec:
  files: [test-sigstore.json]
  # A private instance: its CA embeds no SCTs; the log entry and its time are required.
  requirements: {signedCertificateTimestamps: 0, transparencyLogEntries: 1, observerTimestamps: 1, signedTimestamps: 0}
`)
	keylessPolicy := func(san string) string {
		return fmt.Sprintf(`apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: keyless
spec:
  images: ["%s/e2e/keyless"]
  attestations:
    - name: provenance
      predicateType: slsa-v1
      identities:
        - {issuer: "%s", subject: "%s"}
`, g.host, keylessIssuer, san)
	}
	writeFile(t, filepath.Join(g.policyDir, "keyless.yaml"), keylessPolicy(keylessSAN))
	g.pod = env.RunPod(t, "keyless")
	g.start(t)
	t.Logf("e2e: environment and tollgated ready in %s", time.Since(start).Round(time.Millisecond))

	t.Run("19-keyless-bundle-in-referrers", func(t *testing.T) {
		img := g.push(t, "keyless:1", "keyless")
		pushKeylessBundle(t, vs, g.host, "e2e/keyless", img.Digest)
		g.pull(t, img)
		g.mustRun(t, img.Ref)
		if r := g.lastHook(t, img); !r.Allowed || r.Outcome != "verified" || r.Policy != "keyless" {
			t.Errorf("audit record: allowed=%v outcome=%q policy=%q, want a verified allowance by policy keyless", r.Allowed, r.Outcome, r.Policy)
		}

		// The same image, now required from another workflow.
		gen := metric(g.metrics(t), "tollgate_policy_generation")
		writeFile(t, filepath.Join(g.policyDir, "keyless.yaml"), keylessPolicy(keylessOther))
		g.waitMetric(t, "tollgate_policy_generation", gen+1, 15*time.Second)
		g.mustReject(t, img.Ref, "tollgate: denied", `policy "keyless"`, `attestation "provenance"`, keylessSAN, keylessOther)
	})
}

// pushKeylessBundle signs an SLSA v1 Statement about digest with the test Sigstore and
// pushes it to repo as an OCI 1.1 referrer holding a Sigstore bundle.
func pushKeylessBundle(t *testing.T, vs *ca.VirtualSigstore, host, repo, digest string) {
	t.Helper()
	st := `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"app","digest":{"sha256":"` + strings.TrimPrefix(digest, "sha256:") + `"}}],` +
		`"predicateType":"https://slsa.dev/provenance/v1","predicate":{"buildDefinition":{"buildType":"https://ci.e2e.tollgate.dev/build","externalParameters":{}},"runDetails":{"builder":{"id":"` + builderID + `"}}}}`
	ent, err := vs.Attest(keylessSAN, keylessIssuer, []byte(st))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ent.SignatureContent()
	if err != nil {
		t.Fatal(err)
	}
	envJSON, err := json.Marshal(sc.EnvelopeContent().RawEnvelope())
	if err != nil {
		t.Fatal(err)
	}
	ann, err := cosigntest.Annotations(vs, ent, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The bundle the test Sigstore's material makes (v0.1: its log entry proves inclusion by
	// a signed entry timestamp).
	layerFile, err := cosign.MarshalLayer(cosign.MediaTypeDSSE, ann, envJSON)
	if err != nil {
		t.Fatal(err)
	}
	l, err := cosign.ParseLayer(layerFile)
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := l.SigstoreBundle()
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.NewRepository(host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	mt := cosign.MediaTypeBundleV01
	empty := []byte("{}")
	for _, b := range []struct {
		data []byte
		mt   string
	}{{bundle, mt}, {empty, "application/vnd.oci.empty.v1+json"}} {
		if err := remote.WriteLayer(r, static.NewLayer(b.data, types.MediaType(b.mt))); err != nil {
			t.Fatal(err)
		}
	}
	digestOf := func(b []byte) string { h, _, _ := v1.SHA256(strings.NewReader(string(b))); return h.String() }
	m := map[string]any{
		"schemaVersion": 2, "mediaType": string(types.OCIManifestSchema1), "artifactType": mt,
		"config":  map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": digestOf(empty), "size": 2, "data": empty},
		"layers":  []any{map[string]any{"mediaType": mt, "digest": digestOf(bundle), "size": len(bundle)}},
		"subject": map[string]any{"mediaType": string(types.OCIManifestSchema1), "digest": digest, "size": 1},
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(r.Digest(digestOf(raw)), rawManifest{raw: raw, mt: types.OCIManifestSchema1}); err != nil {
		t.Fatal(err)
	}
}

type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }
