package ctrd

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"go.uber.org/zap"
)

// entry is one image record of the namespace, walked.
type entry struct {
	target  digest.Digest
	binds   []binding
	partial bool // some platform's manifest was absent when walked
	failed  bool // the walk failed: binds are empty, and the next sync walks it again
}

// catalog maps image configs to the image records (by name) that lead to them. It is the
// hook path's cache: a lookup is a map read. Image events and misses refresh it; the
// bindings themselves are content-addressed facts and never go stale.
type catalog struct {
	mu       sync.RWMutex
	byName   map[string]*entry
	byConfig map[digest.Digest]map[string]struct{}
}

func newCatalog() *catalog {
	return &catalog{byName: map[string]*entry{}, byConfig: map[digest.Digest]map[string]struct{}{}}
}

// put records (or, with e == nil, forgets) the image record name. It reports whether the
// record changed.
func (c *catalog) put(name string, e *entry) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.byName[name]
	if old != nil {
		if e != nil && old.target == e.target && slices.EqualFunc(old.binds, e.binds, bindingEqual) {
			old.partial, old.failed = e.partial, e.failed
			return false
		}
		for _, b := range old.binds {
			if names := c.byConfig[b.Config]; names != nil {
				delete(names, name)
				if len(names) == 0 {
					delete(c.byConfig, b.Config)
				}
			}
		}
		delete(c.byName, name)
	}
	if e == nil {
		return old != nil
	}
	c.byName[name] = e
	for _, b := range e.binds {
		names := c.byConfig[b.Config]
		if names == nil {
			names = map[string]struct{}{}
			c.byConfig[b.Config] = names
		}
		names[name] = struct{}{}
	}
	return true
}

func bindingEqual(a, b binding) bool {
	return a.Config == b.Config && slices.Equal(a.Chain, b.Chain)
}

// lookup returns the digests proven to lead to config, and the names of the image records
// they come from (sorted). ok is false when no record leads to config.
func (c *catalog) lookup(config digest.Digest) (digests []string, names []string, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	set := c.byConfig[config]
	if len(set) == 0 {
		return nil, nil, false
	}
	seen := map[digest.Digest]struct{}{}
	for name := range set {
		names = append(names, name)
		for _, b := range c.byName[name].binds {
			if b.Config != config {
				continue // another platform of the same index
			}
			for _, d := range b.Chain {
				if _, dup := seen[d]; !dup {
					seen[d] = struct{}{}
					digests = append(digests, d.String())
				}
			}
		}
	}
	slices.Sort(digests)
	slices.Sort(names)
	return digests, names, true
}

// get returns the walked entry for an image record name.
func (c *catalog) get(name string) (*entry, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.byName[name]
	return e, ok
}

func (c *catalog) names() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]string, 0, len(c.byName))
	for n := range c.byName {
		out = append(out, n)
	}
	return out
}

// stale reports whether some record's walk failed or found a platform's manifest absent.
func (c *catalog) stale() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, e := range c.byName {
		if e.failed || e.partial {
			return true
		}
	}
	return false
}

func (c *catalog) configs() []digest.Digest {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]digest.Digest, 0, len(c.byConfig))
	for d := range c.byConfig {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// refresher keeps a catalog in step with containerd's image store.
type refresher struct {
	cat    *catalog
	binder *binder
	log    *zap.Logger
	// syncMu serializes full syncs. Syncs are numbered as they start; done is the number
	// of the last one that succeeded. A caller that finds done beyond the number current
	// when it arrived reuses that sync: it started later, so it saw everything the caller
	// could expect.
	syncMu  sync.Mutex
	started atomic.Uint64
	done    atomic.Uint64
	// watching counts event subscriptions (Watch) that are live and whose first sync
	// succeeded: while one is, every change reaches the catalog as an event, and a listing
	// would only repeat what the catalog holds.
	watching atomic.Int32
}

// current reports whether the catalog can be served without listing containerd's images
// again: an event subscription keeps it in step, and no record waits for a walk to be
// retried (failed or partial ones are walked again only by a sync).
func (r *refresher) current() bool {
	return r.watching.Load() > 0 && !r.cat.stale()
}

// index walks one image record and records it. A record that cannot be walked is
// recorded with no bindings (so it no longer vouches for anything) and the error returned;
// the next sync walks it again, since the cause may have been transient (containerd's
// content service restarting) and nothing else would bring the record back.
func (r *refresher) index(ctx context.Context, img images.Image, force bool) (changed bool, err error) {
	if old, ok := r.cat.get(img.Name); ok && !force && !old.failed && old.target == img.Target.Digest {
		return false, nil
	}
	binds, partial, err := r.binder.walk(ctx, img.Target)
	if err != nil {
		if ctx.Err() != nil {
			return false, err // interrupted: keep what we knew
		}
		changed := r.cat.put(img.Name, &entry{target: img.Target.Digest, failed: true})
		return changed, err
	}
	return r.cat.put(img.Name, &entry{target: img.Target.Digest, binds: binds, partial: partial}), nil
}

// refreshName re-reads one image record after an event (or to re-check a partial one).
func (r *refresher) refreshName(ctx context.Context, store imageStore, name string) (changed bool, err error) {
	img, err := store.Get(ctx, name)
	if errdefs.IsNotFound(err) {
		return r.cat.put(name, nil), nil
	}
	if err != nil {
		return false, err
	}
	return r.index(ctx, img, true)
}

// sync lists every image record, walks those that are new or whose target moved, and
// forgets deleted ones. It returns the names whose bindings changed. Callers that queued
// behind a sync which started after them get that sync's result instead of another one.
func (r *refresher) sync(ctx context.Context, store imageStore) (changed []string, err error) {
	arrival := r.started.Load()
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	if r.done.Load() > arrival {
		return nil, nil
	}
	n := r.started.Add(1)
	imgs, err := store.List(ctx)
	if err != nil {
		return nil, err
	}
	listed := make(map[string]struct{}, len(imgs))
	for _, img := range imgs {
		listed[img.Name] = struct{}{}
		ch, err := r.index(ctx, img, false)
		if ctx.Err() != nil {
			return changed, ctx.Err()
		}
		if err != nil {
			r.log.Warn("cannot bind image record to its configs", zap.String("image", img.Name), zap.Error(err))
		}
		if ch {
			changed = append(changed, img.Name)
		}
	}
	for _, name := range r.cat.names() {
		if _, ok := listed[name]; !ok && r.cat.put(name, nil) {
			changed = append(changed, name)
		}
	}
	r.done.Store(n)
	return changed, nil
}
