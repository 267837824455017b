// Package predicate decodes the predicates a node policy reads: SLSA provenance v0.2 and
// v1, and the in-toto link predicate.
//
// Decoding goes through the in-toto attestation library's protobuf types, so that its
// validation rules apply. That links the protobuf runtime and registers descriptors at
// start-up, which is why this lives apart from package attest: the offline verifier
// (tollgate verify) reads Statements and envelopes but never a predicate, and must not
// pay for it.
package predicate

import (
	attv1 "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"tollgate.dev/tollgate/policy/reason"
)

// Producers add fields faster than the protos follow; unknown fields are not an error.
var protoOpts = protojson.UnmarshalOptions{DiscardUnknown: true}

// Resource is an artifact named by a predicate (a material, a dependency).
type Resource struct {
	Name       string
	URI        string
	Digest     map[string]string
	EntryPoint string // v0.2 configSource only
}

// Map renders the resource as generic JSON.
func (r Resource) Map() map[string]any {
	d := make(map[string]any, len(r.Digest))
	for k, v := range r.Digest {
		d[k] = v
	}
	m := map[string]any{"name": r.Name, "uri": r.URI, "digest": d}
	if r.EntryPoint != "" {
		m["entryPoint"] = r.EntryPoint
	}
	return m
}

func resources(rds []*attv1.ResourceDescriptor) []Resource {
	out := make([]Resource, 0, len(rds))
	for _, rd := range rds {
		out = append(out, Resource{Name: rd.GetName(), URI: rd.GetUri(), Digest: rd.GetDigest()})
	}
	return out
}

func structMap(s *structpb.Struct) map[string]any {
	if s == nil {
		return nil
	}
	return s.AsMap()
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// malformed and clip are package attest's, so errors read the same as before the split.
func malformed(what string, err error) *reason.Error {
	return reason.New(reason.Malformed, "%s", what).Wrap(err)
}
