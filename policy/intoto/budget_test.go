package intoto

import (
	"crypto/sha512"
	"fmt"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/reason"
)

// junkSignatures returns n signatures without keyids that verify with no key. Their
// scalars are canonical, so ed25519 does the full (costly) verification of each.
func junkSignatures(seed string, n int) []envelope.Signature {
	sigs := make([]envelope.Signature, n)
	for j := range sigs {
		s := sha512.Sum512([]byte(fmt.Sprint(seed, j)))
		s[63] &= 0x0f
		sigs[j] = envelope.Signature{Sig: s[:]}
	}
	return sigs
}

// floodLinks adds, under dir, MaxLinksPerStep-1 distinct links named step, each with
// envelope.MaxSignatures signatures that verify with no key: without a budget, 4,096 checks
// per authorized key for this one step.
func floodLinks(t testing.TB, files map[string][]byte, dir, step string) {
	t.Helper()
	for i := 0; i < MaxLinksPerStep-1; i++ {
		doc := linkDocMap(step, []string{"x"}, nil, map[string]HashObj{fmt.Sprint("f", i): sha('f')})
		m, err := envelope.NewMetablock(doc)
		if err != nil {
			t.Fatal(err)
		}
		m.Signatures = junkSignatures(step+fmt.Sprint(i), envelope.MaxSignatures)
		files[fmt.Sprintf("%s%s.%04d.link", dir, step, i)] = marshalSigned(t, m)
	}
}

func verifyFiles(t testing.TB, s *scenario, files map[string][]byte, opts ...Option) (*Result, error) {
	t.Helper()
	links, err := NewLinks(files)
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]Option{WithTime(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)), WithImage(testImage())}, opts...)
	return Verify(s.signedLayout(t), []*keys.Key{tk.owner.Key}, links, opts...)
}

// Links are untrusted evidence: a flood of links with signatures that verify with nothing
// must cost a bounded number of checks, and running out fails, naming the step.
func TestSignatureBudgetFlood(t *testing.T) {
	s := baseScenario(t)
	files := s.files(t)
	floodLinks(t, files, "", "build")
	floodLinks(t, files, "", "test")

	t.Run("default budget", func(t *testing.T) {
		// 63 × 64 checks for "build" fit in the default; "test" runs out.
		_, err := verifyFiles(t, s, files)
		if err == nil {
			t.Fatal("verified despite the flood")
		}
		e := reason.As(err)
		if e.Kind != reason.Malformed || e.Step != "test" || !strings.Contains(err.Error(), fmt.Sprintf("more than %d signature checks", DefaultSignatureChecks)) {
			t.Fatalf("err = %v (kind %s, step %q), want Malformed in step \"test\" saying the budget of %d ran out", err, e.Kind, e.Step, DefaultSignatureChecks)
		}
	})
	t.Run("given budget is cut off exactly", func(t *testing.T) {
		b := envelope.NewBudget(1000)
		_, err := verifyFiles(t, s, files, WithSignatureBudget(b))
		if e := reason.As(err); err == nil || e.Kind != reason.Malformed || e.Step != "build" || !strings.Contains(err.Error(), "more than 1000 signature checks") {
			t.Fatalf("err = %v, want the budget of 1000 to run out in step \"build\"", err)
		}
		if b.Spent() != 1000 {
			t.Errorf("spent %d checks, want exactly the budget of 1000", b.Spent())
		}
	})
}

// A legitimate layout spends one check per link, far from the default budget, and verifies
// with a budget of exactly that.
func TestSignatureBudgetLegitimate(t *testing.T) {
	s := baseScenario(t)
	b := envelope.NewBudget(DefaultSignatureChecks)
	if _, err := verifyFiles(t, s, s.files(t), WithSignatureBudget(b)); err != nil {
		t.Fatalf("3-step layout: %v", err)
	}
	if b.Spent() != 3 {
		t.Errorf("3-step layout spent %d signature checks, want 3", b.Spent())
	}
	if _, err := verifyFiles(t, s, s.files(t), WithSignatureBudget(envelope.NewBudget(3))); err != nil {
		t.Fatalf("3-step layout with a budget of 3: %v", err)
	}
	_, err := verifyFiles(t, s, s.files(t), WithSignatureBudget(envelope.NewBudget(2)))
	if e := reason.As(err); err == nil || e.Step != "package" || !strings.Contains(err.Error(), "more than 2 signature checks") {
		t.Fatalf("budget of 2: err = %v, want it to run out in step \"package\"", err)
	}
}

// Signatures whose keyid names an authorized key are checked first: once it verifies,
// keyless signatures have no key left to be tried against, however many there are.
func TestSignatureBudgetCheapFirst(t *testing.T) {
	s := baseScenario(t)
	files := s.files(t)
	l := s.link("build")
	m := signMetablock(t, l.doc, l.signers...)
	m.Signatures = append(junkSignatures("keyless", envelope.MaxSignatures-1), m.Signatures...)
	files[l.file] = marshalSigned(t, m)
	b := envelope.NewBudget(DefaultSignatureChecks)
	if _, err := verifyFiles(t, s, files, WithSignatureBudget(b)); err != nil {
		t.Fatal(err)
	}
	if b.Spent() != 3 {
		t.Errorf("spent %d checks; the keyed signature should be checked first and the 63 keyless ones skipped", b.Spent())
	}
}

// Sublayouts spend from their root layout's budget, and a failure inside one names the
// inner step.
func TestSignatureBudgetSublayouts(t *testing.T) {
	s, sub, _ := sublayoutScenario(t)
	files := s.files(t)
	files["test."+tk.bob.ID[:8]+".link"] = marshalSigned(t, signMetablock(t, sub, tk.bob))
	b := envelope.NewBudget(DefaultSignatureChecks)
	if _, err := verifyFiles(t, s, files, WithSignatureBudget(b)); err != nil {
		t.Fatal(err)
	}
	// build, the sublayout, unit, lint, package.
	if b.Spent() != 5 {
		t.Errorf("spent %d checks, want 5", b.Spent())
	}
	floodLinks(t, files, "test."+tk.bob.ID[:8]+"/", "lint")
	_, err := verifyFiles(t, s, files, WithSignatureBudget(envelope.NewBudget(100)))
	if e := reason.As(err); err == nil || e.Kind != reason.Malformed || e.Step != "test/lint" || !strings.Contains(err.Error(), "more than 100 signature checks") {
		t.Fatalf("err = %v, want the budget of 100 to run out in step \"test/lint\"", err)
	}
}

// A Verifier serves concurrent Verify calls; a budget is one verification's.
func TestSignatureBudgetNotForCompile(t *testing.T) {
	s := baseScenario(t)
	if _, err := Compile(s.signedLayout(t), []*keys.Key{tk.owner.Key}, WithSignatureBudget(envelope.NewBudget(10))); reason.KindOf(err) != reason.Malformed {
		t.Fatalf("Compile with a budget: err = %v, want Malformed", err)
	}
}
