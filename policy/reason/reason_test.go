package reason

import (
	"errors"
	"fmt"
	"testing"
)

func TestErrorText(t *testing.T) {
	cause := errors.New("signature mismatch")
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{"message only", New(Expired, "layout expired on %s", "2026-01-01"), "layout expired on 2026-01-01"},
		{"full context", New(RuleViolation, "no matching artifact in products of step %q", "build").
			InStep("package").ForRule("MATCH foo WITH PRODUCTS FROM build").OnArtifact("foo"),
			`step "package": rule "MATCH foo WITH PRODUCTS FROM build": artifact "foo": no matching artifact in products of step "build"`},
		{"cause appended", New(BadSignature, "link not verified").Wrap(cause), "link not verified: signature mismatch"},
		{"cause alone", (&Error{Kind: Malformed}).Wrap(cause), "signature mismatch"},
		{"innermost step wins", New(Threshold, "x").InStep("inner").InStep("outer"), `step "inner": x`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Fatalf("Error() = %q\nwant      %q", got, tt.want)
			}
		})
	}
}

func TestHelpersCopy(t *testing.T) {
	base := New(Threshold, "x")
	_ = base.InStep("s").ForRule("r").OnArtifact("a").Wrap(errors.New("c"))
	if base.Step != "" || base.Rule != "" || base.Artifact != "" || base.Err != nil {
		t.Fatalf("helpers mutated the shared error: %+v", base)
	}
}

func TestKindOf(t *testing.T) {
	wrapped := fmt.Errorf("policy %q: %w", "api", New(Expired, "old"))
	if got := KindOf(wrapped); got != Expired {
		t.Errorf("KindOf(wrapped) = %q, want %q", got, Expired)
	}
	if got := KindOf(errors.New("plain")); got != Malformed {
		t.Errorf("KindOf(plain) = %q, want %q", got, Malformed)
	}
	if got := As(errors.New("plain")); got.Kind != Malformed || got.Error() != "plain" {
		t.Errorf("As(plain) = %+v", got)
	}
}
