package intoto

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/reason"
)

// nestedSublayouts delegates step "s" to a sublayout signed by bob, whose step "s" is
// again delegated, depth times; the innermost level has bob's link for "s".
func nestedSublayouts(t *testing.T, depth int) error {
	testKeys(t)
	ks := map[string]any{tk.bob.ID: pubDict(t, tk.bob)}
	layoutDoc := func() map[string]any {
		return map[string]any{"_type": "layout", "expires": "2099-01-01T00:00:00Z", "keys": ks,
			"steps":   []any{stepDoc("s", 1, []*keys.Signer{tk.bob}, nil, rules("ALLOW *"), rules("ALLOW *"))},
			"inspect": []any{}}
	}
	files := map[string][]byte{}
	dir := ""
	for i := 0; i < depth; i++ {
		files[dir+"s."+tk.bob.ID[:8]+".link"] = marshalSigned(t, signMetablock(t, layoutDoc(), tk.bob))
		dir += "s." + tk.bob.ID[:8] + "/"
	}
	l := &linkSpec{signers: []*keys.Signer{tk.bob}, doc: linkDocMap("s", nil, arts("a", "1"), arts("b", "2"))}
	files[dir+"s.link"] = l.encode(t)
	links, err := NewLinks(files)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Verify(signMetablock(t, layoutDoc(), tk.owner), []*keys.Key{tk.owner.Key}, links,
		WithTime(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)))
	return err
}

func TestSublayoutDepthLimit(t *testing.T) {
	if err := nestedSublayouts(t, MaxSublayoutDepth); err != nil {
		t.Fatalf("depth %d: %v", MaxSublayoutDepth, err)
	}
	err := nestedSublayouts(t, MaxSublayoutDepth+1)
	if err == nil || reason.KindOf(err) != reason.Malformed || !strings.Contains(err.Error(), "nest deeper than") {
		t.Fatalf("depth %d: %v", MaxSublayoutDepth+1, err)
	}
}

func TestLinksPerStepLimit(t *testing.T) {
	s := baseScenario(t)
	base := s.link("test")
	for i := 0; i < MaxLinksPerStep; i++ {
		l := *base
		l.file = fmt.Sprintf("copy-%d.link", i)
		s.links = append(s.links, &l)
	}
	_, err := s.verify(t, nil, WithImage(testImage()))
	if err == nil || reason.KindOf(err) != reason.Malformed || !strings.Contains(err.Error(), `step "test": 65 candidate links, over the limit of 64`) {
		t.Fatalf("err = %v", err)
	}
}
