// Package cosigntest writes what cosign v2 writes for a keyless signature, from a
// Sigstore made in a test (sigstore-go's testing CA): the layer annotations and a
// trusted_root.json for it. For tests only.
package cosigntest

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"

	"tollgate.dev/tollgate/policy/cosign"
)

// Annotations returns the annotations cosign v2 puts beside a keyless signature made by
// ent: the leaf certificate (PEM), the Rekor bundle (a SET over the log entry), and, when
// sig is not nil, the signature (base64; an .att layer's is in its envelope).
func Annotations(vs *ca.VirtualSigstore, ent *ca.TestEntity, sig []byte) (map[string]string, error) {
	vc, err := ent.VerificationContent()
	if err != nil {
		return nil, err
	}
	cert, ok := vc.(*bundle.Certificate)
	if !ok {
		return nil, fmt.Errorf("the entity has no certificate")
	}
	entries, err := ent.TlogEntries()
	if err != nil || len(entries) != 1 {
		return nil, fmt.Errorf("want one log entry, have %d (%v)", len(entries), err)
	}
	logID, err := vs.RekorLogID()
	if err != nil {
		return nil, err
	}
	e := entries[0]
	rp := tlog.RekorPayload{Body: e.Body(), IntegratedTime: e.IntegratedTime().Unix(), LogIndex: e.LogIndex(), LogID: logID}
	set, err := vs.RekorSignPayload(rp)
	if err != nil {
		return nil, err
	}
	rb, err := json.Marshal(map[string]any{"SignedEntryTimestamp": set, "Payload": rp})
	if err != nil {
		return nil, err
	}
	ann := map[string]string{
		cosign.AnnotationCertificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate().Raw})),
		cosign.AnnotationBundle:      string(rb),
	}
	if sig != nil {
		ann[cosign.AnnotationSignature] = base64.StdEncoding.EncodeToString(sig)
	}
	return ann, nil
}

// TrustedRoot returns vs's trust material as a trusted_root.json. Its CA embeds no SCTs:
// require none of this instance.
func TrustedRoot(vs *ca.VirtualSigstore) ([]byte, error) {
	// The virtual Sigstore's logs carry their hex key IDs as bytes; a trusted_root.json
	// holds the raw key ID, which readers hex-encode again.
	rawIDs := func(logs map[string]*root.TransparencyLog) map[string]*root.TransparencyLog {
		out := map[string]*root.TransparencyLog{}
		for id, l := range logs {
			c := *l
			if raw, err := hex.DecodeString(id); err == nil {
				c.ID = raw
			}
			out[id] = &c
		}
		return out
	}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, vs.FulcioCertificateAuthorities(), rawIDs(vs.CTLogs()),
		vs.TimestampingAuthorities(), rawIDs(vs.RekorLogs()))
	if err != nil {
		return nil, err
	}
	return tr.MarshalJSON()
}
