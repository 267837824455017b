package gate

import (
	"context"
	"testing"

	"tollgate.dev/tollgate/daemon/evidence"
	"tollgate.dev/tollgate/daemon/policystore"
	"tollgate.dev/tollgate/daemon/policytest"
	"tollgate.dev/tollgate/daemon/registry"
	"tollgate.dev/tollgate/policy"
	"tollgate.dev/tollgate/policy/hostiletest"
	"tollgate.dev/tollgate/policy/keys"
)

// maxDecisionHeap is issue 12's bound on what one decision on hostile evidence may grow
// the Go heap by; docs/operations.md ("Sizing") adds it up against the memory limit.
const maxDecisionHeap = 48 << 20

// Issue 12, item 1: one decision on hostile evidence at every limit at once (the registry
// client's per-blob limit, the disk cache's per-image limit; Statements and links nobody
// trusted signed, of the required predicate type and bound to the image, with huge member
// counts, deep nesting, duplicated members and the most signatures an envelope may carry)
// grows the Go heap by at most maxDecisionHeap: read from the real disk cache and decided
// by the real policy, as tollgated does. Measured with runtime/metrics, not time.
func TestHostileEvidenceHeap(t *testing.T) {
	dir := t.TempDir()
	ci, err := keys.Generate("ed25519", 0)
	must(t, err)
	policytest.PolicyDir(t, dir, ci, policy.Enforce)
	store := policystore.New(dir)
	if _, err := store.Reload(); err != nil {
		t.Fatal(err)
	}
	cache := evidence.NewCache(t.TempDir(), evidence.DefaultLimits)
	g := New(store, WithEvidenceSources(cache))
	img := imageIn("registry.test/acme", "api")
	files := hostiletest.Evidence(hostiletest.Spec{Digest: img.Digests[0], PredicateType: policytest.Predicate,
		Steps: []string{"build"}, KeyIDs: []string{ci.ID},
		BlobBytes: registry.DefaultMaxArtifactBytes, TotalBytes: int(evidence.DefaultLimits.MaxTotalBytes)})
	must(t, cache.Store(img.Repository, img.Digests[0], files))
	clear(files)
	var d policy.Decision
	peak, allocated := hostiletest.HeapGrowth(func() { d, err = g.Preverify(context.Background(), img) })
	t.Logf("%d MiB of hostile evidence in the disk cache: the decision grew the heap by %.1f MiB at most, allocated %.1f MiB: %s",
		evidence.DefaultLimits.MaxTotalBytes>>20, hostiletest.MiB(peak), hostiletest.MiB(allocated), d.Message)
	if err != nil {
		t.Fatalf("infrastructure error: %v", err)
	}
	if d.Allowed {
		t.Fatalf("hostile evidence allowed: %s", d.Message)
	}
	if peak > maxDecisionHeap {
		t.Errorf("one decision on hostile evidence grew the heap by %.1f MiB, over %d MiB", hostiletest.MiB(peak), maxDecisionHeap>>20)
	}
}
