// Package attest reads in-toto attestations: ITE-6 Statements (v0.1 and v1) and the
// containers they travel in (bare DSSE envelopes, cosign's JSON lines, Sigstore bundles).
// Predicates stay raw JSON here; package predicate decodes SLSA provenance and the link
// predicate. That split keeps the protobuf runtime out of the offline verifier.
//
// Parsing here establishes shape only. Whether a Statement is trusted is decided by the
// caller, which verifies the envelope's signatures and the subject binding.
package attest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/internal/jsonlimit"
	"tollgate.dev/tollgate/policy/reason"
)

// Statement type URIs (ITE-6).
const (
	StatementV01 = "https://in-toto.io/Statement/v0.1"
	StatementV1  = "https://in-toto.io/Statement/v1"
)

// Predicate type URIs known by name.
const (
	PredicateSLSAProvenanceV02 = "https://slsa.dev/provenance/v0.2"
	PredicateSLSAProvenanceV1  = "https://slsa.dev/provenance/v1"
	PredicateLinkV03           = "https://in-toto.io/attestation/link/v0.3"
	// PredicateLinkV1 is the deprecated form whose predicate is a whole in-toto link.
	PredicateLinkV1 = "https://in-toto.io/Link/v1"
)

// MaxSubjects bounds the subjects of one Statement. Real provenance names a handful;
// a generic release statement may name a few thousand files.
const MaxSubjects = 10000

// Statement is an ITE-6 Statement. Predicate is the raw JSON of the predicate (nil when a
// v0.1 Statement omits it).
type Statement struct {
	Type          string
	PredicateType string
	Subjects      []Subject
	Predicate     json.RawMessage
}

// Subject is one artifact a Statement speaks about. Digest maps an algorithm ("sha256")
// to its lower-case hex value.
type Subject struct {
	Name   string
	Digest map[string]string
}

type wireStatement struct {
	Type          string          `json:"_type"`
	Subject       []wireSubject   `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate"`
}

type wireSubject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// IsStatementType reports whether t names an ITE-6 Statement version this package reads.
func IsStatementType(t string) bool { return t == StatementV01 || t == StatementV1 }

// Parse decodes and validates a Statement (the payload of a DSSE envelope).
func Parse(payload []byte) (*Statement, error) {
	var w wireStatement
	// In place: the payload is untrusted and may be megabytes; its predicate stays raw.
	if err := jsonlimit.Unmarshal(payload, jsonlimit.MaxBytes, &w); err != nil {
		return nil, malformed("statement is not valid JSON", err)
	}
	// A member named twice (two "subject"s) is read as the last by this decoder and as
	// the first by others: a signed Statement must read one way only.
	if err := jsonlimit.Unique(payload); err != nil {
		return nil, malformed("statement", err)
	}
	if !IsStatementType(w.Type) {
		if w.Type == "" {
			return nil, reason.New(reason.Malformed, "statement has no _type")
		}
		return nil, reason.New(reason.Malformed, "statement _type %q is not an in-toto Statement (want %s or %s)", reason.Clip(w.Type), StatementV01, StatementV1)
	}
	if w.PredicateType == "" {
		return nil, reason.New(reason.Malformed, "statement has no predicateType")
	}
	if len(w.Subject) == 0 {
		return nil, reason.New(reason.Malformed, "statement has no subject")
	}
	if len(w.Subject) > MaxSubjects {
		return nil, reason.New(reason.Malformed, "statement has %d subjects, over the limit of %d", len(w.Subject), MaxSubjects)
	}
	pred := w.Predicate
	if isNull(pred) {
		pred = nil
	}
	if pred == nil && w.Type == StatementV1 {
		return nil, reason.New(reason.Malformed, "statement v1 has no predicate")
	}
	if pred != nil && firstByte(pred) != '{' {
		return nil, reason.New(reason.Malformed, "statement predicate is not a JSON object")
	}
	st := &Statement{Type: w.Type, PredicateType: w.PredicateType, Predicate: pred, Subjects: make([]Subject, 0, len(w.Subject))}
	for i, s := range w.Subject {
		if len(s.Digest) == 0 {
			return nil, reason.New(reason.Malformed, "statement subject %d (%q) has no digest", i, reason.Clip(s.Name))
		}
		d := make(map[string]string, len(s.Digest))
		for alg, hex := range s.Digest {
			if err := checkDigest(alg, hex); err != nil {
				return nil, malformed(fmt.Sprintf("statement subject %d (%q)", i, reason.Clip(s.Name)), err)
			}
			d[strings.ToLower(alg)] = strings.ToLower(hex)
		}
		st.Subjects = append(st.Subjects, Subject{Name: s.Name, Digest: d})
	}
	return st, nil
}

// BoundTo reports whether any subject names one of digests ("sha256:<hex>"). Comparison
// ignores the case of the hex value; a malformed digest never matches.
func (s *Statement) BoundTo(digests ...string) bool {
	if s == nil {
		return false
	}
	for _, want := range digests {
		alg, hex, ok := strings.Cut(want, ":")
		if !ok || alg == "" || hex == "" {
			continue
		}
		alg, hex = strings.ToLower(alg), strings.ToLower(hex)
		for _, sub := range s.Subjects {
			if got, ok := sub.Digest[alg]; ok && got == hex {
				return true
			}
		}
	}
	return false
}

// SubjectDigests lists the subjects' digests as "alg:hex", for messages.
func (s *Statement) SubjectDigests() []string {
	var out []string
	for _, sub := range s.Subjects {
		for alg, hex := range sub.Digest {
			out = append(out, alg+":"+hex)
		}
	}
	return out
}

// PredicateMap decodes the predicate as generic JSON (objects as map[string]any, numbers as
// float64), the shape policy conditions see. A missing predicate is an empty map.
func (s *Statement) PredicateMap() (map[string]any, error) {
	m := map[string]any{}
	if len(s.Predicate) == 0 {
		return m, nil
	}
	if err := json.Unmarshal(s.Predicate, &m); err != nil {
		return nil, malformed("statement predicate", err)
	}
	return m, nil
}

// Map renders the Statement as generic JSON, with predicate decoded as by PredicateMap.
func (s *Statement) Map() (map[string]any, error) {
	pred, err := s.PredicateMap()
	if err != nil {
		return nil, err
	}
	subs := make([]any, 0, len(s.Subjects))
	for _, sub := range s.Subjects {
		d := make(map[string]any, len(sub.Digest))
		for k, v := range sub.Digest {
			d[k] = v
		}
		subs = append(subs, map[string]any{"name": sub.Name, "digest": d})
	}
	return map[string]any{
		"_type":         s.Type,
		"predicateType": s.PredicateType,
		"subject":       subs,
		"predicate":     pred,
	}, nil
}

// digestHexLen is the hex length of the fixed-size algorithms ITE-6 names.
var digestHexLen = map[string]int{
	"sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128,
	"sha512_224": 56, "sha512_256": 64, "sha3_224": 56, "sha3_256": 64, "sha3_384": 96, "sha3_512": 128,
	"gitcommit": 40, "gittree": 40, "gitblob": 40,
}

func checkDigest(alg, value string) error {
	if alg == "" || value == "" {
		return fmt.Errorf("empty digest algorithm or value")
	}
	n, fixed := digestHexLen[strings.ToLower(alg)]
	if !fixed {
		return nil // an algorithm we do not know can never match a policy digest; keep it
	}
	if len(value) != n && !(strings.HasPrefix(strings.ToLower(alg), "git") && len(value) == 64) {
		return fmt.Errorf("%s digest has %d hex digits, want %d", alg, len(value), n)
	}
	for _, c := range value {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return fmt.Errorf("%s digest is not hex", alg)
		}
	}
	return nil
}

func malformed(what string, err error) *reason.Error {
	return reason.New(reason.Malformed, "%s", what).Wrap(err)
}

// isNull reports whether raw is empty or null, without copying it (a predicate may be
// megabytes).
func isNull(raw json.RawMessage) bool {
	s := bytes.TrimSpace(raw)
	return len(s) == 0 || bytes.Equal(s, []byte("null"))
}

func firstByte(raw json.RawMessage) byte {
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c
	}
	return 0
}

// FromEnvelope reads the Statement an envelope carries, under the rules the node applies
// to evidence: a Statement travels only in a DSSE envelope whose payload type is in-toto's
// (a Metablock's "signed" is canonicalized before its signature is checked, so what was
// signed is not the bytes that are read), and its JSON names no member twice.
func FromEnvelope(env *envelope.Signed) (*Statement, error) {
	if env.Format != envelope.DSSE {
		return nil, reason.New(reason.Malformed, "a Statement must travel in a DSSE envelope, not a Metablock")
	}
	if env.PayloadType != envelope.PayloadTypeInToto {
		return nil, reason.New(reason.Malformed, "DSSE payload type %q is not in-toto (%s)", reason.Clip(env.PayloadType), envelope.PayloadTypeInToto)
	}
	return Parse(env.Payload)
}
