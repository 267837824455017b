package sigstore

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"google.golang.org/protobuf/proto"

	"tollgate.dev/tollgate/policy/reason"
)

// The tests below stand up a Sigstore of their own (sigstore-go's VirtualSigstore: a
// Fulcio CA, a Rekor log and a timestamp authority, all in memory) and check every path
// that passes and every refusal.

const (
	testSAN    = "builder@example.com"
	testIssuer = "https://issuer.example"
)

func statementFor(t *testing.T, subject []byte) []byte {
	sum := sha256.Sum256(subject)
	return []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":"` +
		hex.EncodeToString(sum[:]) + `"}}],"predicateType":"https://example.com/p","predicate":{}}`)
}

func virtual(t testing.TB) *ca.VirtualSigstore {
	t.Helper()
	vs, err := virtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

func virtualSigstore() (*ca.VirtualSigstore, error) { return ca.NewVirtualSigstore() }

// instanceOf makes trusted roots of one instance: the virtual Sigstore, with req.
func instanceOf(vs *ca.VirtualSigstore, name string, req Requirements) *TrustedRoots {
	return &TrustedRoots{instances: []*Instance{{Name: name, root: vs, Requirements: req}}}
}

var privateReq = Requirements{TransparencyLog: 1, ObserverTimestamps: 1}

func exactID(t *testing.T, san, iss string) *Identity {
	t.Helper()
	id, err := NewIdentity(Identity{Subject: Exact(san), Issuer: Exact(iss)})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// entity wraps a signed entity to alter one part of it.
type entity struct {
	verify.SignedEntity
	sig   verify.SignatureContent
	tlogs []*tlog.Entry
	noTS  bool
}

func (e *entity) SignatureContent() (verify.SignatureContent, error) {
	if e.sig != nil {
		return e.sig, nil
	}
	return e.SignedEntity.SignatureContent()
}

func (e *entity) TlogEntries() ([]*tlog.Entry, error) {
	if e.tlogs != nil {
		return e.tlogs, nil
	}
	return e.SignedEntity.TlogEntries()
}

func (e *entity) Timestamps() ([][]byte, error) {
	if e.noTS {
		return nil, nil
	}
	return e.SignedEntity.Timestamps()
}

func rawEnvelope(t *testing.T, e verify.SignedEntity) *dsse.Envelope {
	t.Helper()
	sc, err := e.SignatureContent()
	if err != nil {
		t.Fatal(err)
	}
	c := *sc.EnvelopeContent().RawEnvelope()
	c.Signatures = append([]dsse.Signature(nil), c.Signatures...)
	return &c
}

func TestVerifyPasses(t *testing.T) {
	vs := virtual(t)
	art := []byte("the artifact")
	ent, err := vs.Attest(testSAN, testIssuer, statementFor(t, art))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(art)
	dg, err := Digest("sha256:" + hex.EncodeToString(sum[:]))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		req  Requirements
		art  Artifact
	}{
		{"log and observer timestamp, unbound", privateReq, Unbound()},
		{"bound to the artifact", privateReq, Bytes(art)},
		{"bound to the digest", privateReq, dg},
		{"signed timestamp only (GitHub's instance)", GitHubRequirements, dg},
		{"two observer timestamps (log and TSA)", Requirements{TransparencyLog: 1, ObserverTimestamps: 2}, dg},
	} {
		t.Run(tc.name, func(t *testing.T) {
			roots := instanceOf(vs, "virtual", tc.req)
			v, err := roots.verifyParsed(ent, tc.art, nil)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if v.Instance != "virtual" || v.Signer.Subject != testSAN || v.Signer.Issuer != testIssuer || v.Envelope == nil || len(v.Timestamps) == 0 {
				t.Fatalf("verified %+v", v)
			}
			want := exactID(t, testSAN, testIssuer)
			if id, err := v.Match(exactID(t, "other@example.com", testIssuer), want); err != nil || id != want {
				t.Fatalf("Match = %v, %v", id, err)
			}
		})
	}
}

func TestVerifyMessageSignature(t *testing.T) {
	vs := virtual(t)
	art := []byte("a blob")
	ent, err := vs.Sign(testSAN, testIssuer, art)
	if err != nil {
		t.Fatal(err)
	}
	roots := instanceOf(vs, "virtual", privateReq)
	if _, err := roots.verifyParsed(ent, Bytes(art), nil); err != nil {
		t.Fatalf("refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		art  Artifact
		kind reason.Kind
	}{
		// A message signature over other bytes is a signature that does not verify.
		{"other artifact", Bytes([]byte("another blob")), reason.BadSignature},
		{"no artifact", Unbound(), reason.MissingEvidence},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := roots.verifyParsed(ent, tc.art, nil)
			if reason.KindOf(err) != tc.kind {
				t.Fatalf("got %s (%v), want %s", reason.KindOf(err), err, tc.kind)
			}
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	vs := virtual(t)
	art := []byte("the artifact")
	good, err := vs.Attest(testSAN, testIssuer, statementFor(t, art))
	if err != nil {
		t.Fatal(err)
	}
	other, err := vs.Attest(testSAN, testIssuer, statementFor(t, []byte("other")))
	if err != nil {
		t.Fatal(err)
	}
	// The certificate is valid for ten minutes from now; a log entry an hour later is
	// outside it.
	late, err := vs.AttestAtTime(testSAN, testIssuer, statementFor(t, art), time.Now().Add(time.Hour), false)
	if err != nil {
		t.Fatal(err)
	}
	tampered := rawEnvelope(t, good)
	tampered.Payload = base64.StdEncoding.EncodeToString(statementFor(t, []byte("swapped")))
	twoSigs := rawEnvelope(t, good)
	twoSigs.Signatures = append(twoSigs.Signatures, twoSigs.Signatures[0])
	otherTlog, _ := other.TlogEntries()
	proved, err := vs.AttestAtTime(testSAN, testIssuer, statementFor(t, art), time.Now().Add(5*time.Minute), true)
	if err != nil {
		t.Fatal(err)
	}
	badProof := corruptInclusionProof(t, proved)
	stranger := virtual(t)
	roots := instanceOf(vs, "virtual", privateReq)

	for _, tc := range []struct {
		name  string
		roots *TrustedRoots
		ent   verify.SignedEntity
		art   Artifact
		kind  reason.Kind
		msg   string
	}{
		{"missing SCT (public-good requirements)", instanceOf(vs, "virtual", PublicGoodRequirements), good, Unbound(), reason.BadSignature, "SCT"},
		{"tampered payload", roots, &entity{SignedEntity: good, sig: &bundle.Envelope{Envelope: tampered}}, Unbound(), reason.BadSignature, ""},
		{"two signatures", roots, &entity{SignedEntity: good, sig: &bundle.Envelope{Envelope: twoSigs}}, Unbound(), reason.BadSignature, "exactly one signature"},
		{"bad inclusion proof", roots, &entity{SignedEntity: proved, tlogs: badProof}, Unbound(), reason.BadSignature, "inclusion"},
		{"log entry of another signature", roots, &entity{SignedEntity: good, tlogs: otherTlog}, Unbound(), reason.BadSignature, "log"},
		{"no signed timestamp (GitHub's requirements)", instanceOf(vs, "github", GitHubRequirements), &entity{SignedEntity: good, noTS: true}, Unbound(), reason.BadSignature, "github"},
		{"certificate outside its timestamped validity", roots, late, Unbound(), reason.Expired, "not valid at the verified time"},
		{"untrusted root", instanceOf(stranger, "stranger", privateReq), good, Unbound(), reason.BadSignature, `trusted root "stranger"`},
		{"not bound to the artifact", roots, good, Bytes([]byte("something else")), reason.BindingMismatch, "not over the artifact"},
		{"no trusted root", &TrustedRoots{}, good, Unbound(), reason.BadSignature, "no Sigstore trusted root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := tc.roots.verifyParsed(tc.ent, tc.art, nil)
			if err == nil {
				t.Fatalf("verified (%+v), want %s", v, tc.kind)
			}
			if k := reason.KindOf(err); k != tc.kind || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %s: %v; want %s containing %q", k, err, tc.kind, tc.msg)
			}
		})
	}
}

// corruptInclusionProof returns e's log entries with one hash of the inclusion proof
// flipped (the entry, its SET and the checkpoint unchanged).
func corruptInclusionProof(t *testing.T, e verify.SignedEntity) []*tlog.Entry {
	t.Helper()
	entries, err := e.TlogEntries()
	if err != nil || len(entries) != 1 || !entries[0].HasInclusionProof() {
		t.Fatalf("want one log entry with an inclusion proof: %v", err)
	}
	pb := proto.Clone(entries[0].TransparencyLogEntry()).(*protorekor.TransparencyLogEntry)
	proof := pb.GetInclusionProof()
	switch {
	case len(proof.GetHashes()) > 0:
		proof.Hashes[0] = append([]byte(nil), proof.Hashes[0]...)
		proof.Hashes[0][0] ^= 1
	default:
		proof.RootHash = append([]byte(nil), proof.RootHash...)
		proof.RootHash[0] ^= 1
	}
	if pb.KindVersion == nil {
		// NewEntry keeps the kind beside the protobuf; NewTlogEntry reads it from there.
		pb.KindVersion = &protorekor.KindVersion{Kind: "dsse", Version: "0.0.1"}
	}
	bad, err := tlog.NewTlogEntry(pb)
	if err != nil {
		t.Fatal(err)
	}
	return []*tlog.Entry{bad}
}

func TestVerifyInclusionProofPasses(t *testing.T) {
	vs := virtual(t)
	ent, err := vs.AttestAtTime(testSAN, testIssuer, statementFor(t, []byte("x")), time.Now().Add(5*time.Minute), true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := instanceOf(vs, "virtual", privateReq).verifyParsed(ent, Unbound(), nil); err != nil {
		t.Fatalf("refused: %v", err)
	}
}

func TestVerifyKeySignedRefusedWithoutKeys(t *testing.T) {
	// A certificate-signed entity never passes as key-signed, and Verify with identities
	// and no match refuses with both identities named.
	vs := virtual(t)
	ent, err := vs.Attest(testSAN, testIssuer, statementFor(t, []byte("x")))
	if err != nil {
		t.Fatal(err)
	}
	v, err := instanceOf(vs, "virtual", privateReq).verifyParsed(ent, Unbound(), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Match(exactID(t, "release@example.com", testIssuer))
	if reason.KindOf(err) != reason.BadSignature ||
		!strings.Contains(err.Error(), `signed by subject "builder@example.com" from issuer "https://issuer.example", not subject "release@example.com"`) {
		t.Fatalf("got %v", err)
	}
}
