package registry

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestFetchLimits: each limit stops Fetch with an error that wraps ErrLimitExceeded and
// names the option, and a Fetch within the limits still succeeds.
func TestFetchLimits(t *testing.T) {
	host := startGGCR(t, false, nil)
	ctx := ctxT(t)
	img := pushImage(t, host, "lim", "v1")
	repo := host + "/lim"
	var arts []Artifact
	for _, n := range []string{"a.link", "b.link", "c.link"} {
		arts = append(arts, Artifact{Name: n, MediaType: MediaTypeInTotoLink, Data: append(metablockLink(n), bytes.Repeat([]byte(" "), 2000)...)})
	}
	if err := testClient(host).Attach(ctx, repo+":v1", arts); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		opt    Option
		option string // the option the error must name; "" = success
	}{
		{"within limits", WithMaxArtifacts(3), ""},
		{"oversized blob", WithMaxArtifactBytes(1024), "WithMaxArtifactBytes"},
		{"too many artifacts", WithMaxArtifacts(2), "WithMaxArtifacts"},
		{"image total", WithMaxImageEvidenceBytes(5000), "WithMaxImageEvidenceBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := testClient(host, tt.opt).Fetch(ctx, repo, img.String())
			if tt.option == "" {
				if err != nil || len(got) != 3 {
					t.Fatalf("Fetch = %v, %v; want 3 files", keys(got), err)
				}
				return
			}
			if !errors.Is(err, ErrLimitExceeded) || !strings.Contains(err.Error(), tt.option) {
				t.Fatalf("Fetch error = %v; want ErrLimitExceeded naming %s", err, tt.option)
			}
			if got != nil {
				t.Errorf("partial result %v returned with the error", keys(got))
			}
		})
	}
}

// TestAttachRejects: Attach checks its input before touching the registry.
func TestAttachRejects(t *testing.T) {
	c := New(WithMaxArtifacts(2), WithMaxArtifactBytes(10))
	link := func(n string) Artifact { return Artifact{Name: n, MediaType: MediaTypeInTotoLink, Data: []byte("{}")} }
	tests := []struct {
		name string
		arts []Artifact
		want string
	}{
		{"absolute name", []Artifact{link("/etc/x.link")}, "absolute"},
		{"dot-dot name", []Artifact{link("a/../../x.link")}, `".."`},
		{"duplicate name", []Artifact{link("a.link"), link("a.link")}, "two artifacts"},
		{"too many", []Artifact{link("a"), link("b"), link("c")}, "WithMaxArtifacts"},
		{"oversized", []Artifact{{Name: "a", MediaType: MediaTypeDSSE, Data: make([]byte, 11)}}, "WithMaxArtifactBytes"},
		{"bundle is fetch-only", []Artifact{{Name: "a", MediaType: MediaTypeSigstoreBundle, Data: []byte("{}")}}, "media type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The reference points nowhere: input errors must come first.
			err := c.Attach(ctxT(t), "127.0.0.1:1/none:v1", tt.arts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Attach error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

// TestFetchForeignReferrers: a Sigstore bundle referrer (as cosign --new-bundle-format
// writes it) is returned; an SBOM referrer is not opened; a hostile title is not trusted.
func TestFetchForeignReferrers(t *testing.T) {
	host := startGGCR(t, true, nil)
	ctx := ctxT(t)
	img := pushImage(t, host, "foreign", "v1")
	repo := host + "/foreign"
	bundle := []byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`)
	pushForeignReferrer(t, host, "foreign", img, MediaTypeSigstoreBundle, MediaTypeSigstoreBundle, bundle, nil)
	pushForeignReferrer(t, host, "foreign", img, "application/spdx+json", "application/spdx+json", []byte(`{"spdxVersion":"SPDX-2.3"}`), nil)
	evil := envelopeJSON(t, "application/vnd.in-toto+json", []byte(`{"_type":"link"}`))
	pushForeignReferrer(t, host, "foreign", img, ArtifactTypeInToto, MediaTypeDSSE, evil, map[string]string{AnnotationTitle: "../../etc/cron.d/x"})

	got, err := testClient(host).Fetch(ctx, repo, img.String())
	if err != nil {
		t.Fatal(err)
	}
	bundleName := digestName(digestOf(bundle), MediaTypeSigstoreBundle)
	evilName := digestName(digestOf(evil), MediaTypeDSSE)
	if len(got) != 2 || !bytes.Equal(got[bundleName], bundle) || !bytes.Equal(got[evilName], evil) {
		t.Fatalf("Fetch = %v; want %s and %s", keys(got), bundleName, evilName)
	}
	if !strings.HasSuffix(bundleName, ".sigstore.json") {
		t.Errorf("bundle name %s", bundleName)
	}
}

// pushForeignReferrer writes a one-layer referrer the way other tools do.
func pushForeignReferrer(t *testing.T, host, repo string, subject v1.Hash, artifactType, layerType string, data []byte, ann map[string]string) {
	t.Helper()
	r, _ := name.NewRepository(host+"/"+repo, name.Insecure)
	layer := static.NewLayer(data, types.MediaType(layerType))
	cfg := static.NewLayer(emptyJSON, mediaTypeEmpty)
	for _, l := range []v1.Layer{layer, cfg} {
		if err := remote.WriteLayer(r, l); err != nil {
			t.Fatal(err)
		}
	}
	m := referrerManifest{
		SchemaVersion: 2, MediaType: string(types.OCIManifestSchema1), ArtifactType: artifactType,
		Config:  emptyConfig{MediaType: mediaTypeEmpty, Digest: digestOf(emptyJSON), Size: 2, Data: emptyJSON},
		Layers:  []descriptor{{MediaType: layerType, Digest: digestOf(data), Size: int64(len(data)), Annotations: ann}},
		Subject: descriptor{MediaType: string(types.OCIManifestSchema1), Digest: subject.String(), Size: 1},
	}
	raw, _ := json.Marshal(m)
	rm := rawManifest{raw: raw, mediaType: types.OCIManifestSchema1}
	if err := remote.Put(r.Digest(digestOf(raw)), rm); err != nil {
		t.Fatal(err)
	}
}

func digestOf(b []byte) string {
	h, _, _ := v1.SHA256(bytes.NewReader(b))
	return h.String()
}

// flaky answers the first n requests with the given statuses, in turn, then passes through.
type flaky struct {
	statuses []int
	n        atomic.Int64
	next     http.Handler
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if i := f.n.Add(1) - 1; i < int64(len(f.statuses)) {
		w.Header().Set("Retry-After", "0")
		http.Error(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`, f.statuses[i])
		return
	}
	f.next.ServeHTTP(w, r)
}

// TestRetry: 429 then 503 are retried to success; with retries off, the first one is an
// error, and the caller learns it is an infrastructure error, not missing evidence.
func TestRetry(t *testing.T) {
	for _, tt := range []struct {
		name    string
		retries int
		wantErr bool
	}{{"retried", 3, false}, {"no retries", 0, true}} {
		t.Run(tt.name, func(t *testing.T) {
			fl := &flaky{statuses: []int{http.StatusTooManyRequests, http.StatusServiceUnavailable}}
			host := startGGCR(t, true, func(h http.Handler) http.Handler { fl.next = h; return fl })
			ctx := ctxT(t)
			c := testClient(host, WithRetries(tt.retries))
			got, err := c.Fetch(ctx, host+"/app", "sha256:"+zeros)
			if tt.wantErr {
				if err == nil || got != nil || statusCode(err) != http.StatusTooManyRequests || !strings.Contains(err.Error(), host) {
					t.Fatalf("Fetch = %v, %v; want an error naming the registry and the 429", got, err)
				}
				return
			}
			if err != nil || got == nil || len(got) != 0 {
				t.Fatalf("Fetch = %v, %v; want empty map after retries", got, err)
			}
			if fl.n.Load() <= 2 {
				t.Errorf("only %d requests; the failures were not retried", fl.n.Load())
			}
		})
	}
}

// basicAuth demands user:secret and answers 401 with a Basic challenge otherwise.
func basicAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "user" || p != "secret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// TestAuth: without credentials the registry's 401 is an error; with a Docker config file
// found through DOCKER_CONFIG (the default keychain), Attach and Fetch work.
func TestAuth(t *testing.T) {
	host := startGGCR(t, true, basicAuth)
	ctx := ctxT(t)
	t.Setenv("HOME", t.TempDir()) // keep the real ~/.docker out of it
	dockerConfig := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dockerConfig)
	t.Setenv("REGISTRY_AUTH_FILE", "")
	t.Setenv("XDG_RUNTIME_DIR", "")
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	repo := host + "/private"
	c := New(WithInsecure(host), WithRetries(0))

	got, err := c.Fetch(ctx, repo, "sha256:"+zeros)
	if err == nil || statusCode(err) != http.StatusUnauthorized {
		t.Fatalf("Fetch without credentials = %v, %v; want a 401 error", got, err)
	}
	if !strings.Contains(err.Error(), "repository private") {
		t.Errorf("error does not name the repository: %v", err)
	}

	cfg := `{"auths":{"` + host + `":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("user:secret")) + `"}}}`
	if err := os.WriteFile(filepath.Join(dockerConfig, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	img := pushImageAuth(t, host, "private")
	art := Artifact{Name: "p.intoto.json", MediaType: MediaTypeDSSE, Data: statementEnvelope(t, img, slsaV1)}
	if err := c.Attach(ctx, repo+"@"+img.String(), []Artifact{art}); err != nil {
		t.Fatalf("Attach with credentials: %v", err)
	}
	got, err = c.Fetch(ctx, repo, img.String())
	if err != nil || !bytes.Equal(got[art.Name], art.Data) {
		t.Fatalf("Fetch with credentials = %v, %v", keys(got), err)
	}
}

func pushImageAuth(t *testing.T, host, repo string) v1.Hash {
	t.Helper()
	img := randomOCIImage(t)
	ref, _ := name.NewTag(host+"/"+repo+":v1", name.Insecure)
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "user", Password: "secret"})); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return d
}

// TestInsecureList: a plain-HTTP registry works only when listed, loopback included.
func TestInsecureList(t *testing.T) {
	host := startGGCR(t, true, nil)
	ctx := ctxT(t)
	pushImage(t, host, "app", "v1")

	_, err := New(WithRetries(0), WithKeychain(anonymous{})).Resolve(ctx, host+"/app:v1")
	if !errors.Is(err, ErrPlainHTTP) {
		t.Fatalf("Resolve of an unlisted plain-HTTP registry = %v; want ErrPlainHTTP", err)
	}
	_, err = New(WithRetries(0), WithKeychain(anonymous{}), WithInsecure("127.0.0.1:1")).Fetch(ctx, host+"/app", "sha256:"+zeros)
	if !errors.Is(err, ErrPlainHTTP) {
		t.Fatalf("Fetch with another host listed = %v; want ErrPlainHTTP", err)
	}
	if _, err := testClient(host).Resolve(ctx, host+"/app:v1"); err != nil {
		t.Fatalf("Resolve of a listed registry: %v", err)
	}
}

// TestRegistryDown: an unreachable registry is an error naming it, never "no evidence".
func TestRegistryDown(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	host := strings.TrimPrefix(srv.URL, "http://")
	srv.Close()
	got, err := testClient(host, WithRetries(1)).Fetch(ctxT(t), host+"/app", "sha256:"+zeros)
	if err == nil || got != nil {
		t.Fatalf("Fetch from a stopped registry = %v, %v; want an error", got, err)
	}
	if !strings.Contains(err.Error(), "registry "+host) || !strings.Contains(err.Error(), "repository app") {
		t.Errorf("error does not name registry and repository: %v", err)
	}
}

// TestFetchBadInput: malformed digests and repositories are errors before any request.
func TestFetchBadInput(t *testing.T) {
	c := New()
	for _, tt := range []struct{ repo, digest string }{
		{"127.0.0.1:1/app", "sha256:short"},
		{"127.0.0.1:1/app", "latest"},
		{"127.0.0.1:1/App Upper", "sha256:" + zeros},
	} {
		if got, err := c.Fetch(ctxT(t), tt.repo, tt.digest); err == nil {
			t.Errorf("Fetch(%q, %q) = %v, nil; want an error", tt.repo, tt.digest, got)
		}
	}
}

// TestTimeout: a registry that stalls longer than WithTimeout fails the request; the
// caller gets an error, not an empty answer.
func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	host := startGGCR(t, true, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/referrers/") {
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}
			h.ServeHTTP(w, r)
		})
	})
	defer close(release)
	got, err := testClient(host, WithTimeout(50*time.Millisecond), WithRetries(0)).Fetch(ctxT(t), host+"/app", "sha256:"+zeros)
	if err == nil || got != nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Fetch from a stalled registry = %v, %v; want a deadline error", got, err)
	}
}

// TestAttachMissingImage: attaching to an image the registry does not have is an error.
func TestAttachMissingImage(t *testing.T) {
	host := startGGCR(t, true, nil)
	err := testClient(host).Attach(ctxT(t), host+"/app:nope", []Artifact{{Name: "a.link", MediaType: MediaTypeInTotoLink, Data: []byte("{}")}})
	if err == nil || !isNotFound(err) || !strings.Contains(err.Error(), "registry "+host) {
		t.Fatalf("Attach to a missing image = %v; want a 404 error naming the registry", err)
	}
}

// TestPaddedPort: a reference or an insecure-list entry with a padded port reaches the
// same registry, and Resolve names it in the canonical spelling policies match; a port out
// of range is refused before any request.
func TestPaddedPort(t *testing.T) {
	host := startGGCR(t, true, nil)
	ctx := ctxT(t)
	pushImage(t, host, "app", "v1")
	h, port, _ := strings.Cut(host, ":")
	padded := h + ":00" + port
	res, err := New(WithRetries(0), WithKeychain(anonymous{}), WithInsecure(padded)).Resolve(ctx, padded+"/app:v1")
	if err != nil {
		t.Fatalf("Resolve through %s: %v", padded, err)
	}
	if res.Repository != host+"/app" || res.Ref != host+"/app:v1" {
		t.Errorf("Resolved %q, %q; want %q, %q", res.Repository, res.Ref, host+"/app", host+"/app:v1")
	}
	if _, err := testClient(host).Fetch(ctx, h+":99999/app", "sha256:"+zeros); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("Fetch with port 99999 = %v; want an error saying it is out of range", err)
	}
}
