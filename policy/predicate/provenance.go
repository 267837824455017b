package predicate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	slsa02 "github.com/in-toto/attestation/go/predicates/provenance/v02"
	slsa1 "github.com/in-toto/attestation/go/predicates/provenance/v1"

	"tollgate.dev/tollgate/policy/attest"
	"tollgate.dev/tollgate/policy/internal/jsonlimit"
	"tollgate.dev/tollgate/policy/reason"
)

// Provenance is the version-independent view of a SLSA provenance predicate: the fields
// a node policy asks about, under one name whichever SLSA version the builder wrote.
type Provenance struct {
	// Version is "v0.2" or "v1".
	Version   string
	BuilderID string
	BuildType string
	// Materials are v0.2 materials or v1 resolvedDependencies.
	Materials []Resource
	// Parameters are v0.2 invocation.parameters or v1 buildDefinition.externalParameters.
	Parameters map[string]any
	// InternalParameters are v1 buildDefinition.internalParameters (nil for v0.2).
	InternalParameters map[string]any
	// ConfigSource is v0.2 invocation.configSource (nil for v1).
	ConfigSource *Resource
	InvocationID string
	StartedOn    time.Time
	FinishedOn   time.Time
}

// IsProvenance reports whether predicateType is a SLSA provenance version this package reads.
func IsProvenance(predicateType string) bool {
	return predicateType == attest.PredicateSLSAProvenanceV02 || predicateType == attest.PredicateSLSAProvenanceV1
}

// ParseProvenance decodes a SLSA provenance predicate of the given type.
func ParseProvenance(predicateType string, predicate []byte) (*Provenance, error) {
	if err := jsonlimit.Check(predicate, jsonlimit.MaxBytes); err != nil {
		return nil, malformed("provenance predicate", err)
	}
	switch predicateType {
	case attest.PredicateSLSAProvenanceV02:
		return parseProvenanceV02(predicate)
	case attest.PredicateSLSAProvenanceV1:
		return parseProvenanceV1(predicate)
	}
	return nil, reason.New(reason.Malformed, "predicate type %q is not SLSA provenance v0.2 or v1", reason.Clip(predicateType))
}

func parseProvenanceV02(predicate []byte) (*Provenance, error) {
	var p slsa02.Provenance
	if err := protoOpts.Unmarshal(predicate, &p); err != nil {
		return nil, malformed("SLSA provenance v0.2 predicate", err)
	}
	out := &Provenance{
		Version:    "v0.2",
		BuilderID:  p.GetBuilder().GetId(),
		BuildType:  p.GetBuildType(),
		Parameters: structMap(p.GetInvocation().GetParameters()),
	}
	if cs := p.GetInvocation().GetConfigSource(); cs != nil {
		out.ConfigSource = &Resource{URI: cs.GetUri(), Digest: cs.GetDigest(), EntryPoint: cs.GetEntryPoint()}
	}
	for _, m := range p.GetMaterials() {
		out.Materials = append(out.Materials, Resource{URI: m.GetUri(), Digest: m.GetDigest()})
	}
	if md := p.GetMetadata(); md != nil {
		out.InvocationID = md.GetBuildInvocationId()
		out.StartedOn = stamp(md.GetBuildStartedOn().AsTime(), md.GetBuildStartedOn() != nil)
		out.FinishedOn = stamp(md.GetBuildFinishedOn().AsTime(), md.GetBuildFinishedOn() != nil)
	}
	if out.BuilderID == "" {
		return nil, reason.New(reason.Malformed, "SLSA provenance v0.2 predicate has no builder.id")
	}
	return out, nil
}

func parseProvenanceV1(predicate []byte) (*Provenance, error) {
	var p slsa1.Provenance
	if err := protoOpts.Unmarshal(predicate, &p); err != nil {
		return nil, malformed("SLSA provenance v1 predicate", err)
	}
	if err := validateV1(&p, predicate); err != nil {
		return nil, malformed("SLSA provenance v1 predicate", err)
	}
	bd, rd := p.GetBuildDefinition(), p.GetRunDetails()
	out := &Provenance{
		Version:            "v1",
		BuilderID:          rd.GetBuilder().GetId(),
		BuildType:          bd.GetBuildType(),
		Parameters:         structMap(bd.GetExternalParameters()),
		InternalParameters: structMap(bd.GetInternalParameters()),
		Materials:          resources(bd.GetResolvedDependencies()),
	}
	if md := rd.GetMetadata(); md != nil {
		out.InvocationID = md.GetInvocationId()
		out.StartedOn = stamp(md.GetStartedOn().AsTime(), md.GetStartedOn() != nil)
		out.FinishedOn = stamp(md.GetFinishedOn().AsTime(), md.GetFinishedOn() != nil)
	}
	return out, nil
}

// Map renders the normalized view as generic JSON for policy conditions:
// {version, builderId, buildType, materials: [{name, uri, digest}], parameters,
// internalParameters, configSource, invocationId}.
func (p *Provenance) Map() map[string]any {
	mats := make([]any, 0, len(p.Materials))
	for _, m := range p.Materials {
		mats = append(mats, m.Map())
	}
	out := map[string]any{
		"version":            p.Version,
		"builderId":          p.BuilderID,
		"buildType":          p.BuildType,
		"materials":          mats,
		"parameters":         orEmpty(p.Parameters),
		"internalParameters": orEmpty(p.InternalParameters),
		"invocationId":       p.InvocationID,
	}
	if p.ConfigSource != nil {
		out["configSource"] = p.ConfigSource.Map()
	}
	return out
}

func stamp(t time.Time, present bool) time.Time {
	if !present {
		return time.Time{}
	}
	return t
}

// validateV1 applies the attestation library's SLSA v1 checks, except one: the library
// takes an empty externalParameters object for a missing one. SLSA v1 requires the field,
// not that it be non-empty, and builds with no external inputs (cosign's own examples
// among them) write {}. Such provenance is valid and must not be denied.
func validateV1(p *slsa1.Provenance, predicate []byte) error {
	err := p.Validate()
	if !errors.Is(err, slsa1.ErrExternalParamsRequired) || !hasExternalParameters(predicate) {
		return err
	}
	bd := p.GetBuildDefinition()
	for i, rd := range bd.GetResolvedDependencies() {
		if err := rd.Validate(); err != nil {
			return fmt.Errorf("buildDefinition.resolvedDependencies[%d]: %w", i, err)
		}
	}
	rd := p.GetRunDetails()
	if rd == nil {
		return slsa1.ErrRunDetailsRequired
	}
	return rd.Validate()
}

// hasExternalParameters reports whether the predicate states externalParameters as an
// object, even an empty one.
func hasExternalParameters(predicate []byte) bool {
	var probe struct {
		BuildDefinition struct {
			ExternalParameters json.RawMessage `json:"externalParameters"`
		} `json:"buildDefinition"`
	}
	if json.Unmarshal(predicate, &probe) != nil {
		return false
	}
	raw := bytes.TrimSpace(probe.BuildDefinition.ExternalParameters)
	return len(raw) > 0 && raw[0] == '{'
}
