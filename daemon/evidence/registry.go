package evidence

import (
	"context"
	"errors"
	"fmt"

	"tollgate.dev/tollgate/daemon/registry"
)

// Fetcher reads the evidence a registry holds for subject digests of repo ("registry/path").
// daemon/registry.Client implements it. No evidence is an empty map and a nil error; an
// error is a registry or network failure (never "no evidence").
type Fetcher interface {
	Fetch(ctx context.Context, repo string, digests ...string) (map[string][]byte, error)
}

// Registry outcomes, the values of tollgate_registry_requests_total{outcome}.
const (
	OutcomeFound    = "found"     // evidence returned
	OutcomeNotFound = "not_found" // the registry answered, with no evidence
	OutcomeError    = "error"     // the registry could not be asked, or failed
	// OutcomeCircuitOpen: not asked, since the registry stopped answering the requests
	// before (registry.ErrCircuitOpen); the fetch fails at once instead of waiting.
	OutcomeCircuitOpen = "circuit_open"
)

// Registry refreshes the disk Cache from a registry. It is not a Source itself: the node
// reads registry evidence only through the cache, so that a fetch once made serves every
// later hook from local disk.
type Registry struct {
	fetcher Fetcher
	cache   *Cache
	observe func(outcome string)
}

// NewRegistry returns a Registry that stores what f finds in cache. observe, if not nil,
// is called once per registry request with its outcome.
func NewRegistry(f Fetcher, cache *Cache, observe func(outcome string)) *Registry {
	if observe == nil {
		observe = func(string) {}
	}
	return &Registry{fetcher: f, cache: cache, observe: observe}
}

// Refresh fetches the evidence for each digest through repo (one request per digest, so
// the cache can keep it per digest) and replaces the cache's entries for repo. It returns
// the number of files found. On error the cache keeps what it had: a failed fetch is never
// "no evidence".
//
// The cache reads an image's digests together, within its Limits; Refresh holds what it
// fetched for all the digests to the same Limits, and fails (wrapping ErrOverLimit) rather
// than store a set the cache could not read back.
func (r *Registry) Refresh(ctx context.Context, repo string, digests []string) (int, error) {
	if repo == "" {
		return 0, fmt.Errorf("registry: the image has no repository to fetch evidence from")
	}
	fetched := make(map[string]map[string][]byte, len(digests))
	found := 0
	var total int64
	lim := r.cache.limits
	for _, d := range digests {
		if _, err := digestPath(d); err != nil {
			return 0, fmt.Errorf("registry: %w", err)
		}
		if _, dup := fetched[d]; dup {
			continue // read once, as the cache does
		}
		files, err := r.fetcher.Fetch(ctx, repo, d)
		if err != nil {
			if errors.Is(err, registry.ErrCircuitOpen) {
				r.observe(OutcomeCircuitOpen)
			} else {
				r.observe(OutcomeError)
			}
			return 0, fmt.Errorf("fetch evidence for %s@%s: %w", repo, d, err)
		}
		if len(files) == 0 {
			r.observe(OutcomeNotFound)
		} else {
			r.observe(OutcomeFound)
		}
		fetched[d] = files
		found += len(files)
		for _, data := range files {
			total += int64(len(data))
		}
		if found > lim.MaxFiles {
			return 0, fmt.Errorf("fetch evidence for %s: %w: %d files for the image's %d digests, over the limit of %d",
				repo, ErrOverLimit, found, len(digests), lim.MaxFiles)
		}
		if total > lim.MaxTotalBytes {
			return 0, fmt.Errorf("fetch evidence for %s: %w: over %d bytes for the image's %d digests",
				repo, ErrOverLimit, lim.MaxTotalBytes, len(digests))
		}
	}
	// Store only after every digest answered, so a failure half-way leaves the cache as it was.
	for d, files := range fetched {
		if err := r.cache.Store(repo, d, files); err != nil {
			return 0, fmt.Errorf("cache evidence for %s@%s: %w", repo, d, err)
		}
	}
	return found, nil
}
