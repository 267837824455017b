package ctrd

// The binding logic runs against containerd's real local content store (the one behind
// the daemon's content service); image records and events come from small fakes, since
// the metadata store needs a bolt database. test/e2e covers a real containerd.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	eventtypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/containerd/nri/pkg/api"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"tollgate.dev/tollgate/policy"
)

func TestResolveBinding(t *testing.T) {
	f := newFixture(t)
	cAPI, cArm, cOther := configDigest("api amd64"), configDigest("api arm64"), configDigest("other")
	mAPI := f.manifest(cAPI, true)
	mArm := f.manifest(cArm, false) // another platform: never pulled
	idx := f.index(onPlatform(mAPI, "linux/amd64"), onPlatform(mArm, "linux/arm64"))
	mOther := f.manifest(cOther, true)
	idxOther := f.index(onPlatform(mOther, "linux/amd64"))

	f.image("ghcr.io/acme/api:1.0", idx)
	f.image("ghcr.io/acme/api@"+idx.Digest.String(), idx)
	f.image(cAPI.String(), idx) // the CRI plugin's record by image ID
	f.image("ghcr.io/acme/other:1", idxOther)
	f.image("ghcr.io/acme/api:by-manifest", mAPI)
	c := f.client()
	ctx := context.Background()

	tests := []struct {
		name string
		ref  Ref
		want policy.Image
	}{
		{
			name: "config digest: the platform manifest and its index, nothing else",
			ref:  Ref{UserName: "ghcr.io/acme/api:1.0", Name: "ghcr.io/acme/api:1.0", ConfigDigest: cAPI.String()},
			want: policy.Image{Ref: "ghcr.io/acme/api:1.0", Repository: "ghcr.io/acme/api",
				ConfigDigest: cAPI.String(), Digests: strs(mAPI, idx)},
		},
		{
			name: "the user's record names the platform manifest directly",
			ref:  Ref{UserName: "ghcr.io/acme/api:by-manifest", ConfigDigest: cAPI.String()},
			want: policy.Image{Ref: "ghcr.io/acme/api:by-manifest", Repository: "ghcr.io/acme/api",
				ConfigDigest: cAPI.String(), Digests: strs(mAPI, idx)},
		},
		{
			name: "a user name that does not lead to the config is not used as Ref",
			ref:  Ref{UserName: "ghcr.io/acme/other:1", ConfigDigest: cAPI.String()},
			want: policy.Image{Ref: "ghcr.io/acme/api:1.0", Repository: "ghcr.io/acme/api",
				ConfigDigest: cAPI.String(), Digests: strs(mAPI, idx)},
		},
		{
			name: "no config digest (containerd < 2.4): the named image's config for this platform",
			ref:  Ref{UserName: "ghcr.io/acme/other:1"},
			want: policy.Image{Ref: "ghcr.io/acme/other:1", Repository: "ghcr.io/acme/other",
				ConfigDigest: cOther.String(), Digests: strs(mOther, idxOther)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.ResolveRef(ctx, tt.ref)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestResolveFromNRIContainer(t *testing.T) {
	f := newFixture(t)
	cfg := configDigest("nginx")
	m := f.manifest(cfg, true)
	f.image("docker.io/library/nginx:1.25", m)
	got, err := f.client().Resolve(context.Background(), &api.Container{
		Annotations: map[string]string{ImageNameAnnotation: "nginx:1.25"},
		Image:       &api.Image{Name: "docker.io/library/nginx:1.25", Digest: m.Digest.String(), ConfigDigest: cfg.String()},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := policy.Image{Ref: "docker.io/library/nginx:1.25", Repository: "docker.io/library/nginx",
		ConfigDigest: cfg.String(), Digests: strs(m)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestResolveFailures(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		setup func(f *fixture) Ref
		want  string
	}{
		{
			name: "oversized manifest is not read",
			setup: func(f *fixture) Ref {
				big := f.blob(ocispec.MediaTypeImageManifest, append([]byte(`{"config":{"digest":"`+configDigest("x").String()+`"},"pad":"`), append(bytes.Repeat([]byte("a"), 5000), '"', '}')...), true)
				f.image("ghcr.io/acme/big:1", big)
				return Ref{UserName: "ghcr.io/acme/big:1", ConfigDigest: configDigest("x").String()}
			},
			want: "no image in containerd namespace",
		},
		{
			name: "tampered blob on disk",
			setup: func(f *fixture) Ref {
				m := f.manifest(configDigest("t"), true)
				p := filepath.Join(f.root, "blobs", "sha256", m.Digest.Encoded())
				data, _ := os.ReadFile(p)
				os.Chmod(p, 0o644)
				os.WriteFile(p, bytes.Replace(data, []byte(configDigest("t").Encoded()), []byte(configDigest("u").Encoded()), 1), 0o644)
				f.image("ghcr.io/acme/t:1", m)
				return Ref{ConfigDigest: configDigest("u").String()}
			},
			want: "no image in containerd namespace",
		},
		{
			name:  "neither config digest nor name",
			setup: func(*fixture) Ref { return Ref{} },
			want:  "neither the image config digest nor the image name",
		},
		{
			name:  "unknown image name without config digest",
			setup: func(*fixture) Ref { return Ref{UserName: "ghcr.io/acme/ghost:1"} },
			want:  `no image named ghcr.io/acme/ghost:1 in containerd namespace "k8s.io"`,
		},
		{
			name:  "malformed config digest",
			setup: func(*fixture) Ref { return Ref{ConfigDigest: "sha256:xyz"} },
			want:  "image config digest",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			ref := tt.setup(f)
			_, err := f.client(WithLimits(Limits{MaxBlobBytes: 4096})).ResolveRef(ctx, ref)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestWalkRejects(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		limits Limits
		target func(f *fixture) ocispec.Descriptor
		want   error
		msg    string
	}{
		{
			name:   "oversized index",
			limits: Limits{MaxBlobBytes: 300},
			target: func(f *fixture) ocispec.Descriptor {
				var kids []ocispec.Descriptor
				for i := range 5 {
					kids = append(kids, f.manifest(configDigest(fmt.Sprint(i)), true))
				}
				return f.index(kids...)
			},
			want: ErrTooLarge,
		},
		{
			name: "descriptor size lies",
			target: func(f *fixture) ocispec.Descriptor {
				d := f.manifest(configDigest("a"), true)
				d.Size--
				return d
			},
			msg: "descriptor says",
		},
		{
			name:   "too many children",
			limits: Limits{MaxChildren: 2},
			target: func(f *fixture) ocispec.Descriptor {
				m := f.manifest(configDigest("a"), true)
				return f.index(m, m, m)
			},
			msg: "more than the limit",
		},
		{
			name:   "nested too deep",
			limits: Limits{MaxDepth: 1},
			target: func(f *fixture) ocispec.Descriptor {
				return f.index(f.index(f.manifest(configDigest("a"), true)))
			},
			msg: "nested deeper",
		},
		{
			name: "manifest bytes referenced as an index",
			target: func(f *fixture) ocispec.Descriptor {
				d := f.manifest(configDigest("a"), true)
				d.MediaType = ocispec.MediaTypeImageIndex
				return d
			},
			msg: "declares media type",
		},
		{
			name: "index without mediaType referenced as a manifest",
			target: func(f *fixture) ocispec.Descriptor {
				kid := f.manifest(configDigest("a"), true)
				return f.blob(ocispec.MediaTypeImageManifest, []byte(`{"schemaVersion":2,"manifests":[`+mustJSON(kid)+`]}`), true)
			},
			msg: "as an index would",
		},
		{
			name: "malformed JSON",
			target: func(f *fixture) ocispec.Descriptor {
				return f.blob(ocispec.MediaTypeImageManifest, []byte(`{"config":`), true)
			},
			msg: "malformed JSON",
		},
		{
			name: "unsupported target",
			target: func(f *fixture) ocispec.Descriptor {
				return f.blob("application/vnd.docker.distribution.manifest.v1+prettyjws", []byte(`{}`), true)
			},
			msg: "unsupported media type",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			lim := DefaultLimits
			if tt.limits.MaxBlobBytes > 0 {
				lim.MaxBlobBytes = tt.limits.MaxBlobBytes
			}
			if tt.limits.MaxChildren > 0 {
				lim.MaxChildren = tt.limits.MaxChildren
			}
			if tt.limits.MaxDepth > 0 {
				lim.MaxDepth = tt.limits.MaxDepth
			}
			binds, _, err := newBinder(f.cs, lim).walk(ctx, tt.target(f))
			if err == nil {
				t.Fatalf("walk succeeded with %v", binds)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error = %v, want %v", err, tt.want)
			}
			if tt.msg != "" && !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error = %v, want it to contain %q", err, tt.msg)
			}
		})
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// An image that fails to walk stops vouching for what it vouched for before.
func TestRetargetedImageDropsOldBinding(t *testing.T) {
	f := newFixture(t)
	old, moved := configDigest("old"), configDigest("new")
	mOld, mNew := f.manifest(old, true), f.manifest(moved, true)
	f.image("ghcr.io/acme/api:latest", mOld)
	c := f.client()
	ctx := context.Background()
	if _, err := c.ResolveRef(ctx, Ref{ConfigDigest: old.String()}); err != nil {
		t.Fatal(err)
	}
	f.image("ghcr.io/acme/api:latest", mNew) // tag moved; no event delivered
	if _, err := c.ResolveRef(ctx, Ref{ConfigDigest: moved.String()}); err != nil {
		t.Fatalf("new target not found through the miss path: %v", err)
	}
	if _, err := c.ResolveRef(ctx, Ref{ConfigDigest: old.String()}); err == nil {
		t.Fatal("old config still resolves after its only image moved")
	}
}

func TestWarmResolveDoesNotCallContainerd(t *testing.T) {
	f := newFixture(t)
	cfg := configDigest("a")
	f.image("ghcr.io/acme/a:1", f.manifest(cfg, true))
	c := f.client()
	for range 3 {
		if _, err := c.ResolveRef(context.Background(), Ref{ConfigDigest: cfg.String()}); err != nil {
			t.Fatal(err)
		}
	}
	if f.store.lists != 1 {
		t.Errorf("image list calls = %d, want 1 (warm lookups are served from memory)", f.store.lists)
	}
}

func TestListAndWatch(t *testing.T) {
	f := newFixture(t)
	cA, cB := configDigest("a"), configDigest("b")
	mA := f.manifest(cA, true)
	f.image("ghcr.io/acme/a:1", mA)
	c := f.client(WithNamespace("k8s.io"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	list, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ConfigDigest != cA.String() || list[0].Ref != "ghcr.io/acme/a:1" {
		t.Fatalf("List = %+v", list)
	}

	got := make(chan policy.Image, 8)
	done := make(chan error, 1)
	go func() { done <- c.Watch(ctx, func(img policy.Image) { got <- img }) }()
	sub := <-f.subs.subs
	if fl := f.subs.filters[0]; len(fl) != 3 || !strings.Contains(fl[0], `namespace=="k8s.io"`) || !strings.Contains(fl[0], `topic=="/images/create"`) {
		t.Errorf("subscription filters = %q", fl)
	}

	// A pull: content first, then the record, then the event.
	idxB := f.index(onPlatform(f.manifest(cB, true), "linux/amd64"))
	f.image("ghcr.io/acme/b:2", idxB)
	sub.ch <- envelope(t, "default", topicCreate, &eventtypes.ImageCreate{Name: "ghcr.io/acme/b:2"}) // other namespace: ignored
	sub.ch <- envelope(t, "k8s.io", topicCreate, &eventtypes.ImageCreate{Name: "ghcr.io/acme/b:2"})
	select {
	case img := <-got:
		if img.ConfigDigest != cB.String() || img.Ref != "ghcr.io/acme/b:2" || len(img.Digests) != 2 {
			t.Errorf("Watch reported %+v", img)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pre-verification call for the new image")
	}

	// Deletion: the config no longer resolves.
	f.store.del("ghcr.io/acme/b:2")
	sub.ch <- envelope(t, "k8s.io", topicDelete, &eventtypes.ImageDelete{Name: "ghcr.io/acme/b:2"})
	// The stream breaks (containerd restarts); an image arrives meanwhile.
	cC := configDigest("c")
	f.image("ghcr.io/acme/c:3", f.manifest(cC, true))
	sub.errs <- errors.New("transport is closing")
	<-f.subs.subs // resubscribed
	select {
	case img := <-got:
		if img.ConfigDigest != cC.String() {
			t.Errorf("after resubscribing, Watch reported %+v, want config %s", img, cC)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("image added while the stream was down was not reported")
	}
	if _, _, ok := mustRef(t, c).cat.lookup(cB); ok {
		t.Error("deleted image still in the catalog")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Watch returned %v", err)
	}
}

func mustRef(t *testing.T, c *Client) *refresher {
	_, r, err := c.connect()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func BenchmarkResolveWarm(b *testing.B) {
	f := newFixture(b)
	cfg := configDigest("bench")
	m := f.manifest(cfg, true)
	f.image("ghcr.io/acme/api:1", f.index(onPlatform(m, "linux/amd64")))
	for i := range 200 {
		f.image(fmt.Sprintf("ghcr.io/acme/other%d:1", i), f.manifest(configDigest(fmt.Sprint(i)), true))
	}
	c := f.client()
	ctr := &api.Container{Image: &api.Image{Name: "ghcr.io/acme/api:1", ConfigDigest: cfg.String()}}
	ctx := context.Background()
	if _, err := c.Resolve(ctx, ctr); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Resolve(ctx, ctr); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzParseNode(f *testing.F) {
	cfg := configDigest("a")
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: ocispec.Descriptor{Digest: cfg}}
	mb, _ := json.Marshal(m)
	ib, _ := json.Marshal(ocispec.Index{MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mb)}}})
	for _, seed := range [][]byte{mb, ib, []byte(`{}`), []byte(`{"manifests":null}`), []byte(`[`), []byte(`{"config":{"digest":"sha256:"}}`)} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, data []byte, asIndex bool) {
		mt := ocispec.MediaTypeImageManifest
		if asIndex {
			mt = ocispec.MediaTypeImageIndex
		}
		n, err := parseNode(ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(data)}, data, DefaultLimits)
		if err != nil {
			return
		}
		if n.isIndex != asIndex {
			t.Fatalf("parsed as index=%v, referenced as index=%v", n.isIndex, asIndex)
		}
		if !asIndex && n.config.Validate() != nil {
			t.Fatalf("manifest accepted with invalid config digest %q", n.config)
		}
		if len(n.children) > DefaultLimits.MaxChildren {
			t.Fatalf("%d children accepted", len(n.children))
		}
	})
}

// flakyProvider fails ReaderAt while broken is set, as containerd's content service does
// while it restarts.
type flakyProvider struct {
	content.Provider
	broken atomic.Bool
}

func (p *flakyProvider) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if p.broken.Load() {
		return nil, fmt.Errorf("connection error: %w", errdefs.ErrUnavailable)
	}
	return p.Provider.ReaderAt(ctx, desc)
}

// A record whose walk failed on a transient content-store error must be walked again on
// the next miss: otherwise its config stays unresolvable (every create denied) until an
// image event happens to arrive for it.
func TestTransientWalkFailureIsRetried(t *testing.T) {
	f := newFixture(t)
	cfg := configDigest("flaky")
	m := f.manifest(cfg, true)
	f.image("ghcr.io/acme/flaky:1", m)
	p := &flakyProvider{Provider: f.cs}
	p.broken.Store(true)
	c := newWithBackend(&backend{images: f.store, content: p, events: f.subs})
	ctx := context.Background()
	if _, err := c.ResolveRef(ctx, Ref{ConfigDigest: cfg.String()}); err == nil {
		t.Fatal("resolved while the content store was failing")
	}
	p.broken.Store(false)
	img, err := c.ResolveRef(ctx, Ref{ConfigDigest: cfg.String()})
	if err != nil {
		t.Fatalf("still unresolvable after the content store recovered: %v", err)
	}
	if want := strs(m); !slices.Equal(img.Digests, want) {
		t.Errorf("digests = %v, want %v", img.Digests, want)
	}
}

// TestResolvePaddedPort: an image record spelled with a padded or default port is the
// canonical repository for policies and the evidence cache; its record is still found by
// the name containerd gave it.
func TestResolvePaddedPort(t *testing.T) {
	f := newFixture(t)
	cfg := configDigest("padded")
	m := f.manifest(cfg, true)
	f.image("ghcr.io:0443/acme/api:v1", m)
	f.image("localhost:05000/x:v1", m)
	for _, tt := range []struct{ name, ref, repo string }{
		{"ghcr.io:0443/acme/api:v1", "ghcr.io/acme/api:v1", "ghcr.io/acme/api"},
		{"localhost:05000/x:v1", "localhost:5000/x:v1", "localhost:5000/x"},
	} {
		got, err := f.client().ResolveRef(context.Background(), Ref{UserName: tt.name, ConfigDigest: cfg.String()})
		if err != nil {
			t.Fatal(err)
		}
		if got.Ref != tt.ref || got.Repository != tt.repo {
			t.Errorf("%s: Ref %q, Repository %q; want %q, %q", tt.name, got.Ref, got.Repository, tt.ref, tt.repo)
		}
	}
}

// While Watch keeps the catalog in step, List (each policy reload) serves the catalog and
// does not list every image again; it lists when no subscription is live, or when a record
// waits for its walk to be retried.
func TestListServesTheWatchedCatalog(t *testing.T) {
	f := newFixture(t)
	cA, cB := configDigest("a"), configDigest("b")
	f.image("ghcr.io/acme/a:1", f.manifest(cA, true))
	c := f.client(WithNamespace("k8s.io"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lists := func() int { f.store.mu.Lock(); defer f.store.mu.Unlock(); return f.store.lists }

	got := make(chan policy.Image, 8)
	done := make(chan error, 1)
	go func() { done <- c.Watch(ctx, func(img policy.Image) { got <- img }) }()
	sub := <-f.subs.subs
	<-got // the first sync reports image a
	ref := mustRef(t, c)
	for deadline := time.Now().Add(5 * time.Second); ref.watching.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the watch never counted itself live")
		}
	}
	f.image("ghcr.io/acme/b:1", f.manifest(cB, true))
	sub.ch <- envelope(t, "k8s.io", topicCreate, &eventtypes.ImageCreate{Name: "ghcr.io/acme/b:1"})
	<-got
	before := lists()
	list, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Errorf("List = %+v, want images a and b", list)
	}
	if n := lists() - before; n != 0 {
		t.Errorf("List listed containerd's images %d times while the watch kept the catalog current", n)
	}

	// A record whose walk failed is retried by a listing.
	ref.cat.put("ghcr.io/acme/broken:1", &entry{target: configDigest("x"), failed: true})
	if _, err := c.List(ctx); err != nil {
		t.Fatal(err)
	}
	if n := lists() - before; n != 1 {
		t.Errorf("%d listings with a failed record in the catalog, want 1", n)
	}

	// The stream breaks: until the watch is live again, List lists.
	cancel()
	<-done
	if ref.watching.Load() != 0 {
		t.Fatal("the watch still counts itself live after it returned")
	}
	if _, err := c.List(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := lists() - before; n != 2 {
		t.Errorf("%d listings after the watch ended, want 2", n)
	}
}
