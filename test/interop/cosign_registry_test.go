//go:build interop

package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"tollgate.dev/tollgate/daemon/registry"
	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/test/toolcheck"
)

// The cosign tests check daemon/registry against the real cosign v2 in both directions:
// what `cosign attest` pushes, Fetch returns; what Attach pushes (appended to cosign's own
// .att image), `cosign verify-attestation` accepts and `cosign download attestation` lists.

const (
	cosignPassword = "tollgate-interop"
	cosignSLSAv1   = "https://slsa.dev/provenance/v1"
)

// cosignFixture is a loopback registry (go-containerregistry's, without the referrers
// API), a cosign key pair in a scratch HOME, and a Client for that registry.
type cosignFixture struct {
	bin, dir, repo string
	env            []string
	ctx            context.Context
	c              *registry.Client
	pub            *keys.Key
	signer         *keys.Signer
}

func newCosignFixture(t *testing.T) *cosignFixture {
	t.Helper()
	bin := toolcheck.Require(t, "cosign")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	dir := t.TempDir()
	f := &cosignFixture{bin: bin, dir: dir, repo: host + "/interop/app", ctx: ctx,
		env: []string{"COSIGN_PASSWORD=" + cosignPassword, "HOME=" + dir, "DOCKER_CONFIG=" + filepath.Join(dir, ".docker"),
			"SIGSTORE_NO_CACHE=1", "TUF_ROOT=" + filepath.Join(dir, "tuf")},
		c: registry.New(registry.WithInsecure(host), registry.WithKeychain(cosignNoCreds{})),
	}
	f.run(t, "generate-key-pair")
	predicate := `{"buildDefinition":{"buildType":"https://tollgate.dev/interop","externalParameters":{}},"runDetails":{"builder":{"id":"https://tollgate.dev/ci"}}}`
	if err := os.WriteFile(filepath.Join(dir, "p.json"), []byte(predicate), 0o600); err != nil {
		t.Fatal(err)
	}
	f.pub = cosignReadKey(t, filepath.Join(dir, "cosign.pub"), nil).(*keys.Key)
	f.signer = cosignReadKey(t, filepath.Join(dir, "cosign.key"), []byte(cosignPassword)).(*keys.Signer)
	return f
}

func (f *cosignFixture) run(t *testing.T, args ...string) []byte {
	t.Helper()
	return cosignRun(t, f.dir, f.env, f.bin, args...)
}

func (f *cosignFixture) attest(t *testing.T, ref string, extra ...string) {
	t.Helper()
	args := append([]string{"attest"}, extra...)
	f.run(t, append(args, "--key", "cosign.key", "--type", "slsaprovenance1", "--predicate", "p.json",
		"--tlog-upload=false", "--allow-insecure-registry", "--yes", ref)...)
}

func (f *cosignFixture) verifyArgs(ref string) []string {
	return []string{"verify-attestation", "--key", "cosign.pub", "--insecure-ignore-tlog",
		"--allow-insecure-registry", "--type", "slsaprovenance1", ref}
}

func (f *cosignFixture) attach(t *testing.T, ref string, about v1.Hash) []byte {
	t.Helper()
	data := cosignStatement(t, about, f.signer)
	art := registry.Artifact{Name: "provenance.intoto.json", MediaType: registry.MediaTypeDSSE, Data: data}
	for range 2 { // idempotent
		if err := f.c.Attach(f.ctx, ref, []registry.Artifact{art}); err != nil {
			t.Fatalf("Attach: %v", err)
		}
	}
	return data
}

// TestCosignRegistryAttestFetch: what `cosign attest` pushes, Fetch returns, and it verifies with
// cosign.pub through policy/envelope.
func TestCosignRegistryAttestFetch(t *testing.T) {
	f := newCosignFixture(t)
	img := cosignPushImage(t, f.repo+":v1")
	f.attest(t, f.repo+"@"+img.String())
	files, err := f.c.Fetch(f.ctx, f.repo, img.String())
	if err != nil || len(files) != 1 {
		t.Fatalf("Fetch after cosign attest = %d files, %v; want 1", len(files), err)
	}
	for n, data := range files {
		if !strings.HasSuffix(n, ".dsse.json") {
			t.Errorf("cosign attestation named %q", n)
		}
		s := cosignCheckEnvelope(t, data, f.pub)
		if !bytes.Contains(s.Payload, []byte(img.Hex)) || !bytes.Contains(s.Payload, []byte(cosignSLSAv1)) {
			t.Errorf("cosign's Statement does not name the image and SLSA v1:\n%s", s.Payload)
		}
	}
}

// TestCosignRegistryBundleFetch: cosign's Sigstore bundle (an OCI 1.1 referrer; this registry has
// no referrers API, so it sits in the fallback index) comes back as a .sigstore.json file.
func TestCosignRegistryBundleFetch(t *testing.T) {
	f := newCosignFixture(t)
	img := cosignPushImage(t, f.repo+":v1")
	f.attest(t, f.repo+"@"+img.String(), "--new-bundle-format")
	files, err := f.c.Fetch(f.ctx, f.repo, img.String())
	if err != nil || len(files) != 1 {
		t.Fatalf("Fetch of a cosign bundle = %d files, %v; want 1", len(files), err)
	}
	for n, data := range files {
		if !strings.HasSuffix(n, ".sigstore.json") || !bytes.Contains(data, []byte(registry.MediaTypeSigstoreBundle)) {
			t.Errorf("cosign bundle fetched as %q:\n%.200s", n, data)
		}
	}
}

// TestCosignRegistryVerifyAttach: a Statement Attach pushes, signed with a cosign key, is appended
// to cosign's own .att image; cosign verifies and downloads both, and Fetch returns both.
func TestCosignRegistryVerifyAttach(t *testing.T) {
	f := newCosignFixture(t)
	img := cosignPushImage(t, f.repo+":v1")
	ref := f.repo + "@" + img.String()
	f.attest(t, ref)
	ours := f.attach(t, ref, img)
	out := f.run(t, f.verifyArgs(ref)...)
	if n := bytes.Count(bytes.TrimSpace(out), []byte("\n")) + 1; n != 2 {
		t.Errorf("cosign verify-attestation verified %d attestations, want 2 (cosign's and ours):\n%s", n, out)
	}
	out = f.run(t, "download", "attestation", "--allow-insecure-registry", ref)
	if !bytes.Contains(out, []byte(cosignPayload(t, ours))) {
		t.Errorf("cosign download attestation does not list our envelope:\n%s", out)
	}
	files, err := f.c.Fetch(f.ctx, f.repo, img.String())
	if err != nil || len(files) != 2 || !bytes.Equal(files["provenance.intoto.json"], ours) {
		t.Fatalf("Fetch after Attach = %d files (%v), want cosign's and ours", len(files), err)
	}

	// An image that carries only what Attach pushed verifies alone.
	img2 := cosignPushImage(t, f.repo+":v2")
	f.attach(t, f.repo+"@"+img2.String(), img2)
	f.run(t, f.verifyArgs(f.repo+"@"+img2.String())...)

	// A Statement about another image is refused by cosign: the subject binds.
	img3 := cosignPushImage(t, f.repo+":v3")
	f.attach(t, f.repo+"@"+img3.String(), img2)
	if out, err := cosignCmd(f.dir, f.env, f.bin, f.verifyArgs(f.repo+"@"+img3.String())...).CombinedOutput(); err == nil {
		t.Errorf("cosign verified a Statement about another image:\n%s", out)
	} else if !bytes.Contains(out, []byte("no matching subject digest")) {
		t.Errorf("cosign refused it for another reason:\n%s", out)
	}
}

// cosignStatement is an SLSA v1 Statement about img in a DSSE envelope signed by signer.
func cosignStatement(t *testing.T, img v1.Hash, signer *keys.Signer) []byte {
	t.Helper()
	st := map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"name": "app", "digest": map[string]string{"sha256": img.Hex}}},
		"predicateType": cosignSLSAv1,
		"predicate": map[string]any{
			"buildDefinition": map[string]any{"buildType": "https://tollgate.dev/interop", "externalParameters": map[string]any{}},
			"runDetails":      map[string]any{"builder": map[string]any{"id": "https://tollgate.dev/ci"}},
		},
	}
	payload, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	s := envelope.NewDSSE(envelope.PayloadTypeInToto, payload)
	if err := s.Sign(signer); err != nil {
		t.Fatal(err)
	}
	data, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func cosignCheckEnvelope(t *testing.T, data []byte, pub *keys.Key) *envelope.Signed {
	t.Helper()
	s, err := envelope.Parse(data)
	if err != nil {
		t.Fatalf("parse fetched envelope: %v\n%s", err, data)
	}
	if s.Format != envelope.DSSE || s.PayloadType != envelope.PayloadTypeInToto {
		t.Fatalf("fetched %v with payload type %q", s.Format, s.PayloadType)
	}
	if _, err := s.Verify([]*keys.Key{pub}, 1); err != nil {
		t.Fatalf("cosign's envelope does not verify with cosign.pub: %v", err)
	}
	return s
}

// cosignPayload returns the base64 payload of an envelope, as cosign download prints it.
func cosignPayload(t *testing.T, env []byte) string {
	t.Helper()
	var e struct {
		Payload string `json:"payload"`
	}
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	return e.Payload
}

func cosignReadKey(t *testing.T, path string, pass []byte) any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if pass != nil {
		s, err := keys.ParsePrivate(data, pass)
		if err != nil {
			t.Fatalf("keys.ParsePrivate(%s): %v", path, err)
		}
		return s
	}
	k, err := keys.ParsePublic(data)
	if err != nil {
		t.Fatalf("keys.ParsePublic(%s): %v", path, err)
	}
	return k
}

func cosignPushImage(t *testing.T, ref string) v1.Hash {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return d
}

func cosignCmd(dir string, env []string, bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

func cosignRun(t *testing.T, dir string, env []string, bin string, args ...string) []byte {
	t.Helper()
	cmd := cosignCmd(dir, env, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("cosign %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.Bytes()
}

// cosignNoCreds is a keychain without credentials, so the test never reads ~/.docker.
type cosignNoCreds struct{}

func (cosignNoCreds) Resolve(authn.Resource) (authn.Authenticator, error) {
	return authn.Anonymous, nil
}
