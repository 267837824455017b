package intoto

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/reason"
)

type verifyCase struct {
	name     string
	mutate   func(s *scenario)
	keys     func() []*keys.Key
	opts     []Option
	kind     reason.Kind // "" = must pass
	step     string
	rule     string
	artifact string
	msg      string // substring of the error text
	check    func(t *testing.T, r *Result)
}

func replaceBytes(old, new string) func([]byte) []byte {
	return func(b []byte) []byte { return bytes.Replace(b, []byte(old), []byte(new), 1) }
}

func TestVerify(t *testing.T) {
	testKeys(t)
	img := WithImage(testImage())
	cases := []verifyCase{
		{name: "pass", opts: []Option{img}, check: func(t *testing.T, r *Result) {
			if r.ImageDigest != "sha256:"+manifestHex {
				t.Errorf("ImageDigest = %q", r.ImageDigest)
			}
			if got := r.Functionaries["test"]; len(got) != 1 || got[0] != tk.bob.ID {
				t.Errorf("Functionaries[test] = %v", got)
			}
			if r.Expires.Year() != 2099 || len(r.Warnings) != 0 {
				t.Errorf("Expires %v, warnings %v", r.Expires, r.Warnings)
			}
		}},
		{name: "links as DSSE", opts: []Option{img}, mutate: func(s *scenario) {
			for _, l := range s.links {
				l.format = "dsse"
			}
		}},
		{name: "links as link statements", opts: []Option{img}, mutate: func(s *scenario) {
			for _, l := range s.links {
				l.format = "statement"
			}
		}},
		{name: "links found by name not file name", opts: []Option{img}, mutate: func(s *scenario) {
			for i, l := range s.links {
				l.file = "evidence-" + string(rune('a'+i)) + ".json"
			}
		}},
		{name: "expired", opts: []Option{img}, mutate: func(s *scenario) { s.layout["expires"] = "2020-02-03T04:05:06Z" },
			kind: reason.Expired, msg: "layout expired on 2020-02-03T04:05:06Z"},
		{name: "layout signed by another key", opts: []Option{img}, mutate: func(s *scenario) { s.layoutSigner = []*keys.Signer{tk.mallory} },
			kind: reason.BadSignature, msg: "root layout signature verification failed"},
		{name: "layout keys below default threshold", opts: []Option{img},
			keys: func() []*keys.Key { return []*keys.Key{tk.owner.Key, tk.owner2.Key} },
			kind: reason.Threshold, msg: "1 of 2"},
		{name: "layout threshold option", opts: []Option{img, WithLayoutThreshold(1)},
			keys: func() []*keys.Key { return []*keys.Key{tk.owner.Key, tk.owner2.Key} }},
		{name: "layout signed by both owners", opts: []Option{img},
			mutate: func(s *scenario) { s.layoutSigner = []*keys.Signer{tk.owner, tk.owner2} },
			keys:   func() []*keys.Key { return []*keys.Key{tk.owner.Key, tk.owner2.Key} }},
		{name: "tampered link", opts: []Option{img}, mutate: func(s *scenario) {
			s.link("test").tamper = replaceBytes(shaHex('r'), shaHex('e'))
		}, kind: reason.BadSignature, step: "test", msg: "does not verify"},
		{name: "link by a key outside the layout", opts: []Option{img}, mutate: func(s *scenario) {
			s.link("test").signers = []*keys.Signer{tk.mallory}
		}, kind: reason.Threshold, step: "test", msg: "0 of 1 required links signed by an authorized functionary; found test."},
		{name: "link by a functionary not authorized for the step", opts: []Option{img}, mutate: func(s *scenario) {
			s.link("test").signers = []*keys.Signer{tk.alice}
		}, kind: reason.Threshold, step: "test", msg: "which is not authorized for this step"},
		{name: "missing link", opts: []Option{img}, mutate: func(s *scenario) {
			s.links = s.links[:2]
			s.extraFiles = map[string][]byte{"junk.txt": []byte("hello")}
		}, kind: reason.MissingEvidence, step: "package", msg: `no link named "package" was found (1 evidence files could not be read as links, e.g. junk.txt`},
		{name: "no evidence at all", opts: []Option{img}, mutate: func(s *scenario) { s.links = nil },
			kind: reason.MissingEvidence, step: "build"},
		{name: "threshold two met", opts: []Option{img}, mutate: func(s *scenario) {
			st := s.step("test")
			st["threshold"], st["pubkeys"] = 2, []string{tk.bob.ID, tk.carol.ID}
			l := *s.link("test")
			l.file, l.signers = "test-by-carol.link", []*keys.Signer{tk.carol}
			s.links = append(s.links, &l)
		}, check: func(t *testing.T, r *Result) {
			if len(r.Functionaries["test"]) != 2 {
				t.Errorf("Functionaries[test] = %v", r.Functionaries["test"])
			}
		}},
		{name: "threshold two, one signer", opts: []Option{img}, mutate: func(s *scenario) {
			st := s.step("test")
			st["threshold"], st["pubkeys"] = 2, []string{tk.bob.ID, tk.carol.ID}
		}, kind: reason.Threshold, step: "test", msg: "1 of 2 required links"},
		{name: "threshold two, same signer twice", opts: []Option{img}, mutate: func(s *scenario) {
			st := s.step("test")
			st["threshold"], st["pubkeys"] = 2, []string{tk.bob.ID, tk.carol.ID}
			l := *s.link("test")
			l.file = "copy.link"
			s.links = append(s.links, &l)
		}, kind: reason.Threshold, step: "test", msg: "1 of 2 required links"},
		{name: "threshold links disagree", opts: []Option{img}, mutate: func(s *scenario) {
			st := s.step("test")
			st["threshold"], st["pubkeys"] = 2, []string{tk.bob.ID, tk.carol.ID}
			l := *s.link("test")
			doc := linkDocMap("test", []string{"make", "test"}, map[string]HashObj{"foo.tar.gz": sha('f')}, map[string]HashObj{"report.txt": sha('x')})
			l.file, l.signers, l.doc = "test-by-carol.link", []*keys.Signer{tk.carol}, doc
			s.links = append(s.links, &l)
		}, kind: reason.Threshold, step: "test", msg: "record different materials or products"},
		{name: "MATCH digest mismatch", opts: []Option{img}, mutate: func(s *scenario) {
			s.artifacts("test", "materials")["foo.tar.gz"] = sha('0')
		}, kind: reason.RuleViolation, step: "test", rule: "MATCH foo.tar.gz WITH PRODUCTS FROM build", artifact: "foo.tar.gz",
			msg: `differs from sha256:6666`},
		{name: "MATCH without destination", opts: []Option{img}, mutate: func(s *scenario) {
			s.step("package")["expected_materials"] = rules("MATCH * WITH PRODUCTS FROM build", "DISALLOW *")
			s.artifacts("package", "materials")["other.tar.gz"] = sha('o')
		}, kind: reason.RuleViolation, step: "package", rule: "MATCH * WITH PRODUCTS FROM build", artifact: "other.tar.gz",
			msg: `no matching artifact in products of step "build"; disallowed by "DISALLOW *"`},
		{name: "DISALLOW extra product", opts: []Option{img}, mutate: func(s *scenario) {
			s.artifacts("build", "products")["backdoor"] = sha('d')
		}, kind: reason.RuleViolation, step: "build", rule: "DISALLOW *", artifact: "backdoor", msg: "product not allowed"},
		{name: "parameters", opts: []Option{img, WithParameters(map[string]string{"TARBALL": "foo.tar.gz"})}, mutate: func(s *scenario) {
			s.step("test")["expected_materials"] = rules("MATCH {TARBALL} WITH PRODUCTS FROM build", "DISALLOW *")
		}},
		{name: "missing parameter", opts: []Option{img}, mutate: func(s *scenario) {
			s.step("test")["expected_materials"] = rules("MATCH {TARBALL} WITH PRODUCTS FROM build", "DISALLOW *")
		}, kind: reason.Malformed, step: "test", msg: "layout parameter {TARBALL} has no value"},
		{name: "image digest mismatch", opts: []Option{WithImage(Image{Digests: []string{"sha256:" + indexHex}, ConfigDigest: "sha256:" + configHex})},
			kind: reason.BindingMismatch, step: "image", rule: "MATCH image WITH PRODUCTS FROM package", artifact: "image", msg: "differs"},
		{name: "image matched by second digest", opts: []Option{WithImage(Image{Digests: []string{"sha256:" + indexHex, "sha256:" + manifestHex}, ConfigDigest: "sha256:" + configHex})},
			check: func(t *testing.T, r *Result) {
				if r.ImageDigest != "sha256:"+manifestHex {
					t.Errorf("ImageDigest = %q", r.ImageDigest)
				}
			}},
		{name: "no digest matches of two", opts: []Option{WithImage(Image{Digests: []string{"sha256:" + indexHex, "sha256:" + configHex}, ConfigDigest: "sha256:" + configHex})},
			kind: reason.BindingMismatch, msg: "no image digest of 2 matched"},
		{name: "image inspection without image", kind: reason.MissingEvidence, step: "image"},
		{name: "other inspection rejected", opts: []Option{img}, mutate: func(s *scenario) {
			s.layout["inspect"] = append(s.layout["inspect"].([]any), map[string]any{"_type": "inspection", "name": "untar",
				"run": []string{"tar", "xf", "foo.tar.gz"}, "expected_materials": rules(), "expected_products": rules()})
		}, kind: reason.Malformed, step: "untar", msg: `layout inspection would run "tar xf foo.tar.gz"; Tollgate never runs inspection commands`},
		{name: "inspection runner", opts: []Option{img, WithInspectionRunner(fakeRunner{})}, mutate: func(s *scenario) {
			s.layout["inspect"] = append(s.layout["inspect"].([]any), map[string]any{"_type": "inspection", "name": "untar",
				"run": []string{"tar", "xf", "foo.tar.gz"}, "expected_materials": rules("MATCH foo.tar.gz WITH PRODUCTS FROM build", "DISALLOW *"), "expected_products": rules()})
		}},
		{name: "command mismatch warns", opts: []Option{img}, mutate: func(s *scenario) {
			s.step("build")["expected_command"] = []string{"make", "all"}
		}, check: func(t *testing.T, r *Result) {
			if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], `step "build": recorded command ["make"] differs from expected command ["make" "all"]`) {
				t.Errorf("warnings = %q", r.Warnings)
			}
		}},
		{name: "layout without image inspection cannot bind", opts: []Option{img}, mutate: func(s *scenario) { s.layout["inspect"] = []any{} },
			kind: reason.BindingMismatch, msg: `layout has no inspection named "image"`},
		{name: "no image, no binding needed", mutate: func(s *scenario) { s.layout["inspect"] = []any{} }},
		{name: "step rule cannot see inspections", opts: []Option{img}, mutate: func(s *scenario) {
			s.step("package")["expected_products"] = rules("MATCH image WITH MATERIALS FROM image", "DISALLOW *")
		}, kind: reason.RuleViolation, step: "package", msg: `there is no link of "image" to match against`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := baseScenario(t)
			if tc.mutate != nil {
				tc.mutate(s)
			}
			var lk []*keys.Key
			if tc.keys != nil {
				lk = tc.keys()
			}
			res, err := s.verify(t, lk, tc.opts...)
			checkOutcome(t, tc, res, err)
		})
	}
}

func checkOutcome(t *testing.T, tc verifyCase, res *Result, err error) {
	t.Helper()
	if tc.kind == "" {
		if err != nil {
			t.Fatalf("Verify failed: %v", err)
		}
		if tc.check != nil {
			tc.check(t, res)
		}
		return
	}
	if err == nil {
		t.Fatalf("Verify passed, want %s failure", tc.kind)
	}
	t.Log(err)
	var re *reason.Error
	if !errors.As(err, &re) {
		t.Fatalf("error %v is not a *reason.Error", err)
	}
	if re.Kind != tc.kind {
		t.Errorf("kind = %s, want %s (%v)", re.Kind, tc.kind, err)
	}
	if tc.step != "" && re.Step != tc.step {
		t.Errorf("step = %q, want %q (%v)", re.Step, tc.step, err)
	}
	if tc.rule != "" && re.Rule != tc.rule {
		t.Errorf("rule = %q, want %q (%v)", re.Rule, tc.rule, err)
	}
	if tc.artifact != "" && re.Artifact != tc.artifact {
		t.Errorf("artifact = %q, want %q (%v)", re.Artifact, tc.artifact, err)
	}
	if !strings.Contains(err.Error(), tc.msg) {
		t.Errorf("error %q does not contain %q", err, tc.msg)
	}
}

type fakeRunner struct{}

func (fakeRunner) RunInspection(name string, run []string) (*Link, error) {
	return NewLink(name, run, map[string]HashObj{"foo.tar.gz": sha('f')}, map[string]HashObj{})
}

// The message an operator sees must read as the design document's example.
func TestVerifyMessages(t *testing.T) {
	s := baseScenario(t)
	s.link("test").signers = []*keys.Signer{tk.mallory}
	_, err := s.verify(t, nil, WithImage(testImage()))
	want := `step "test": 0 of 1 required links signed by an authorized functionary; found test.`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error = %v, want prefix %q", err, want)
	}
	s = baseScenario(t)
	s.step("package")["expected_materials"] = rules("MATCH foo.tar.gz WITH PRODUCTS FROM build", "DISALLOW *")
	s.artifacts("build", "products")["bar"] = sha('b')
	s.step("build")["expected_products"] = rules("CREATE *", "DISALLOW *")
	delete(s.artifacts("build", "products"), "foo.tar.gz")
	_, err = s.verify(t, nil, WithImage(testImage()))
	want = `step "test": rule "MATCH foo.tar.gz WITH PRODUCTS FROM build": artifact "foo.tar.gz": no matching artifact in products of step "build"`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error = %v, want prefix %q", err, want)
	}
}

// Verification must not change the evidence: the same Links verify twice, and the parsed
// links keep their artifacts.
func TestVerifyDoesNotMutate(t *testing.T) {
	s := baseScenario(t)
	links, err := NewLinks(s.files(t))
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot(links)
	layout := s.signedLayout(t)
	for i := 0; i < 2; i++ {
		if _, err := Verify(layout, []*keys.Key{tk.owner.Key}, links, WithImage(testImage())); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	if !reflect.DeepEqual(before, snapshot(links)) {
		t.Fatal("Verify changed the links")
	}
}

func snapshot(ls *Links) map[string]any {
	out := map[string]any{}
	for d, ld := range ls.dirs {
		for name, cs := range ld.byName {
			for i, c := range cs {
				out[d+"/"+name+string(rune('0'+i))] = []any{c.link.Materials(), c.link.Products(), append([]string(nil), c.link.mat.paths...)}
			}
		}
	}
	return out
}

// Links are shared by concurrent verifications in the daemon.
func TestVerifyConcurrent(t *testing.T) {
	s := baseScenario(t)
	links, err := NewLinks(s.files(t))
	if err != nil {
		t.Fatal(err)
	}
	layout := s.signedLayout(t)
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() {
			_, err := Verify(layout, []*keys.Key{tk.owner.Key}, links, WithImage(testImage()))
			errs <- err
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
