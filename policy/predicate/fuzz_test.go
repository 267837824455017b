package predicate

import (
	"testing"

	"tollgate.dev/tollgate/policy/attest"
)

func FuzzParseProvenance(f *testing.F) {
	f.Add(true, []byte(slsaV1Predicate))
	f.Add(false, []byte(slsaV02Predicate))
	f.Add(true, []byte(`{"buildDefinition":{"buildType":"x","externalParameters":{}},"runDetails":{"builder":{"id":"b"}}}`))
	f.Add(true, []byte(`{"buildDefinition":{"buildType":"x"},"runDetails":{"builder":{"id":"b"}}}`))
	f.Add(false, []byte(`{"buildType":"x"}`))
	f.Add(false, []byte(`{`))
	f.Fuzz(func(t *testing.T, v1 bool, data []byte) {
		typ, version := attest.PredicateSLSAProvenanceV02, "v0.2"
		if v1 {
			typ, version = attest.PredicateSLSAProvenanceV1, "v1"
		}
		p, err := ParseProvenance(typ, data)
		if err != nil {
			return
		}
		if p.Version != version || p.BuilderID == "" {
			t.Fatalf("accepted %s provenance as version %q with builder %q", version, p.Version, p.BuilderID)
		}
		if m := p.Map(); m["builderId"] != p.BuilderID || m["parameters"] == nil || m["internalParameters"] == nil {
			t.Fatalf("map %v", m)
		}
	})
}
