package gate

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tollgate.dev/tollgate/policy"
)

// A fetch through another repository that carries the same manifest digest (a copy of the
// image, or an index containing it) must neither replace the victim's cached evidence nor
// hold back the victim's own fetch.
func TestFetchThroughAnotherRepositoryLeavesTheImageAlone(t *testing.T) {
	for _, tt := range []struct {
		name     string
		attacker func(victim policy.Image) policy.Image
	}{
		{"copy", func(v policy.Image) policy.Image {
			a := imageIn("registry.test/attacker", "copy")
			a.ConfigDigest, a.Digests = v.ConfigDigest, v.Digests
			return a
		}},
		{"index containing it", func(v policy.Image) policy.Image {
			a := imageIn("registry.test/attacker", "index")
			a.ConfigDigest, a.Digests = v.ConfigDigest, []string{digestOf("attacker-index"), v.Digests[0]}
			return a
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			victim := imageIn("registry.test/team", "app")
			attacker := tt.attacker(victim)
			good := map[string][]byte{"prov.dsse.json": []byte("good")}

			// The attacker's image is checked first: its fetch finds nothing.
			e := newGateEnv(t, &fakeEval{})
			e.fetcher.setIn(victim.Repository, victim.Digests[0], good)
			if d, _ := e.gate.Preverify(ctx, attacker); d.Allowed {
				t.Fatalf("attacker's image allowed: %s", d.Message)
			}
			before := e.fetcher.count()
			if d, err := e.gate.Preverify(ctx, victim); err != nil || !d.Allowed {
				t.Fatalf("victim after the attacker's fetch: %v %q", err, d.Message)
			}
			if e.fetcher.count() == before {
				t.Error("the victim's own fetch was held back by the attacker's")
			}

			// The victim's evidence is cached; the attacker's fetch comes after.
			e = newGateEnv(t, &fakeEval{})
			e.fetcher.setIn(victim.Repository, victim.Digests[0], good)
			if d, err := e.gate.Preverify(ctx, victim); err != nil || !d.Allowed {
				t.Fatalf("victim: %v %q", err, d.Message)
			}
			e.clock.Advance(time.Minute) // past the deny TTL: the attacker may fetch
			if d, _ := e.gate.Preverify(ctx, attacker); d.Allowed {
				t.Fatalf("attacker's image allowed: %s", d.Message)
			}
			e.clock.Advance(time.Hour) // every verdict expired: the hook reads the disk again
			e.fetcher.set(victim.Digests[0], nil, errRegistryDown)
			if d := e.decide(victim); !d.Allowed {
				t.Fatalf("victim's cached evidence lost to the attacker's fetch: %s", d.Message)
			}
		})
	}
}

// fillUnreadable writes more files for img's digests into the disk cache than one load
// reads (DefaultLimits.MaxFiles), all digests together.
func fillUnreadable(t testing.TB, cacheDir string, img policy.Image) {
	t.Helper()
	per := 600/len(img.Digests) + 1
	for _, d := range img.Digests {
		files := map[string]string{}
		for i := range per {
			files[fmt.Sprintf("f%03d.link", i)] = "good"
		}
		writeCached(t, cacheDir, img.Repository, d, files)
	}
}

func threeDigests(name string) policy.Image {
	img := testImage(name)
	img.Digests = []string{digestOf(name + "-index"), digestOf(name + "-amd64"), digestOf(name + "-arm64")}
	return img
}

// A disk cache entry that cannot be read (over a limit, damaged) is fetched again and
// replaced, rather than denying the image until it is pruned.
func TestUnreadableCacheIsFetchedAgain(t *testing.T) {
	ctx := context.Background()
	img := threeDigests("stuck")
	t.Run("preverify", func(t *testing.T) {
		e := newGateEnv(t, &fakeEval{})
		fillUnreadable(t, e.cacheDir, img)
		for _, d := range img.Digests {
			e.fetcher.set(d, map[string][]byte{"prov.dsse.json": []byte("good")}, nil)
		}
		if d, err := e.gate.Preverify(ctx, img); err != nil || !d.Allowed {
			t.Fatalf("Preverify over an unreadable cache entry: %v %q", err, d.Message)
		}
		if n := e.fetcher.count(); n != len(img.Digests) {
			t.Errorf("%d fetches, want one per digest (%d)", n, len(img.Digests))
		}
		if d := e.decide(img); !d.Allowed {
			t.Fatalf("hook after the refetch: %s", d.Message)
		}
	})
	t.Run("hook", func(t *testing.T) {
		e := newGateEnv(t, &fakeEval{})
		fillUnreadable(t, e.cacheDir, img)
		for _, d := range img.Digests {
			e.fetcher.set(d, map[string][]byte{"prov.dsse.json": []byte("good")}, nil)
		}
		// The hook waits for the pre-verification that replaces the entry.
		if d := e.decide(img); !d.Allowed {
			t.Fatalf("hook over an unreadable cache entry: allowed=%v %q", d.Allowed, d.Message)
		}
		if n := e.fetcher.count(); n != len(img.Digests) {
			t.Errorf("%d fetches, want one per digest (%d)", n, len(img.Digests))
		}
	})
	t.Run("hook past the deadline", func(t *testing.T) {
		e := newGateEnv(t, &fakeEval{})
		e.hook = 200 * time.Millisecond
		fillUnreadable(t, e.cacheDir, img)
		for _, d := range img.Digests {
			e.fetcher.set(d, map[string][]byte{"prov.dsse.json": []byte("good")}, nil)
		}
		e.fetcher.mu.Lock()
		e.fetcher.delay = time.Second // the refetch outlasts the deadline
		e.fetcher.mu.Unlock()
		if d := e.decide(img); d.Allowed || !strings.Contains(d.Message, "disk cache") {
			t.Fatalf("hook over an unreadable cache entry: allowed=%v %q", d.Allowed, d.Message)
		}
		waitFor(t, func() bool { return e.decide(img).Allowed })
	})
	t.Run("registry down", func(t *testing.T) {
		e := newGateEnv(t, &fakeEval{})
		fillUnreadable(t, e.cacheDir, img)
		e.fetcher.set(img.Digests[0], nil, errRegistryDown)
		_, err := e.gate.Preverify(ctx, img)
		if err == nil || !strings.Contains(err.Error(), "more than 512") || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("err = %v, want the read error and the fetch's", err)
		}
	})
}

// refresherFunc is a Refresher from a function.
type refresherFunc func(ctx context.Context, repo string, digests []string) (int, error)

func (f refresherFunc) Refresh(ctx context.Context, repo string, digests []string) (int, error) {
	return f(ctx, repo, digests)
}

// A cache that stays unreadable after a successful fetch costs one fetch per deny TTL,
// never a loop.
func TestUnreadableCacheRefetchIsBounded(t *testing.T) {
	ctx := context.Background()
	img := threeDigests("bounded")
	var e *gateEnv
	var fetches atomic.Int64
	e = newGateEnv(t, &fakeEval{}, WithRegistry(refresherFunc(func(context.Context, string, []string) (int, error) {
		fetches.Add(1)
		return 1, nil // "succeeds", and leaves the entry as unreadable as it was
	})))
	fillUnreadable(t, e.cacheDir, img)
	for range 3 {
		if _, err := e.gate.Preverify(ctx, img); err == nil || !strings.Contains(err.Error(), "disk cache") {
			t.Fatalf("err = %v, want the disk cache's read error", err)
		}
		if d := e.decide(img); d.Allowed {
			t.Fatal("allowed over an unreadable cache")
		}
		e.settle()
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d fetches within the deny TTL, want 1", n)
	}
	e.clock.Advance(31 * time.Second)
	e.gate.Preverify(ctx, img)
	if n := fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after the deny TTL, want 2", n)
	}
}
