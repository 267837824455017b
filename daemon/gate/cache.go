package gate

import (
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"

	"tollgate.dev/tollgate/policy"
)

// imageKey is what a decision depends on besides evidence: the image identity and the
// policy generation. Strings are the request's own (no copy, no allocation); the digest
// set enters as an order-independent hash, and the entry keeps the digests themselves so a
// hash collision can never serve another image's verdict.
//
// Namespace, pod and container are not part of it: policy decides by image content and
// repository only, never by anything a pod author sets (DESIGN §5).
type imageKey struct {
	config  string
	ref     string // only when repo is empty (see makeImageKey)
	repo    string
	digests uint64
	gen     uint64
}

// cacheKey binds a decision to the evidence it was made from. The evidence version comes
// from the evidence index, which is updated whenever evidence is read, so new evidence
// makes the old decision unreachable.
type cacheKey struct {
	imageKey
	evidence string
}

var hashSeed = maphash.MakeSeed()

// digestSetHash hashes a set of digests independently of their order.
func digestSetHash(ds []string) uint64 {
	var h uint64
	for _, d := range ds {
		h += maphash.String(hashSeed, d)
	}
	return h ^ uint64(len(ds))
}

// sameSet reports whether a and b hold the same digests (both are short).
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
outer:
	for _, x := range a {
		for _, y := range b {
			if x == y {
				continue outer
			}
		}
		return false
	}
	return true
}

// evidenceHash keys the evidence index and the registry fetch records: the digest set
// within the repository the image came from. The disk cache is per repository, so what
// one repository's fetch found or failed to find says nothing about another's.
func (k *imageKey) evidenceHash() uint64 { return evidenceHash(k.repo, k.digests) }

func evidenceHash(repo string, digests uint64) uint64 {
	return digests ^ maphash.String(hashSeed, repo)
}

// makeImageKey keys img's content. The name it was asked for under (a tag, a digest: the
// names containerd records for one pull) is left out when the repository is known, because
// the policy then decides by the repository alone: one verification and one verdict serve
// every name of the content. Only without a repository does the policy read the name.
func makeImageKey(img *policy.Image, gen uint64) imageKey {
	k := imageKey{config: img.ConfigDigest, repo: img.Repository, digests: digestSetHash(img.Digests), gen: gen}
	if img.Repository == "" {
		k.ref = img.Ref
	}
	return k
}

const cacheShards = 16

// decisionCache is a bounded map of decisions, evicted with the clock algorithm (a hit
// only sets a flag, so lookups share a read lock) and expired by time. It is sharded so
// that concurrent hooks and pre-verifications rarely meet on a lock.
type decisionCache struct {
	shards   [cacheShards]cacheShard
	perShard int
	entries  atomic.Int64
}

type cacheShard struct {
	mu   sync.RWMutex
	m    map[cacheKey]*cacheEntry
	ring []*cacheEntry
	hand int
}

type cacheEntry struct {
	key      cacheKey
	digests  []string
	decision policy.Decision
	expires  int64 // unix nanoseconds
	used     atomic.Bool
}

func newDecisionCache(size int) *decisionCache {
	if size < cacheShards {
		size = cacheShards
	}
	c := &decisionCache{perShard: (size + cacheShards - 1) / cacheShards}
	for i := range c.shards {
		c.shards[i].m = make(map[cacheKey]*cacheEntry)
	}
	return c
}

func (c *decisionCache) shard(k *cacheKey) *cacheShard {
	h := maphash.String(hashSeed, k.config) ^ k.digests ^ k.gen
	return &c.shards[h%cacheShards]
}

// get returns the live decision for k whose digest set is digests.
func (c *decisionCache) get(k *cacheKey, digests []string, now int64) (policy.Decision, bool) {
	s := c.shard(k)
	s.mu.RLock()
	e := s.m[*k]
	if e == nil || now >= e.expires || !sameSet(e.digests, digests) {
		s.mu.RUnlock()
		return policy.Decision{}, false
	}
	if !e.used.Load() {
		e.used.Store(true)
	}
	d := e.decision
	s.mu.RUnlock()
	return d, true
}

// put stores d for k until expires, evicting the first entry the clock hand finds expired
// or unused since it last passed when the shard is full.
func (c *decisionCache) put(k cacheKey, digests []string, d policy.Decision, expires, now int64) {
	s := c.shard(&k)
	s.mu.Lock()
	defer s.mu.Unlock()
	digests = slices.Clone(digests) // the caller's slice may be reused
	if e := s.m[k]; e != nil {
		e.digests, e.decision, e.expires = digests, d, expires
		return
	}
	e := &cacheEntry{key: k, digests: digests, decision: d, expires: expires}
	if len(s.ring) < c.perShard {
		s.ring = append(s.ring, e)
		s.m[k] = e
		c.entries.Add(1)
		return
	}
	for {
		if s.hand >= len(s.ring) {
			s.hand = 0
		}
		old := s.ring[s.hand]
		if now >= old.expires || !old.used.Swap(false) {
			delete(s.m, old.key)
			s.ring[s.hand] = e
			s.m[k] = e
			s.hand++
			return
		}
		s.hand++
	}
}

// purge drops every entry made under a generation older than gen. Such entries are
// unreachable already (the key holds the generation); this only returns their memory.
func (c *decisionCache) purge(gen uint64) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		kept := s.ring[:0]
		for _, e := range s.ring {
			if e.key.gen >= gen {
				kept = append(kept, e)
			} else {
				delete(s.m, e.key)
				c.entries.Add(-1)
			}
		}
		clear(s.ring[len(kept):])
		s.ring, s.hand = kept, 0
		s.mu.Unlock()
	}
}

func (c *decisionCache) len() int { return int(c.entries.Load()) }

// evidenceIndex remembers, per repository and digest set, the version of the local
// evidence last read for it. The hook uses it to build the cache key without touching the
// disk. Entries keep the repository and digests, so a hash collision is only a miss.
type evidenceIndex struct {
	mu  sync.RWMutex
	m   map[uint64]indexEntry
	max int
}

type indexEntry struct {
	repo    string
	digests []string
	version string
	at      int64 // unix nanoseconds; used by the "fetched recently" index
}

func newEvidenceIndex(size int) *evidenceIndex {
	return &evidenceIndex{m: make(map[uint64]indexEntry), max: max(size, 16)}
}

func (x *evidenceIndex) get(h uint64, repo string, digests []string) (indexEntry, bool) {
	x.mu.RLock()
	e, ok := x.m[h]
	x.mu.RUnlock()
	if !ok || e.repo != repo || !sameSet(e.digests, digests) {
		return indexEntry{}, false
	}
	return e, true
}

func (x *evidenceIndex) set(h uint64, repo string, digests []string, version string, at int64) {
	x.mu.Lock()
	if _, ok := x.m[h]; !ok && len(x.m) >= x.max {
		// Full: forget an arbitrary tenth. A forgotten version only costs one miss.
		n := x.max / 10
		for k := range x.m {
			if n <= 0 {
				break
			}
			delete(x.m, k)
			n--
		}
	}
	x.m[h] = indexEntry{repo: repo, digests: slices.Clone(digests), version: version, at: at}
	x.mu.Unlock()
}

func (x *evidenceIndex) del(h uint64) {
	x.mu.Lock()
	delete(x.m, h)
	x.mu.Unlock()
}
