package predicate

import (
	linkv0 "github.com/in-toto/attestation/go/predicates/link/v0"

	"tollgate.dev/tollgate/policy/internal/jsonlimit"
	"tollgate.dev/tollgate/policy/reason"
)

// Link is the in-toto link predicate (https://in-toto.io/attestation/link/v0.3, predicate
// type attest.PredicateLinkV03): a link whose products are the Statement's subjects.
type Link struct {
	Name        string
	Command     []string
	Materials   []Resource
	Byproducts  map[string]any
	Environment map[string]any
}

// ParseLink decodes an in-toto link predicate.
func ParseLink(predicate []byte) (*Link, error) {
	if err := jsonlimit.Check(predicate, jsonlimit.MaxBytes); err != nil {
		return nil, malformed("link predicate", err)
	}
	var l linkv0.Link
	if err := protoOpts.Unmarshal(predicate, &l); err != nil {
		return nil, malformed("in-toto link predicate", err)
	}
	if l.GetName() == "" {
		return nil, reason.New(reason.Malformed, "in-toto link predicate has no name")
	}
	return &Link{
		Name:        l.GetName(),
		Command:     l.GetCommand(),
		Materials:   resources(l.GetMaterials()),
		Byproducts:  structMap(l.GetByproducts()),
		Environment: structMap(l.GetEnvironment()),
	}, nil
}
