package envelope

import (
	"errors"
	"strings"
	"testing"

	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/reason"
)

// TestVerifySignatures covers the one threshold check on raw (bytes, signatures), as a
// key-based Sigstore bundle uses it, with the signature checks it spends: the budget is
// what bounds hostile evidence, so the count of checks is part of the contract.
func TestVerifySignatures(t *testing.T) {
	a, b, c := generate(t, keys.TypeED25519), generate(t, keys.TypeED25519+"#2"), generate(t, keys.TypeECDSA)
	msg := []byte("the signed bytes")
	sign := func(s *keys.Signer, keyID string) Signature {
		sig, err := s.Sign(msg)
		if err != nil {
			t.Fatal(err)
		}
		return Signature{KeyID: keyID, Sig: sig}
	}
	bad := Signature{KeyID: "", Sig: make([]byte, 64)}
	unknown := strings.Repeat("0", 64)
	many := make([]Signature, MaxSignatures+1)
	for i := range many {
		many[i] = bad
	}
	trusted := []*keys.Key{a.Key, b.Key, c.Key}

	for _, tc := range []struct {
		name      string
		sigs      []Signature
		trusted   []*keys.Key
		threshold int
		budget    int // 0: no budget
		want      []string
		spent     int // checks charged to the budget, when there is one
		kind      reason.Kind
		isBudget  bool
	}{
		{name: "one named signature", sigs: []Signature{sign(a, a.ID)}, trusted: trusted, threshold: 1,
			budget: 10, want: []string{a.ID}, spent: 1},
		{name: "threshold of two distinct keys", sigs: []Signature{sign(a, a.ID), sign(c, c.ID)}, trusted: trusted, threshold: 2,
			budget: 10, want: []string{a.ID, c.ID}, spent: 2},
		{name: "below threshold", sigs: []Signature{sign(a, a.ID)}, trusted: trusted, threshold: 2,
			want: []string{a.ID}, kind: reason.Threshold},
		{name: "same key signing twice counts once; a proven key is not checked again", sigs: []Signature{sign(a, a.ID), sign(a, a.ID), sign(a, "")},
			trusted: trusted, threshold: 2, budget: 10, want: []string{a.ID}, spent: 3, kind: reason.Threshold}, // 1 + 0 + b and c
		{name: "same key listed twice counts once", sigs: []Signature{sign(a, a.ID)}, trusted: []*keys.Key{a.Key, a.Key}, threshold: 2,
			want: []string{a.ID}, kind: reason.Threshold},
		{name: "empty keyid tried against every key", sigs: []Signature{sign(c, "")}, trusted: trusted, threshold: 1,
			budget: 10, want: []string{c.ID}, spent: 3},
		{name: "unknown keyid tried against every key", sigs: []Signature{sign(b, unknown)}, trusted: trusted, threshold: 1,
			budget: 10, want: []string{b.ID}, spent: 2},
		{name: "named signatures first; keyless skip proven keys", sigs: []Signature{sign(c, ""), sign(a, a.ID), sign(b, b.ID)},
			trusted: trusted, threshold: 3, budget: 10, want: []string{a.ID, b.ID, c.ID}, spent: 3},
		{name: "keyid naming a trusted key is not tried against others", sigs: []Signature{sign(b, a.ID)}, trusted: trusted, threshold: 1,
			budget: 10, spent: 1, kind: reason.BadSignature},
		{name: "untrusted signer", sigs: []Signature{sign(c, c.ID)}, trusted: []*keys.Key{a.Key, b.Key}, threshold: 1,
			budget: 10, spent: 2, kind: reason.BadSignature},
		{name: "budget exhausted", sigs: []Signature{bad, bad, sign(c, "")}, trusted: trusted, threshold: 1,
			budget: 5, spent: 5, kind: reason.Malformed, isBudget: true},
		{name: "budget exactly enough", sigs: []Signature{bad, sign(c, "")}, trusted: trusted, threshold: 1,
			budget: 6, want: []string{c.ID}, spent: 6},
		{name: "empty budget checks nothing", sigs: []Signature{sign(a, a.ID)}, trusted: trusted, threshold: 1,
			budget: -1, spent: 0, kind: reason.Malformed, isBudget: true},
		{name: "no signatures", trusted: trusted, threshold: 1, kind: reason.BadSignature},
		{name: "no trusted keys", sigs: []Signature{sign(a, a.ID)}, threshold: 1, kind: reason.BadSignature},
		{name: "threshold zero", sigs: []Signature{sign(a, a.ID)}, trusted: trusted, kind: reason.Malformed},
		{name: "too many signatures", sigs: many, trusted: trusted, threshold: 1, kind: reason.Malformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []VerifyOption
			var budget *Budget
			if tc.budget != 0 {
				budget = NewBudget(tc.budget)
				opts = append(opts, WithBudget(budget))
			}
			got, err := VerifySignatures(msg, tc.sigs, tc.trusted, tc.threshold, opts...)
			switch {
			case tc.kind == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.kind != "" && err == nil:
				t.Fatalf("verified, want a %s error", tc.kind)
			case tc.kind != "" && reason.KindOf(err) != tc.kind:
				t.Fatalf("error kind %s, want %s: %v", reason.KindOf(err), tc.kind, err)
			}
			if errors.Is(err, ErrBudget) != tc.isBudget {
				t.Errorf("errors.Is(err, ErrBudget) = %v, want %v (%v)", !tc.isBudget, tc.isBudget, err)
			}
			var ids []string
			for _, k := range got {
				ids = append(ids, k.ID)
			}
			if strings.Join(ids, ",") != strings.Join(tc.want, ",") {
				t.Errorf("verified keys %q, want %q", ids, tc.want)
			}
			if budget != nil && budget.Spent() != tc.spent {
				t.Errorf("spent %d signature checks, want %d", budget.Spent(), tc.spent)
			}
		})
	}
}

// The budget is shared: what one verification spends, the next cannot.
func TestBudgetShared(t *testing.T) {
	a := generate(t, keys.TypeED25519)
	s := NewDSSE(PayloadTypeInToto, []byte(`{}`))
	if err := s.Sign(a); err != nil {
		t.Fatal(err)
	}
	b := NewBudget(2)
	for i := 0; i < 2; i++ {
		if _, err := s.Verify([]*keys.Key{a.Key}, 1, WithBudget(b)); err != nil {
			t.Fatalf("check %d: %v", i+1, err)
		}
	}
	_, err := s.Verify([]*keys.Key{a.Key}, 1, WithBudget(b))
	if !errors.Is(err, ErrBudget) || !strings.Contains(err.Error(), "more than 2 signature checks") {
		t.Fatalf("third verification on a budget of 2: %v", err)
	}
	if b.Spent() != 2 || b.Limit() != 2 {
		t.Errorf("spent %d of %d, want 2 of 2", b.Spent(), b.Limit())
	}
}
