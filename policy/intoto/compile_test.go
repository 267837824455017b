package intoto

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/internal/benchcpu"
	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/reason"
)

var compileNow = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func mustLinks(t testing.TB, files map[string][]byte) *Links {
	t.Helper()
	ls, err := NewLinks(files)
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

// A compiled layout gives exactly what Verify gives, for good and bad evidence alike.
func TestCompileMatchesVerify(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(s *scenario)
		kind   reason.Kind
	}{
		{name: "valid"},
		{name: "missing link", mutate: func(s *scenario) { s.links = s.links[:2] }, kind: reason.MissingEvidence},
		{name: "rule violation", mutate: func(s *scenario) { s.artifacts("test", "products")["extra"] = sha('x') }, kind: reason.RuleViolation},
		{name: "wrong signer", mutate: func(s *scenario) { s.link("build").signers = []*keys.Signer{tk.bob} }, kind: reason.Threshold},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := baseScenario(t)
			if tt.mutate != nil {
				tt.mutate(s)
			}
			links := mustLinks(t, s.files(t))
			opts := []Option{WithTime(compileNow), WithImage(testImage())}
			want, werr := Verify(s.signedLayout(t), []*keys.Key{tk.owner.Key}, links, opts...)
			c, err := Compile(s.signedLayout(t), []*keys.Key{tk.owner.Key})
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			got, gerr := c.Verify(links, opts...)
			if fmt.Sprint(gerr) != fmt.Sprint(werr) || !reflect.DeepEqual(got, want) {
				t.Fatalf("compiled: %+v, %v\nVerify:   %+v, %v", got, gerr, want, werr)
			}
			if tt.kind != "" && reason.KindOf(gerr) != tt.kind {
				t.Fatalf("error kind %q, want %q: %v", reason.KindOf(gerr), tt.kind, gerr)
			}
			if tt.kind == "" && (gerr != nil || got.ImageDigest != testImage().Digests[0]) {
				t.Fatalf("verification: %+v, %v", got, gerr)
			}
		})
	}
}

func TestCompileFailures(t *testing.T) {
	params := func(s *scenario) {
		s.step("build")["expected_products"] = rules("CREATE {TARBALL}", "DISALLOW *")
	}
	tests := []struct {
		name   string
		mutate func(s *scenario)
		keys   func() []*keys.Key
		opts   []Option
		kind   reason.Kind
		msg    string
	}{
		{name: "wrong layout key", keys: func() []*keys.Key { return []*keys.Key{tk.alice.Key} }, kind: reason.BadSignature},
		{name: "below layout threshold", keys: func() []*keys.Key { return []*keys.Key{tk.owner.Key, tk.alice.Key} }, kind: reason.Threshold},
		{name: "no key", keys: func() []*keys.Key { return nil }, kind: reason.Malformed, msg: "no layout verification key"},
		{name: "missing parameter", mutate: params, kind: reason.Malformed, msg: "{TARBALL} has no value"},
		{name: "invalid parameter name", opts: []Option{WithParameters(map[string]string{"a b": "x"})}, kind: reason.Malformed, msg: "invalid"},
		{name: "bad image", opts: []Option{WithImage(Image{ConfigDigest: "nope"})}, kind: reason.Malformed, msg: "not of the form"},
		{name: "tampered layout", mutate: func(s *scenario) { s.layoutSigner = []*keys.Signer{tk.alice} }, kind: reason.BadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := baseScenario(t)
			if tt.mutate != nil {
				tt.mutate(s)
			}
			ks := []*keys.Key{tk.owner.Key}
			if tt.keys != nil {
				ks = tt.keys()
			}
			c, err := Compile(s.signedLayout(t), ks, tt.opts...)
			if err == nil || c != nil {
				t.Fatalf("Compile = %v, %v; want an error", c, err)
			}
			if reason.KindOf(err) != tt.kind || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %q (kind %q), want kind %q containing %q", err, reason.KindOf(err), tt.kind, tt.msg)
			}
		})
	}
	if _, err := Compile(nil, []*keys.Key{tk.owner.Key}); reason.KindOf(err) != reason.Malformed {
		t.Fatalf("Compile(nil) error %v, want Malformed", err)
	}
}

// Expiry is checked by every Verify against its own time, not once at Compile.
func TestCompiledExpiry(t *testing.T) {
	s := baseScenario(t)
	s.layout["expires"] = "2030-06-01T00:00:00Z"
	c, err := Compile(s.signedLayout(t), []*keys.Key{tk.owner.Key}, WithImage(testImage()))
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC); !c.Expires().Equal(want) {
		t.Fatalf("Expires() = %v, want %v", c.Expires(), want)
	}
	links := mustLinks(t, s.files(t))
	if res, err := c.Verify(links, WithTime(compileNow)); err != nil || !res.Expires.Equal(c.Expires()) {
		t.Fatalf("before expiry: %+v, %v", res, err)
	}
	_, err = c.Verify(links, WithTime(time.Date(2030, 7, 1, 0, 0, 0, 0, time.UTC)))
	if reason.KindOf(err) != reason.Expired {
		t.Fatalf("after expiry: %v, want Expired", err)
	}
	// Without WithTime, the clock decides: this layout expired long before "now" in tests
	// run after 2030; before then it verifies. Either way the answer follows time.Now().
	_, err = c.Verify(links)
	if expired := time.Now().After(c.Expires()); expired != (reason.KindOf(err) == reason.Expired) {
		t.Fatalf("Verify without WithTime: %v", err)
	}
}

// An expired layout whose rules would not compile still reports expiry through Verify, as
// before compilation existed (Python checks expiry before substituting parameters).
func TestVerifyReportsExpiryBeforeCompileErrors(t *testing.T) {
	s := baseScenario(t)
	s.layout["expires"] = "2020-01-01T00:00:00Z"
	s.step("build")["expected_products"] = rules("CREATE {MISSING}", "DISALLOW *")
	_, err := Verify(s.signedLayout(t), []*keys.Key{tk.owner.Key}, mustLinks(t, s.files(t)), WithTime(compileNow))
	if reason.KindOf(err) != reason.Expired {
		t.Fatalf("Verify error %v, want Expired", err)
	}
	if _, err := Compile(s.signedLayout(t), []*keys.Key{tk.owner.Key}); reason.KindOf(err) != reason.Malformed {
		t.Fatalf("Compile error %v, want Malformed (expiry is Verify's business)", err)
	}
}

func TestCompiledParametersAndOptions(t *testing.T) {
	s := baseScenario(t)
	s.step("build")["expected_products"] = rules("CREATE {TARBALL}", "DISALLOW *")
	p := map[string]string{"TARBALL": "foo.tar.gz"}
	c, err := Compile(s.signedLayout(t), []*keys.Key{tk.owner.Key}, WithParameters(p), WithTime(compileNow), WithImage(testImage()))
	if err != nil {
		t.Fatal(err)
	}
	p["TARBALL"] = "other" // the Verifier keeps its own copy
	links := mustLinks(t, s.files(t))
	if _, err := c.Verify(links); err != nil {
		t.Fatalf("Verify with Compile's defaults: %v", err)
	}
	// Verify's own options override Compile's defaults.
	other := Image{Digests: []string{"sha256:" + indexHex}, ConfigDigest: "sha256:" + configHex}
	if _, err := c.Verify(links, WithImage(other)); reason.KindOf(err) != reason.BindingMismatch {
		t.Fatalf("Verify with another image: %v, want BindingMismatch", err)
	}
	for name, opt := range map[string]Option{
		"parameters": WithParameters(map[string]string{"TARBALL": "foo.tar.gz"}),
		"threshold":  WithLayoutThreshold(1),
	} {
		if _, err := c.Verify(links, opt); reason.KindOf(err) != reason.Malformed || !strings.Contains(err.Error(), "pass them to Compile") {
			t.Errorf("Verify with %s: %v, want a Malformed refusal", name, err)
		}
	}
	var nilVerifier *Verifier
	if _, err := nilVerifier.Verify(links); reason.KindOf(err) != reason.Malformed {
		t.Fatalf("nil Verifier: %v", err)
	}
}

// One Verifier serves concurrent verifications of different evidence (run with -race).
func TestCompiledConcurrentUse(t *testing.T) {
	good := baseScenario(t)
	bad := baseScenario(t)
	bad.artifacts("test", "products")["extra"] = sha('x')
	c, err := Compile(good.signedLayout(t), []*keys.Key{tk.owner.Key}, WithImage(testImage()), WithTime(compileNow))
	if err != nil {
		t.Fatal(err)
	}
	goodLinks, badLinks := mustLinks(t, good.files(t)), mustLinks(t, bad.files(t))
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				if _, err := c.Verify(goodLinks); err != nil {
					errs <- fmt.Errorf("good evidence: %v", err)
					return
				}
				if _, err := c.Verify(badLinks); reason.KindOf(err) != reason.RuleViolation {
					errs <- fmt.Errorf("bad evidence: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// NewLinksFromSigned indexes already-parsed envelopes exactly as NewLinks indexes files.
func TestNewLinksFromSigned(t *testing.T) {
	s := baseScenario(t)
	s.link("test").format = "dsse"
	s.link("package").format = "statement"
	files := s.files(t)
	files["junk.link"] = []byte(`{"signed":{"_type":"layout"},"signatures":[]}`)
	envs := map[string]*envelope.Signed{}
	for name, data := range files {
		e, err := envelope.Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		envs[name] = e
	}
	envs["nil.link"] = nil
	fromSigned, err := NewLinksFromSigned(envs)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Compile(s.signedLayout(t), []*keys.Key{tk.owner.Key}, WithImage(testImage()), WithTime(compileNow))
	if err != nil {
		t.Fatal(err)
	}
	want, werr := c.Verify(mustLinks(t, files))
	got, gerr := c.Verify(fromSigned)
	if werr != nil || gerr != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("from envelopes: %+v, %v\nfrom files:     %+v, %v", got, gerr, want, werr)
	}
	// The Links keep their own signature lists: changing the caller's envelope later
	// changes nothing.
	for _, e := range envs {
		if e != nil {
			e.Signatures = nil
		}
	}
	if _, err := c.Verify(fromSigned); err != nil {
		t.Fatalf("after the caller cleared its envelopes' signatures: %v", err)
	}
	// Missing-link reports still say what could not be read.
	_, err = c.Verify(mustNewLinksFromSigned(t, map[string]*envelope.Signed{"nil.link": nil}))
	if reason.KindOf(err) != reason.MissingEvidence || !strings.Contains(err.Error(), "nil.link: not a signed in-toto document") {
		t.Fatalf("nil envelope: %v", err)
	}
}

func mustNewLinksFromSigned(t *testing.T, envs map[string]*envelope.Signed) *Links {
	t.Helper()
	ls, err := NewLinksFromSigned(envs)
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

func TestNewLinksFromSignedLimits(t *testing.T) {
	many := map[string]*envelope.Signed{}
	for i := 0; i <= MaxEvidenceFiles; i++ {
		many[fmt.Sprintf("f%d.link", i)] = &envelope.Signed{Format: envelope.Metablock, Payload: []byte(`{}`)}
	}
	if _, err := NewLinksFromSigned(many); reason.KindOf(err) != reason.Malformed {
		t.Fatalf("too many files: %v", err)
	}
	defer func(old int) { evidenceBytesLimit = old }(evidenceBytesLimit)
	evidenceBytesLimit = 100
	big := map[string]*envelope.Signed{"a.link": {Format: envelope.Metablock, Payload: make([]byte, 101)}}
	if _, err := NewLinksFromSigned(big); reason.KindOf(err) != reason.Malformed || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("too many bytes: %v", err)
	}
}

// BenchmarkVerifyCompiledThreeSteps is the warm path of a node: the layout compiled once,
// each operation parses 3 links and verifies them.
func BenchmarkVerifyCompiledThreeSteps(b *testing.B) {
	s := baseScenario(b)
	files := s.files(b)
	c, err := Compile(s.signedLayout(b), []*keys.Key{tk.owner.Key}, WithImage(testImage()), WithTime(compileNow))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	defer benchcpu.Report(b)()
	for i := 0; i < b.N; i++ {
		links, err := NewLinks(files)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Verify(links); err != nil {
			b.Fatal(err)
		}
	}
}
