package ctrd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/platforms"
	"github.com/containerd/typeurl/v2"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
)

// fixture is a content store plus image records.
type fixture struct {
	t     testing.TB
	root  string
	cs    content.Store
	store *fakeImages
	subs  *fakeEvents
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	root := t.TempDir()
	cs, err := local.NewStore(root)
	if err != nil {
		t.Fatal(err)
	}
	log.L.Logger.SetLevel(logrus.ErrorLevel) // the store warns that tmpfs lacks fsverity
	return &fixture{t: t, root: root, cs: cs, store: &fakeImages{m: map[string]images.Image{}}, subs: newFakeEvents()}
}

func (f *fixture) client(opts ...Option) *Client {
	return newWithBackend(&backend{images: f.store, content: f.cs, events: f.subs}, opts...)
}

// blob writes data (unless skip) and returns its descriptor.
func (f *fixture) blob(mediaType string, data []byte, write bool) ocispec.Descriptor {
	f.t.Helper()
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
	if write {
		if err := content.WriteBlob(context.Background(), f.cs, desc.Digest.String(), bytes.NewReader(data), desc); err != nil {
			f.t.Fatal(err)
		}
	}
	return desc
}

func configDigest(s string) digest.Digest { return digest.FromString("config " + s) }

// manifest writes an OCI manifest naming config, and returns its descriptor.
func (f *fixture) manifest(config digest.Digest, write bool) ocispec.Descriptor {
	m := ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: config, Size: 2},
		Layers:    []ocispec.Descriptor{},
	}
	m.SchemaVersion = 2
	data, _ := json.Marshal(m)
	return f.blob(ocispec.MediaTypeImageManifest, data, write)
}

func (f *fixture) index(children ...ocispec.Descriptor) ocispec.Descriptor {
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: children}
	idx.SchemaVersion = 2
	data, _ := json.Marshal(idx)
	return f.blob(ocispec.MediaTypeImageIndex, data, true)
}

func onPlatform(d ocispec.Descriptor, p string) ocispec.Descriptor {
	pl := platforms.MustParse(p)
	d.Platform = &pl
	return d
}

func (f *fixture) image(name string, target ocispec.Descriptor) {
	f.store.set(images.Image{Name: name, Target: target})
}

// fakeImages is an image store.
type fakeImages struct {
	mu    sync.Mutex
	m     map[string]images.Image
	lists int
}

func (s *fakeImages) set(img images.Image) { s.mu.Lock(); s.m[img.Name] = img; s.mu.Unlock() }
func (s *fakeImages) del(name string)      { s.mu.Lock(); delete(s.m, name); s.mu.Unlock() }

func (s *fakeImages) Get(_ context.Context, name string) (images.Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	img, ok := s.m[name]
	if !ok {
		return images.Image{}, fmt.Errorf("image %q: %w", name, errdefs.ErrNotFound)
	}
	return img, nil
}

func (s *fakeImages) List(context.Context, ...string) ([]images.Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lists++
	var out []images.Image
	for _, img := range s.m {
		out = append(out, img)
	}
	return out, nil
}

// fakeEvents hands out subscriptions the test can feed and break.
type fakeEvents struct {
	subs    chan fakeSub
	filters [][]string
	mu      sync.Mutex
}

type fakeSub struct {
	ch   chan *events.Envelope
	errs chan error
}

func newFakeEvents() *fakeEvents { return &fakeEvents{subs: make(chan fakeSub, 8)} }

func (e *fakeEvents) Subscribe(_ context.Context, filters ...string) (<-chan *events.Envelope, <-chan error) {
	e.mu.Lock()
	e.filters = append(e.filters, filters)
	e.mu.Unlock()
	s := fakeSub{ch: make(chan *events.Envelope), errs: make(chan error, 1)}
	e.subs <- s
	return s.ch, s.errs
}

func envelope(t *testing.T, ns, topic string, ev any) *events.Envelope {
	t.Helper()
	anyv, err := typeurl.MarshalAny(ev)
	if err != nil {
		t.Fatal(err)
	}
	return &events.Envelope{Timestamp: time.Now(), Namespace: ns, Topic: topic, Event: anyv}
}

func strs(ds ...ocispec.Descriptor) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Digest.String())
	}
	slices.Sort(out)
	return out
}
