// Package vsa reads and writes SLSA verification summary attestations (VSA v1,
// https://slsa.dev/spec/v1.0/verification_summary): the predicate a verifier signs to say
// "I checked this artifact against this policy, at this time, and it passed at these
// levels". It is pure: times are passed in, never read from the clock.
//
// A VSA is only as good as the verifier that signed it and the policy it names. Package
// vsa decodes the predicate through the in-toto attestation library's types and judges
// one against a Rule (Rule.Check); package policy decides which signers count.
package vsa

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	vsav1 "github.com/in-toto/attestation/go/predicates/vsa/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"tollgate.dev/tollgate/policy/internal/jsonlimit"
	"tollgate.dev/tollgate/policy/reason"
)

// PredicateType is the VSA v1 predicate type URI.
const PredicateType = "https://slsa.dev/verification_summary/v1"

// Verification results a VSA records.
const (
	Passed = "PASSED"
	Failed = "FAILED"
)

// Bounds on one predicate: a VSA names a handful of levels and input attestations.
const (
	maxPredicateBytes = 1 << 20
	maxLevels         = 32
	maxFieldBytes     = 2048
)

// Summary is the part of a VSA predicate a node judges.
type Summary struct {
	VerifierID   string
	TimeVerified time.Time
	ResourceURI  string
	PolicyURI    string
	PolicyDigest map[string]string // algorithm -> lower-case hex
	Result       string
	Levels       []string
	SLSAVersion  string
}

// Producers add fields faster than the protos follow; unknown fields are not an error.
// (Members named twice are refused before this, by the Statement parser.)
var unmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}

// Parse decodes a VSA v1 predicate (the "predicate" member of its Statement). Every field
// a node judges must be present: the verifier, the time, the resource, the policy and the
// result.
func Parse(predicate []byte) (*Summary, error) {
	if err := jsonlimit.Check(predicate, maxPredicateBytes); err != nil {
		return nil, reason.New(reason.Malformed, "VSA predicate").Wrap(err)
	}
	var p vsav1.VerificationSummary
	if err := unmarshal.Unmarshal(predicate, &p); err != nil {
		return nil, reason.New(reason.Malformed, "VSA predicate is not a verification summary v1").Wrap(err)
	}
	s := &Summary{
		VerifierID:  p.GetVerifier().GetId(),
		ResourceURI: p.GetResourceUri(),
		PolicyURI:   p.GetPolicy().GetUri(),
		Result:      p.GetVerificationResult(),
		Levels:      p.GetVerifiedLevels(),
		SLSAVersion: p.GetSlsaVersion(),
	}
	missing := func(field string) error {
		return reason.New(reason.Malformed, "VSA predicate has no %s", field)
	}
	switch {
	case s.VerifierID == "":
		return nil, missing("verifier.id")
	case p.GetTimeVerified() == nil:
		return nil, missing("timeVerified")
	case s.ResourceURI == "":
		return nil, missing("resourceUri")
	case s.PolicyURI == "" && len(p.GetPolicy().GetDigest()) == 0:
		return nil, missing("policy (uri or digest)")
	case s.Result != Passed && s.Result != Failed:
		return nil, reason.New(reason.Malformed, "VSA verificationResult %q is neither %s nor %s", reason.Clip(s.Result), Passed, Failed)
	case len(s.Levels) > maxLevels:
		return nil, reason.New(reason.Malformed, "VSA has %d verifiedLevels, over the limit of %d", len(s.Levels), maxLevels)
	}
	if err := p.GetTimeVerified().CheckValid(); err != nil {
		return nil, reason.New(reason.Malformed, "VSA timeVerified").Wrap(err)
	}
	s.TimeVerified = p.GetTimeVerified().AsTime()
	for _, f := range []string{s.VerifierID, s.ResourceURI, s.PolicyURI} {
		if len(f) > maxFieldBytes {
			return nil, reason.New(reason.Malformed, "VSA field %q is over %d bytes", reason.Clip(f), maxFieldBytes)
		}
	}
	s.PolicyDigest = make(map[string]string, len(p.GetPolicy().GetDigest()))
	for alg, hex := range p.GetPolicy().GetDigest() {
		s.PolicyDigest[strings.ToLower(alg)] = strings.ToLower(hex)
	}
	return s, nil
}

// Predicate renders s as a VSA v1 predicate (JSON), through the in-toto attestation
// library's types. Input attestations are the evidence the verifier relied on.
func (s *Summary) Predicate(inputs []Input) (json.RawMessage, error) {
	if s.VerifierID == "" || s.ResourceURI == "" || s.TimeVerified.IsZero() {
		return nil, fmt.Errorf("a VSA needs a verifier id, a resource URI and a time")
	}
	if s.Result != Passed && s.Result != Failed {
		return nil, fmt.Errorf("verification result %q is neither %s nor %s", s.Result, Passed, Failed)
	}
	p := &vsav1.VerificationSummary{
		Verifier:           &vsav1.VerificationSummary_Verifier{Id: s.VerifierID},
		TimeVerified:       timestamppb.New(s.TimeVerified.UTC()),
		ResourceUri:        s.ResourceURI,
		Policy:             &vsav1.VerificationSummary_Policy{Uri: s.PolicyURI, Digest: s.PolicyDigest},
		VerificationResult: s.Result,
		VerifiedLevels:     s.Levels,
		SlsaVersion:        s.SLSAVersion,
	}
	if p.VerifiedLevels == nil {
		p.VerifiedLevels = []string{} // required by the spec, even when empty
	}
	for _, in := range inputs {
		p.InputAttestations = append(p.InputAttestations, &vsav1.VerificationSummary_InputAttestation{Uri: in.URI, Digest: in.Digest})
	}
	raw, err := protojson.Marshal(p)
	if err != nil {
		return nil, err
	}
	if len(s.Levels) == 0 {
		// protojson leaves an empty list out; the spec makes verifiedLevels required.
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, err
		}
		m["verifiedLevels"] = json.RawMessage("[]")
		return json.Marshal(m)
	}
	return raw, nil
}

// Input is one attestation a verifier relied on, by URI (or file name) and digest.
type Input struct {
	URI    string
	Digest map[string]string
}
