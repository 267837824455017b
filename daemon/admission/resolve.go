package admission

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"

	"tollgate.dev/tollgate/daemon/registry"
	"tollgate.dev/tollgate/policy"
	"tollgate.dev/tollgate/policy/refname"
)

// Resolver asks a registry what a reference names; *registry.Client implements it.
type Resolver interface {
	Resolve(ctx context.Context, ref string) (*registry.Resolved, error)
}

// imageRef is an image reference of a pod spec, normalized the way the node names it
// (docker.io/library/nginx:latest), so that policies match the same repository and the
// messages read the same.
type imageRef struct {
	Ref        string // normalized, with tag and/or digest
	Repository string // normalized, without tag or digest
	Pull       string // what to ask the registry for: repository@digest, or repository:tag
	Pinned     bool   // names a digest: its resolution never changes
}

func parseImageRef(s string) (imageRef, error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return imageRef{}, fmt.Errorf("image reference %q: %v", s, err)
	}
	named = reference.TagNameOnly(named)
	// One spelling of the registry, as the node keys it: "ghcr.io:0443" is "ghcr.io".
	repo, err := refname.Repository(named.Name())
	if err != nil {
		return imageRef{}, fmt.Errorf("image reference %q: %v", s, err)
	}
	ref := repo + strings.TrimPrefix(named.String(), named.Name())
	r := imageRef{Ref: ref, Repository: repo, Pull: ref}
	if d, ok := named.(reference.Digested); ok {
		// A tag next to a digest is ignored by the runtime; so here.
		r.Pull, r.Pinned = repo+"@"+d.Digest().String(), true
	}
	return r, nil
}

// maxConcurrentResolves bounds the registry resolutions running at once, whatever the
// number of reviews in flight (identical ones are coalesced before this).
const maxConcurrentResolves = 16

// resolver turns references into the policy's image identity: the config digest of the
// manifest (for an index, the manifest of the platform asked for), and the manifest and
// index digests bound to it. Resolutions are cached (a digest reference for long, a tag
// briefly, since tags move), identical in-flight resolutions are coalesced, and errors are
// never cached. Both are keyed by reference and platform, since an index names different
// content for each; a plain manifest is the same content on every platform, so its
// resolution is cached once for all of them.
type resolver struct {
	reg    Resolver
	tagTTL time.Duration
	pinTTL time.Duration
	max    int
	now    func() time.Time
	slots  chan struct{} // bounds concurrent registry resolutions

	mu      sync.Mutex
	cache   map[string]resolved
	flights map[string]*resolveFlight
}

type resolved struct {
	img     policy.Image
	index   bool // the platform chose the manifest
	expires time.Time
}

type resolveFlight struct {
	done  chan struct{}
	img   policy.Image
	index bool
	err   error
}

func newResolver(reg Resolver, tagTTL, pinTTL time.Duration, now func() time.Time) *resolver {
	return &resolver{reg: reg, tagTTL: tagTTL, pinTTL: pinTTL, max: 10_000, now: now,
		slots: make(chan struct{}, maxConcurrentResolves),
		cache: map[string]resolved{}, flights: map[string]*resolveFlight{}}
}

// platformKey keys the resolution of pull for p; anyPlatformKey that of a plain manifest,
// which every platform shares. A NUL never occurs in a reference.
func platformKey(pull string, p platform) string { return pull + "\x00" + p.String() }
func anyPlatformKey(pull string) string          { return pull + "\x00" }

// cachedLocked returns the unexpired resolution of pull for p, if any.
func (r *resolver) cachedLocked(pull string, p platform) (resolved, bool) {
	now := r.now()
	for _, k := range [...]string{platformKey(pull, p), anyPlatformKey(pull)} {
		if c, ok := r.cache[k]; ok && now.Before(c.expires) {
			return c, true
		}
	}
	return resolved{}, false
}

// resolve returns the image identity of ref on platform p, and whether ref is an index
// (else p played no part). The registry work runs detached from ctx (so a caller that
// gives up at its deadline still fills the cache for the retry), bounded by timeout; ctx
// bounds only the wait.
func (r *resolver) resolve(ctx context.Context, ref imageRef, p platform, timeout time.Duration) (policy.Image, bool, error) {
	key := platformKey(ref.Pull, p)
	r.mu.Lock()
	if c, ok := r.cachedLocked(ref.Pull, p); ok {
		r.mu.Unlock()
		img := c.img
		img.Ref, img.Digests = ref.Ref, slices.Clone(img.Digests)
		return img, c.index, nil
	}
	f, running := r.flights[key]
	if !running {
		f = &resolveFlight{done: make(chan struct{})}
		r.flights[key] = f
	}
	r.mu.Unlock()
	if !running {
		go r.run(f, key, ref, p, timeout)
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return policy.Image{}, false, fmt.Errorf("resolve %s: %w", ref.Ref, ctx.Err())
	}
	if f.err != nil {
		return policy.Image{}, false, f.err
	}
	img := f.img
	img.Ref = ref.Ref
	img.Digests = slices.Clone(img.Digests)
	return img, f.index, nil
}

func (r *resolver) run(f *resolveFlight, key string, ref imageRef, p platform, timeout time.Duration) {
	defer func() {
		if rec := recover(); rec != nil {
			f.err = fmt.Errorf("resolve %s: internal error: %v", ref.Ref, rec)
		}
		r.mu.Lock()
		delete(r.flights, key)
		if f.err == nil {
			r.storeLocked(ref, p, f)
		}
		r.mu.Unlock()
		close(f.done)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	select {
	case r.slots <- struct{}{}:
		defer func() { <-r.slots }()
	case <-ctx.Done():
		f.err = fmt.Errorf("resolve %s: too many resolutions waiting for the registry: %w", ref.Ref, ctx.Err())
		return
	}
	res, err := r.reg.Resolve(ctx, ref.Pull)
	if err != nil {
		f.err = err
		return
	}
	f.img, f.err = r.identity(ref, p, res)
	f.index = res.IsIndex()
}

// storeLocked caches a successful resolution for its TTL: under the platform for an
// index, for every platform for a plain manifest.
func (r *resolver) storeLocked(ref imageRef, p platform, f *resolveFlight) {
	ttl := r.tagTTL
	if ref.Pinned {
		ttl = r.pinTTL
	}
	if ttl <= 0 {
		return
	}
	if len(r.cache) >= r.max {
		r.evictLocked()
	}
	key := anyPlatformKey(ref.Pull)
	if f.index {
		key = platformKey(ref.Pull, p)
	}
	r.cache[key] = resolved{img: f.img, index: f.index, expires: r.now().Add(ttl)}
}

// evictLocked drops expired entries, or a tenth of the cache when none has expired.
func (r *resolver) evictLocked() {
	now := r.now()
	for k, c := range r.cache {
		if !now.Before(c.expires) {
			delete(r.cache, k)
		}
	}
	n := r.max / 10
	for k := range r.cache {
		if len(r.cache) < r.max || n <= 0 {
			break
		}
		delete(r.cache, k)
		n--
	}
}

// identity picks the config digest (the manifest's, or platform p's in an index; a plain
// manifest is what the node runs whatever its platform) and the digests bound to it:
// platform manifests first, then the index, the order in which the node lists them (so
// messages name the same digest).
func (r *resolver) identity(ref imageRef, p platform, res *registry.Resolved) (policy.Image, error) {
	if ref.Pinned {
		if _, want, _ := strings.Cut(ref.Pull, "@"); res.Digest != want {
			return policy.Image{}, fmt.Errorf("registry answered %s for %s", res.Digest, ref.Pull)
		}
	}
	img := policy.Image{Ref: ref.Ref, Repository: ref.Repository}
	if !res.IsIndex() {
		if res.ConfigDigest == "" {
			return policy.Image{}, fmt.Errorf("%s: manifest %s names no config", ref.Ref, res.Digest)
		}
		img.ConfigDigest, img.Digests = res.ConfigDigest, []string{res.Digest}
		return img, nil
	}
	for _, m := range res.Manifests {
		if m.ConfigDigest != "" && m.OS == p.OS && m.Architecture == p.Arch &&
			(p.Variant == "" || m.Variant == p.Variant) {
			img.ConfigDigest = m.ConfigDigest
			break
		}
	}
	if img.ConfigDigest == "" {
		return policy.Image{}, fmt.Errorf("%s: index %s has no image for platform %s", ref.Ref, res.Digest, p)
	}
	bound := res.BoundDigests(img.ConfigDigest) // index first, then its manifests
	img.Digests = append(slices.Clone(bound[1:]), bound[0])
	return img, nil
}
