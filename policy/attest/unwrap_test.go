package attest

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"tollgate.dev/tollgate/policy/cosign"
	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/reason"
)

func dsseJSON(payload string) string {
	b, _ := json.Marshal(map[string]any{
		"payloadType": envelope.PayloadTypeInToto,
		"payload":     base64.StdEncoding.EncodeToString([]byte(payload)),
		"signatures":  []map[string]string{{"keyid": "", "sig": base64.StdEncoding.EncodeToString([]byte("sig"))}},
	})
	return string(b)
}

func bundleJSON(mediaType, dsse string) string {
	return `{"mediaType":"` + mediaType + `","verificationMaterial":{"publicKey":{"hint":"abc"},"tlogEntries":[]},"dsseEnvelope":` + dsse + `}`
}

// oldBundle is cosign's older blob bundle as `cosign attest-blob --bundle` writes it.
func oldBundle(env, cert string) string {
	m := map[string]string{"base64Signature": base64.StdEncoding.EncodeToString([]byte(env))}
	if cert != "" {
		m["cert"] = base64.StdEncoding.EncodeToString([]byte(cert))
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func cosignLayer(mediaType, blob string) string {
	b, err := cosign.MarshalLayer(mediaType, map[string]string{cosign.AnnotationCertificate: "cert"}, []byte(blob))
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestUnwrap(t *testing.T) {
	subj := `[{"name":"x","digest":{"sha256":"` + hexA + `"}}]`
	st1 := statementJSON(StatementV1, PredicateSLSAProvenanceV1, subj, `{"a":1}`)
	st2 := statementJSON(StatementV1, "https://example.com/p", subj, `{"b":2}`)
	metablock := `{"signed":{"_type":"link","name":"build"},"signatures":[{"keyid":"ab","sig":"00"}]}`
	tests := []struct {
		name     string
		in       string
		payloads []string
		wantErr  string
	}{
		{"dsse", dsseJSON(st1), []string{st1}, ""},
		{"dsse pretty", "\n  " + dsseJSON(st1) + "\n\n", []string{st1}, ""},
		{"json lines", dsseJSON(st1) + "\n" + dsseJSON(st2) + "\n", []string{st1, st2}, ""},
		{"json lines crlf", dsseJSON(st1) + "\r\n" + dsseJSON(st2) + "\r\n", []string{st1, st2}, ""},
		{"bundle v0.3", bundleJSON("application/vnd.dev.sigstore.bundle.v0.3+json", dsseJSON(st1)), []string{st1}, ""},
		{"bundle v0.2", bundleJSON("application/vnd.dev.sigstore.bundle+json;version=0.2", dsseJSON(st2)), []string{st2}, ""},
		{"metablock", metablock, []string{`{"_type":"link","name":"build"}`}, ""},
		{"bundle message signature", `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","messageSignature":{"signature":"AA=="}}`, nil, "message signature, not a DSSE envelope"},
		{"bundle without envelope", `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`, nil, "no dsseEnvelope"},
		{"unknown media type", bundleJSON("application/vnd.example+json", dsseJSON(st1)), nil, "unsupported media type"},
		{"bundle with metablock", bundleJSON("application/vnd.dev.sigstore.bundle.v0.3+json", metablock), nil, "not a DSSE envelope"},
		{"empty", "  \n", nil, "empty"},
		{"not json", "hello", nil, "not valid JSON"},
		{"array", "[1,2]", nil, "not a JSON object"},
		{"bad second line", dsseJSON(st1) + "\n{\"payload\":1}\n", nil, "evidence document 2 of 2"},
		{"truncated", dsseJSON(st1)[:40], nil, "not valid JSON"},
		{"cosign attest-blob bundle", oldBundle(dsseJSON(st1), "PUBKEY PEM"), []string{st1}, ""},
		{"cosign attest-blob bundle with rekor", strings.TrimSuffix(oldBundle(dsseJSON(st2), ""), "}") + `,"rekorBundle":{"SignedEntryTimestamp":"AA==","Payload":{"body":"e30=","integratedTime":1,"logIndex":1,"logID":"ab"}}}`, []string{st2}, ""},
		{"cosign sign-blob bundle", `{"base64Signature":"AAEC"}`, nil, "signature over a blob (sign-blob)"},
		{"cosign bundle of a metablock", oldBundle(metablock, ""), nil, "Metablock"},
		{"cosign att layer", cosignLayer(cosign.MediaTypeDSSE, dsseJSON(st1)), []string{st1}, ""},
		{"cosign att layer of a metablock", cosignLayer(cosign.MediaTypeDSSE, metablock), nil, "does not hold a DSSE envelope"},
		{"cosign att layer tampered", strings.Replace(cosignLayer(cosign.MediaTypeDSSE, dsseJSON(st1)), `"size":`, `"size":1`, 1), nil, "size says"},
		{"cosign sig layer", cosignLayer(cosign.MediaTypeSimpleSigning, `{}`), nil, "signs an image, it is not an attestation"},
		{"bad base64", `{"payloadType":"application/vnd.in-toto+json","payload":"!!","signatures":[]}`, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			envs, err := Unwrap([]byte(tt.in))
			if tt.payloads == nil {
				if err == nil {
					t.Fatalf("Unwrap succeeded with %d envelopes, want error", len(envs))
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %q does not contain %q", err, tt.wantErr)
				}
				if k := reason.KindOf(err); k != reason.Malformed {
					t.Fatalf("kind %s, want malformed", k)
				}
				return
			}
			if err != nil {
				t.Fatalf("Unwrap: %v", err)
			}
			if len(envs) != len(tt.payloads) {
				t.Fatalf("%d envelopes, want %d", len(envs), len(tt.payloads))
			}
			for i, e := range envs {
				if string(e.Payload) != tt.payloads[i] {
					t.Errorf("envelope %d payload %s, want %s", i, e.Payload, tt.payloads[i])
				}
			}
		})
	}
}

func TestUnwrapBounds(t *testing.T) {
	line := dsseJSON(statementJSON(StatementV1, "p", `[{"name":"x","digest":{"sha256":"`+hexA+`"}}]`, `{}`)) + "\n"
	if _, err := Unwrap([]byte(strings.Repeat(line, MaxEnvelopes))); err != nil {
		t.Fatalf("%d envelopes rejected: %v", MaxEnvelopes, err)
	}
	_, err := Unwrap([]byte(strings.Repeat(line, MaxEnvelopes+1)))
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("err = %v, want envelope count limit", err)
	}
	_, err = Unwrap([]byte(`{"a":"` + strings.Repeat("x", MaxFileBytes) + `"}`))
	if err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("err = %v, want size limit", err)
	}
	_, err = Unwrap([]byte(strings.Repeat("[", 1000)))
	if err == nil || !strings.Contains(err.Error(), "nests deeper") {
		t.Fatalf("err = %v, want depth limit", err)
	}
}
