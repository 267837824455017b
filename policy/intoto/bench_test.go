package intoto

import (
	"fmt"
	"testing"
	"time"

	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/internal/benchcpu"
	"tollgate.dev/tollgate/policy/keys"
)

// benchInput is the byte-level input of one verification, as the daemon holds it.
type benchInput struct {
	layout []byte
	files  map[string][]byte
}

func (in benchInput) verify(b *testing.B, opts ...Option) {
	signed, err := envelope.Parse(in.layout)
	if err != nil {
		b.Fatal(err)
	}
	links, err := NewLinks(in.files)
	if err != nil {
		b.Fatal(err)
	}
	opts = append(opts, WithTime(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)))
	if _, err := Verify(signed, []*keys.Key{tk.owner.Key}, links, opts...); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkVerifyColdThreeSteps: parse a 3-step layout and 3 links, check 4 ed25519
// signatures and every rule, including the image inspection. Target ≤ 1 ms.
func BenchmarkVerifyColdThreeSteps(b *testing.B) {
	s := baseScenario(b)
	in := benchInput{layout: marshalSigned(b, s.signedLayout(b)), files: s.files(b)}
	b.ReportAllocs()
	b.ResetTimer()
	defer benchcpu.Report(b)()
	for i := 0; i < b.N; i++ {
		in.verify(b, WithImage(testImage()))
	}
}

// artifactScenario: "build" produces n artifacts, "test" consumes them all with MATCH *.
func artifactScenario(b *testing.B, n int) benchInput {
	s := baseScenario(b)
	prod := make(map[string]HashObj, n)
	for i := 0; i < n; i++ {
		prod[fmt.Sprintf("pkg/dir%03d/file-%07d.go", i%1000, i)] = HashObj{"sha256": fmt.Sprintf("%064x", i)}
	}
	s.layout["inspect"] = []any{}
	s.layout["steps"] = []any{
		stepDoc("build", 1, []*keys.Signer{tk.alice}, []string{"make"}, rules(), rules("CREATE *", "DISALLOW *")),
		stepDoc("test", 1, []*keys.Signer{tk.bob}, []string{"make", "test"}, rules("MATCH * WITH PRODUCTS FROM build", "DISALLOW *"), rules("ALLOW *")),
	}
	s.links = []*linkSpec{
		{file: "build.link", signers: []*keys.Signer{tk.alice}, doc: linkDocMap("build", []string{"make"}, map[string]HashObj{}, prod)},
		{file: "test.link", signers: []*keys.Signer{tk.bob}, doc: linkDocMap("test", []string{"make", "test"}, prod, map[string]HashObj{})},
	}
	return benchInput{layout: marshalSigned(b, s.signedLayout(b)), files: s.files(b)}
}

func benchArtifacts(b *testing.B, n int) {
	in := artifactScenario(b, n)
	b.ReportAllocs()
	b.ResetTimer()
	defer benchcpu.Report(b)()
	for i := 0; i < b.N; i++ {
		in.verify(b)
	}
}

// BenchmarkArtifacts10k and 100k: whole verification (parse, canonical-JSON signature
// checks, rules) of two links with n artifacts each. Target for 100k: ≤ 1 s.
func BenchmarkArtifacts10k(b *testing.B)  { benchArtifacts(b, 10_000) }
func BenchmarkArtifacts100k(b *testing.B) { benchArtifacts(b, 100_000) }

// BenchmarkRules100k isolates the rule engine: MATCH * then DISALLOW * over 100k artifacts.
func BenchmarkRules100k(b *testing.B) {
	prod := make(map[string]HashObj, 100_000)
	for i := 0; i < 100_000; i++ {
		prod[fmt.Sprintf("pkg/dir%03d/file-%07d.go", i%1000, i)] = HashObj{"sha256": fmt.Sprintf("%064x", i)}
	}
	links := map[string]*Link{"build": newLink("build", nil, nil, prod), "test": newLink("test", nil, prod, nil)}
	rs, _ := compileRules([][]string{{"MATCH", "*", "WITH", "PRODUCTS", "FROM", "build"}, {"DISALLOW", "*"}})
	b.ReportAllocs()
	b.ResetTimer()
	defer benchcpu.Report(b)()
	for i := 0; i < b.N; i++ {
		if err := verifyItemRules("test", false, rs, links, "rule_violation"); err != nil {
			b.Fatal(err)
		}
	}
}
