package intoto

import (
	"reflect"
	"testing"
	"time"

	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/reason"
)

func TestTrace(t *testing.T) {
	img := WithImage(testImage())
	cases := []struct {
		name   string
		mutate func(s *scenario)
		opts   []Option
		stages map[string]Stage
		failed string
		kind   reason.Kind // "" = passes
	}{
		{name: "pass", opts: []Option{img},
			stages: map[string]Stage{"build": Passed, "test": Passed, "package": Passed, "image": Passed}},
		{name: "threshold at the second step", opts: []Option{img}, mutate: func(s *scenario) {
			st := s.step("test")
			st["threshold"], st["pubkeys"] = 2, []string{tk.bob.ID, tk.carol.ID}
		}, stages: map[string]Stage{"build": Signed, "test": Failed}, failed: "test", kind: reason.Threshold},
		{name: "rule violation at the first step", opts: []Option{img}, mutate: func(s *scenario) {
			s.artifacts("build", "products")["backdoor"] = sha('d')
		}, stages: map[string]Stage{"build": Failed, "test": Signed, "package": Signed}, failed: "build", kind: reason.RuleViolation},
		{name: "image inspection mismatch", opts: []Option{WithImage(Image{Digests: []string{"sha256:" + shaHex('9')}, ConfigDigest: testImage().ConfigDigest})},
			stages: map[string]Stage{"build": Passed, "test": Passed, "package": Passed, "image": Failed}, failed: "image", kind: reason.BindingMismatch},
		{name: "layout signature", opts: []Option{img}, mutate: func(s *scenario) { s.layoutSigner = []*keys.Signer{tk.mallory} },
			stages: map[string]Stage{}, kind: reason.BadSignature},
		{name: "expired", opts: []Option{img}, mutate: func(s *scenario) { s.layout["expires"] = "2020-02-03T04:05:06Z" },
			stages: map[string]Stage{}, kind: reason.Expired},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := baseScenario(t)
			if tc.mutate != nil {
				tc.mutate(s)
			}
			tr := &Trace{Failed: "stale", Stages: map[string]Stage{"stale": Failed}}
			_, err := s.verify(t, nil, append(tc.opts, WithTrace(tr))...)
			if (err == nil) != (tc.kind == "") || (err != nil && reason.KindOf(err) != tc.kind) {
				t.Fatalf("err = %v, want kind %q", err, tc.kind)
			}
			if !reflect.DeepEqual(tr.Stages, tc.stages) || tr.Failed != tc.failed {
				t.Errorf("stages %v failed %q, want %v %q", tr.Stages, tr.Failed, tc.stages, tc.failed)
			}
			if (tr.Err == nil) != (err == nil) {
				t.Errorf("trace err %v, verify err %v", tr.Err, err)
			}
			if tc.kind == "" && !reflect.DeepEqual(tr.Signers["test"], []string{tk.bob.ID}) {
				t.Errorf("signers[test] = %v", tr.Signers["test"])
			}
		})
	}
}

func TestParseMatch(t *testing.T) {
	cases := []struct {
		rule string
		want MatchRule
		ok   bool
	}{
		{"MATCH foo WITH PRODUCTS FROM build", MatchRule{Pattern: "foo", WithProducts: true, From: "build"}, true},
		{"match foo in src with materials in dst from b", MatchRule{Pattern: "foo", SrcPrefix: "src", DstPrefix: "dst", From: "b"}, true},
		{"MATCH foo WITH SIDEWAYS FROM build", MatchRule{}, false},
		{"ALLOW foo", MatchRule{}, false},
		{"MATCH", MatchRule{}, false},
	}
	for _, tc := range cases {
		got, ok := ParseMatch(rules(tc.rule)[0])
		if ok != tc.ok || got != tc.want {
			t.Errorf("%q: %+v %v, want %+v %v", tc.rule, got, ok, tc.want, tc.ok)
		}
	}
}

// A failure inside a sublayout marks the root step it stands for; the sublayout's own
// steps are not traced.
func TestTraceSublayout(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ bool
		stages map[string]Stage
	}{
		{"pass", false, map[string]Stage{"build": Passed, "test": Passed, "package": Passed, "image": Passed}},
		{"inner rule fails", true, map[string]Stage{"build": Signed, "test": Failed}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, sub, subLinks := sublayoutScenario(t)
			if tc.break_ {
				subLinks[1].doc["materials"] = arts("unit.txt", "9")
			}
			files := s.files(t)
			files["test."+tk.bob.ID[:8]+".link"] = marshalSigned(t, signMetablock(t, sub, tk.bob))
			tr := &Trace{}
			_, err := verifyFiles(t, s, files, WithTrace(tr))
			if (err != nil) != tc.break_ || !reflect.DeepEqual(tr.Stages, tc.stages) {
				t.Fatalf("err %v, stages %v; want %v", err, tr.Stages, tc.stages)
			}
			if tc.break_ && (tr.Failed != "test" || reason.As(tr.Err).Step != "test/lint") {
				t.Errorf("failed %q err %v", tr.Failed, tr.Err)
			}
		})
	}
}

// A compiled layout traces each Verify call on its own: one trace per call, reset at
// the start, so a Verifier shared by many calls never mixes their traces.
func TestTraceCompiled(t *testing.T) {
	s := baseScenario(t)
	c, err := Compile(s.signedLayout(t), []*keys.Key{tk.owner.Key}, WithTime(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)))
	if err != nil {
		t.Fatal(err)
	}
	links, err := NewLinks(s.files(t))
	if err != nil {
		t.Fatal(err)
	}
	tr := &Trace{}
	if _, err := c.Verify(links, WithImage(testImage()), WithTrace(tr)); err != nil || tr.Stages["image"] != Passed || tr.Err != nil {
		t.Fatalf("err %v, trace %+v", err, tr)
	}
	_, err = c.Verify(links, WithImage(Image{Digests: []string{"bad"}}), WithTrace(tr))
	if err == nil || len(tr.Stages) != 0 || tr.Err == nil || tr.Failed != "" {
		t.Fatalf("bad image: err %v, trace %+v", err, tr)
	}
}
