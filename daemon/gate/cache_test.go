package gate

import (
	"strconv"
	"testing"

	"tollgate.dev/tollgate/policy"
)

func key(i int, gen uint64) (cacheKey, []string) {
	ds := []string{digestOf("m" + strconv.Itoa(i))}
	return cacheKey{imageKey: imageKey{config: digestOf("c" + strconv.Itoa(i)), digests: digestSetHash(ds), gen: gen}, evidence: "v"}, ds
}

func TestCacheBoundedClock(t *testing.T) {
	c := newDecisionCache(64) // 4 per shard
	const now, exp = 1, 1 << 60
	hot, hotDs := key(0, 1)
	c.put(hot, hotDs, policy.Decision{Allowed: true}, exp, now)
	for i := 1; i < 1000; i++ {
		k, ds := key(i, 1)
		c.put(k, ds, policy.Decision{}, exp, now)
		c.get(&hot, hotDs, now) // used between every insertion: the clock spares it
	}
	if n := c.len(); n > 64 {
		t.Fatalf("%d entries, bound 64", n)
	}
	if d, ok := c.get(&hot, hotDs, now); !ok || !d.Allowed {
		t.Fatal("a constantly used entry was evicted")
	}
}

func TestCacheExpiryAndPurge(t *testing.T) {
	c := newDecisionCache(1000)
	k1, ds := key(1, 1)
	c.put(k1, ds, policy.Decision{}, 100, 0)
	if _, ok := c.get(&k1, ds, 99); !ok {
		t.Fatal("live entry missed")
	}
	if _, ok := c.get(&k1, ds, 100); ok {
		t.Fatal("expired entry served")
	}
	k2, ds2 := key(2, 2)
	c.put(k2, ds2, policy.Decision{}, 1000, 0)
	c.purge(2)
	if c.len() != 1 {
		t.Fatalf("%d entries after purging generation 1, want 1", c.len())
	}
	if _, ok := c.get(&k2, ds2, 0); !ok {
		t.Fatal("purge dropped the current generation")
	}
}

func TestDigestSetIdentity(t *testing.T) {
	a, b, c := digestOf("a"), digestOf("b"), digestOf("c")
	if digestSetHash([]string{a, b}) != digestSetHash([]string{b, a}) {
		t.Error("digest set hash depends on order")
	}
	if !sameSet([]string{a, b}, []string{b, a}) || sameSet([]string{a, b}, []string{a, c}) || sameSet([]string{a}, []string{a, b}) {
		t.Error("sameSet")
	}
	// A hash collision (forced here) never serves another set's verdict.
	cc := newDecisionCache(100)
	k, _ := key(1, 1)
	cc.put(k, []string{a}, policy.Decision{Allowed: true}, 1<<60, 0)
	if _, ok := cc.get(&k, []string{c}, 0); ok {
		t.Fatal("served a verdict for another digest set under the same key")
	}
}
