//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"tollgate.dev/tollgate/test/toolcheck"
)

// TestTollgateSignatures runs the scenarios of cosign image signatures (issue 13) against
// their own containerd and tollgated, set up as in TestTollgate plus one ImagePolicy that
// requires e2e/cosigned images to be signed with a cosign key (`cosign sign`, the `.sig`
// image), made by the real cosign CLI.
func TestTollgateSignatures(t *testing.T) {
	cosignBin := toolcheck.Require(t, "cosign")
	start := time.Now()
	env := Start(t, WithRequiredPlugin())
	g := newGate(t, env)
	c := newCosignSigner(t, g, cosignBin)
	copyFile(t, filepath.Join(c.dir, "cosign.pub"), filepath.Join(g.policyDir, "release.pub"))
	writeFile(t, filepath.Join(g.policyDir, "cosigned.yaml"), fmt.Sprintf(`apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: cosigned
spec:
  images: ["%s/e2e/cosigned"]
  signatures:
    - name: release
      keys: [release.pub]
`, g.host))
	g.pod = env.RunPod(t, "signatures")
	g.start(t)
	t.Logf("e2e: environment and tollgated ready in %s", time.Since(start).Round(time.Millisecond))

	t.Run("18-cosign-signature", func(t *testing.T) {
		signed := g.push(t, "cosigned:signed", "cosigned")
		c.sign(t, g.host+"/e2e/cosigned@"+signed.Digest)
		unsigned := g.push(t, "cosigned:unsigned", "cosigned-unsigned")
		g.pull(t, signed)
		g.mustRun(t, signed.Ref)
		if r := g.lastHook(t, signed); !r.Allowed || r.Outcome != "verified" || r.Policy != "cosigned" {
			t.Errorf("audit record: allowed=%v outcome=%q policy=%q, want a verified allowance by policy cosigned", r.Allowed, r.Outcome, r.Policy)
		}
		g.pull(t, unsigned)
		g.mustReject(t, unsigned.Ref, "tollgate: denied", unsigned.Repository, `policy "cosigned"`,
			`signature "release": the image has no cosign signature`)
		g.checkHookReason(t, unsigned, "missing_evidence")
	})
}

// cosignSigner is the real cosign CLI with a key pair in a scratch HOME.
type cosignSigner struct {
	bin, dir string
	env      []string
}

const cosignE2EPassword = "tollgate-e2e"

func newCosignSigner(t *testing.T, g *gate, bin string) *cosignSigner {
	t.Helper()
	dir := filepath.Join(g.workDir, "cosign")
	c := &cosignSigner{bin: bin, dir: dir, env: []string{"COSIGN_PASSWORD=" + cosignE2EPassword, "HOME=" + dir,
		"DOCKER_CONFIG=" + filepath.Join(dir, ".docker"), "SIGSTORE_NO_CACHE=1", "TUF_ROOT=" + filepath.Join(dir, "tuf")}}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	toolcheck.Run(t, dir, nil, c.env, bin, "generate-key-pair")
	return c
}

// sign signs ref (repo@digest) with the key, into its `.sig` image; no transparency log:
// the node verifies offline with the key alone.
func (c *cosignSigner) sign(t *testing.T, ref string) {
	t.Helper()
	toolcheck.Run(t, c.dir, nil, c.env, c.bin, "sign", "--key", "cosign.key", "--tlog-upload=false",
		"--allow-insecure-registry", "--allow-http-registry", "--yes", ref)
}
