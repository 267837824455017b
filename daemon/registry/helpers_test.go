package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
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
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"tollgate.dev/tollgate/test/toolcheck"
)

// testRegistry is a registry on loopback that a test talks to.
type testRegistry struct {
	name      string
	host      string // "127.0.0.1:port"
	referrers bool   // has the OCI 1.1 referrers API
}

// registryKinds are the registries every round-trip test runs against.
var registryKinds = []string{"ggcr-referrers", "ggcr-no-referrers", "distribution-2.8"}

func startRegistry(t *testing.T, kind string) testRegistry {
	t.Helper()
	switch kind {
	case "ggcr-referrers":
		return testRegistry{name: kind, host: startGGCR(t, true, nil), referrers: true}
	case "ggcr-no-referrers":
		return testRegistry{name: kind, host: startGGCR(t, false, nil)}
	case "distribution-2.8":
		return testRegistry{name: kind, host: startDistribution(t)}
	}
	t.Fatalf("unknown registry kind %q", kind)
	return testRegistry{}
}

// startGGCR serves go-containerregistry's in-memory registry on 127.0.0.1, optionally
// behind a wrapping handler, and returns its host:port.
func startGGCR(t *testing.T, referrers bool, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = ggcrregistry.New(ggcrregistry.WithReferrersSupport(referrers),
		ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// startDistribution runs Debian's docker-registry (distribution 2.8, no referrers API) on a
// free loopback port with a temporary storage directory.
func startDistribution(t *testing.T) string {
	t.Helper()
	bin := toolcheck.Require(t, "docker-registry") // Debian package docker-registry
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "data"), addr)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfgPath)
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr
			}
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
			t.Fatalf("docker-registry did not come up on %s: %v\n%s", addr, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testClient is a Client for a loopback registry, with fast retries.
func testClient(host string, opts ...Option) *Client {
	base := []Option{WithInsecure(host), WithBackoff(time.Millisecond), WithKeychain(anonymous{})}
	return New(append(base, opts...)...)
}

// anonymous is a keychain that never finds credentials, so tests do not read ~/.docker.
type anonymous struct{}

func (anonymous) Resolve(authn.Resource) (authn.Authenticator, error) { return authn.Anonymous, nil }

// pushImage writes a random single-platform image to host/repo:tag and returns its digest.
func pushImage(t *testing.T, host, repo, tag string) v1.Hash {
	t.Helper()
	img := randomOCIImage(t)
	ref, err := name.NewTag(host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push test image: %v", err)
	}
	d, _ := img.Digest()
	return d
}

func randomOCIImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	return mutate.MediaType(img, types.OCIManifestSchema1)
}

// pushIndex writes a two-platform index to host/repo:tag and returns the index digest and
// the platform manifests' digests and config digests.
func pushIndex(t *testing.T, host, repo, tag string) (index v1.Hash, manifests, configs []v1.Hash) {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(256, 1)
		if err != nil {
			t.Fatal(err)
		}
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		d, _ := img.Digest()
		cfg, _ := img.ConfigName()
		manifests, configs = append(manifests, d), append(configs, cfg)
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: "linux", Architecture: arch},
		}})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	ref, err := name.NewTag(host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatalf("push test index: %v", err)
	}
	index, _ = idx.Digest()
	return index, manifests, configs
}

// statementEnvelope is a DSSE envelope around an in-toto Statement about subject. The
// signature is junk: this package verifies nothing.
func statementEnvelope(t *testing.T, subject v1.Hash, predicateType string) []byte {
	t.Helper()
	st := map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"name": "img", "digest": map[string]string{subject.Algorithm: subject.Hex}}},
		"predicateType": predicateType,
		"predicate":     map[string]any{"n": time.Now().UnixNano()},
	}
	payload, _ := json.Marshal(st)
	return envelopeJSON(t, "application/vnd.in-toto+json", payload)
}

func envelopeJSON(t *testing.T, payloadType string, payload []byte) []byte {
	t.Helper()
	env, err := json.Marshal(map[string]any{
		"payloadType": payloadType,
		"payload":     base64.StdEncoding.EncodeToString(payload),
		"signatures":  []any{map[string]string{"keyid": "", "sig": base64.StdEncoding.EncodeToString([]byte("sig"))}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// metablockLink is a legacy in-toto link file.
func metablockLink(step string) []byte {
	return []byte(fmt.Sprintf(`{"signed":{"_type":"link","name":%q,"materials":{},"products":{},"byproducts":{},"command":[],"environment":{}},"signatures":[{"keyid":"abcd1234","sig":"00"}]}`, step))
}

// rawGet reads a manifest straight from the registry, bypassing the code under test.
func rawGet(t *testing.T, ref string) (*manifest, bool) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(r)
	if isNotFound(err) {
		return nil, false
	}
	if err != nil {
		t.Fatalf("get %s: %v", ref, err)
	}
	m, err := parseManifest(desc.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	return m, true
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func tagOf(h v1.Hash) string { return h.Algorithm + "-" + h.Hex }
