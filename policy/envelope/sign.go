package envelope

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"tollgate.dev/tollgate/policy/keys"
)

// NewMetablock returns an unsigned Metablock whose "signed" is the JSON encoding of
// signed (a Go value, or json.RawMessage). It fails if the value cannot be signed, e.g.
// because it holds floating-point numbers, which canonical JSON forbids.
func NewMetablock(signed any) (*Signed, error) {
	var raw []byte
	if r, ok := signed.(json.RawMessage); ok {
		raw = bytes.Clone(r)
	} else {
		var err error
		if raw, err = marshal(signed); err != nil {
			return nil, fmt.Errorf("envelope: encoding metablock \"signed\": %w", err)
		}
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, fmt.Errorf("envelope: metablock \"signed\" must be a JSON object")
	}
	if _, err := canonicalJSON(raw); err != nil {
		return nil, fmt.Errorf("envelope: metablock \"signed\" cannot be canonicalized: %w", err)
	}
	return &Signed{Format: Metablock, Payload: raw}, nil
}

// Sign adds one signature per signer, with the signer's keyid. A signature already
// present with the same keyid is replaced: signing again refreshes, never duplicates.
func (s *Signed) Sign(signers ...*keys.Signer) error {
	msg, err := s.SignedBytes()
	if err != nil {
		return err
	}
	for _, signer := range signers {
		if signer == nil || signer.Key == nil {
			return fmt.Errorf("envelope: nil signer")
		}
		sig, err := signer.Sign(msg)
		if err != nil {
			return fmt.Errorf("envelope: signing with %s: %w", signer.Key, err)
		}
		if len(s.Signatures) >= MaxSignatures {
			return fmt.Errorf("envelope: already %d signatures, the limit", MaxSignatures)
		}
		s.Signatures = replaceOrAppend(s.Signatures, Signature{KeyID: signer.ID, Sig: sig})
	}
	return nil
}

func replaceOrAppend(sigs []Signature, sig Signature) []Signature {
	for i := range sigs {
		if sigs[i].KeyID == sig.KeyID {
			sigs[i] = sig
			return sigs
		}
	}
	return append(sigs, sig)
}

// Marshal writes the envelope: DSSE as {"payloadType","payload","signatures"} with
// standard base64, a Metablock as Python does, {"signatures":[{"keyid","sig"(hex)}],
// "signed":{...}}, with "signed" byte for byte as held.
func (s *Signed) Marshal() ([]byte, error) {
	if s == nil {
		return nil, fmt.Errorf("envelope: nothing to marshal")
	}
	switch s.Format {
	case DSSE:
		out := struct {
			PayloadType string    `json:"payloadType"`
			Payload     string    `json:"payload"`
			Signatures  []wireSig `json:"signatures"`
		}{s.PayloadType, base64.StdEncoding.EncodeToString(s.Payload), wireSigs(s.Signatures, base64.StdEncoding.EncodeToString)}
		return marshal(out)
	case Metablock:
		if !json.Valid(s.Payload) {
			return nil, fmt.Errorf("envelope: metablock \"signed\" is not valid JSON")
		}
		sigs, err := marshal(wireSigs(s.Signatures, hex.EncodeToString))
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		b.WriteString(`{"signatures":`)
		b.Write(sigs)
		b.WriteString(`,"signed":`)
		b.Write(bytes.TrimSpace(s.Payload))
		b.WriteString("}")
		return b.Bytes(), nil
	}
	return nil, fmt.Errorf("envelope: unknown format %d", int(s.Format))
}

func wireSigs(sigs []Signature, enc func([]byte) string) []wireSig {
	out := make([]wireSig, len(sigs))
	for i, s := range sigs {
		out[i] = wireSig{KeyID: s.KeyID, Sig: enc(s.Sig)}
	}
	return out
}

// marshal is json.Marshal without HTML escaping, so payloads stay readable.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
