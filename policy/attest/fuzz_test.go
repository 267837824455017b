package attest

import (
	"testing"
)

// The predicates are decoded by package predicate, whose fuzz targets cover them.
func FuzzParseStatement(f *testing.F) {
	subj := `[{"name":"x","digest":{"sha256":"` + hexA + `"}}]`
	f.Add([]byte(statementJSON(StatementV1, PredicateSLSAProvenanceV1, subj, `{"buildDefinition":{"buildType":"x","externalParameters":{}},"runDetails":{"builder":{"id":"b"}}}`)))
	f.Add([]byte(statementJSON(StatementV01, PredicateSLSAProvenanceV02, subj, `{"builder":{"id":"b"},"buildType":"x"}`)))
	f.Add([]byte(statementJSON(StatementV1, PredicateLinkV03, subj, `{"name":"build","materials":[{"name":"a","digest":{"sha256":"`+hexB+`"}}]}`)))
	f.Add([]byte(statementJSON(StatementV01, "p", subj, "")))
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{}}]}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := Parse(data)
		if err != nil {
			return
		}
		if len(st.Subjects) == 0 || st.PredicateType == "" || !IsStatementType(st.Type) {
			t.Fatalf("accepted an invalid statement: %+v", st)
		}
		for _, dg := range st.SubjectDigests() {
			if !st.BoundTo(dg) {
				t.Fatalf("statement not bound to its own subject digest %s", dg)
			}
		}
		_, _ = st.Map()
	})
}

func FuzzUnwrap(f *testing.F) {
	subj := `[{"name":"x","digest":{"sha256":"` + hexA + `"}}]`
	st := statementJSON(StatementV1, PredicateSLSAProvenanceV1, subj, `{}`)
	f.Add([]byte(dsseJSON(st)))
	f.Add([]byte(dsseJSON(st) + "\n" + dsseJSON(st) + "\n"))
	f.Add([]byte(bundleJSON("application/vnd.dev.sigstore.bundle.v0.3+json", dsseJSON(st))))
	f.Add([]byte(`{"signed":{"_type":"link","name":"build"},"signatures":[{"keyid":"ab","sig":"00"}]}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","messageSignature":{}}`))
	f.Add([]byte(oldBundle(dsseJSON(st), "PEM")))
	f.Add([]byte(cosignLayer("application/vnd.dsse.envelope.v1+json", dsseJSON(st))))
	f.Add([]byte("\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		envs, err := Unwrap(data)
		if err != nil {
			return
		}
		if len(envs) == 0 || len(envs) > MaxEnvelopes {
			t.Fatalf("Unwrap returned %d envelopes without error", len(envs))
		}
		for _, e := range envs {
			if e == nil {
				t.Fatal("nil envelope")
			}
		}
	})
}
