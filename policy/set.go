package policy

import (
	"errors"
	"time"
)

// SKELETON: being written (docs/dev/BRIEF.md). Signatures are binding.

// Set is an immutable, versioned view of everything loaded from a policy directory. It is
// safe for concurrent use.
type Set struct {
	Generation uint64
}

// Load parses every file of a policy directory (by relative path) into a Set.
func Load(files map[string][]byte, generation uint64) (*Set, error) {
	return nil, errors.New("policy: not implemented yet")
}

// Evaluate decides req against the set, using ev as evidence and now as the current time.
func (s *Set) Evaluate(req Request, ev Evidence, now time.Time) Decision {
	return Decision{Outcome: Denied, Mode: Enforce, Message: "tollgate: policy evaluation not implemented"}
}
