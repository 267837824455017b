// Package envelope handles the two signature wrappers of in-toto metadata: DSSE envelopes
// and legacy Metablocks.
//
// A DSSE envelope signs PAE(payloadType, payload) and carries the payload base64-encoded.
// A Metablock ({"signed": {...}, "signatures": [...]}, Python in-toto's link and layout
// files) signs the canonical JSON of its "signed" value, with hex signatures. Both are
// parsed into one Signed value so that verification, threshold counting and signing are
// written once.
package envelope

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"tollgate.dev/tollgate/policy/internal/jsonlimit"
	"tollgate.dev/tollgate/policy/reason"
)

// PayloadTypeInToto is the DSSE payload type of in-toto Statements and links.
const PayloadTypeInToto = "application/vnd.in-toto+json"

// MaxSignatures bounds the signatures one envelope may carry; each may cost a
// verification against every trusted key.
const MaxSignatures = 64

// Format tells which wrapper a Signed came from.
type Format int

const (
	Metablock Format = iota + 1 // Python in-toto's {"signed", "signatures"} with hex signatures
	DSSE                        // Dead Simple Signing Envelope
)

func (f Format) String() string {
	switch f {
	case Metablock:
		return "metablock"
	case DSSE:
		return "DSSE"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// Signature is one signature; KeyID may be empty (cosign leaves it so).
type Signature struct {
	KeyID string
	Sig   []byte
}

// Signed is a parsed envelope.
type Signed struct {
	Format      Format
	PayloadType string // DSSE only
	Payload     []byte // DSSE: decoded payload; Metablock: raw JSON of "signed"
	Signatures  []Signature
}

// NewDSSE returns an unsigned DSSE envelope.
func NewDSSE(payloadType string, payload []byte) *Signed {
	return &Signed{Format: DSSE, PayloadType: payloadType, Payload: payload}
}

func malformed(format string, args ...any) *reason.Error {
	return reason.New(reason.Malformed, format, args...)
}

// wireSig is a signature as both formats write it.
type wireSig struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

// Parse reads a DSSE envelope or a Metablock, telling them apart by their members
// ("payload" and "payloadType" vs "signed"). Input is bounded in size and depth
// (jsonlimit) and in signature count (MaxSignatures); a member given twice is refused.
// Signatures are not verified here. Evidence is untrusted and may be megabytes: the
// document is not copied (a Metablock's Payload shares data's memory), and a DSSE payload
// is decoded from it straight into its bytes.
func Parse(data []byte) (*Signed, error) {
	if err := jsonlimit.Check(data, jsonlimit.MaxBytes); err != nil {
		return nil, malformed("invalid signed envelope").Wrap(err)
	}
	// Members are read by exact name: encoding/json would also match "Signed" or
	// "PAYLOAD" into a struct field.
	members, err := jsonlimit.Members(data)
	if err != nil {
		return nil, malformed("signed envelope is not a JSON object").Wrap(err)
	}
	top := make(map[string]json.RawMessage, len(members))
	for _, m := range members {
		top[m.Name] = m.Value
	}
	_, hasSigned := top["signed"]
	_, hasPayload := top["payload"]
	_, hasType := top["payloadType"]
	switch {
	case hasSigned && !hasPayload && !hasType:
		return parseMetablock(top)
	case hasPayload && !hasSigned:
		return parseDSSE(top)
	case hasSigned:
		return nil, malformed("signed envelope has both a metablock \"signed\" and a DSSE \"payload\"")
	}
	return nil, malformed("signed envelope has neither a DSSE \"payload\" nor a metablock \"signed\"")
}

// parseSignatures reads the "signatures" array; decode turns one sig string into bytes.
func parseSignatures(raw json.RawMessage, decode func(string) ([]byte, error), encoding string) ([]Signature, error) {
	if raw == nil {
		return nil, malformed("signed envelope has no \"signatures\"")
	}
	var wire []wireSig
	if err := json.Unmarshal(raw, &wire); err != nil {
		return nil, malformed("\"signatures\" is not a list of {keyid, sig}").Wrap(err)
	}
	if len(wire) > MaxSignatures {
		return nil, malformed("envelope has %d signatures, over the limit of %d", len(wire), MaxSignatures)
	}
	sigs := make([]Signature, 0, len(wire))
	for i, w := range wire {
		sig, err := decode(w.Sig)
		if err != nil || len(sig) == 0 {
			return nil, malformed("signature %d is not valid %s", i+1, encoding)
		}
		sigs = append(sigs, Signature{KeyID: w.KeyID, Sig: sig})
	}
	return sigs, nil
}

func parseMetablock(top map[string]json.RawMessage) (*Signed, error) {
	signed := bytes.TrimSpace(top["signed"])
	if len(signed) == 0 || signed[0] != '{' {
		return nil, malformed("metablock \"signed\" is not a JSON object")
	}
	// Python reads metadata as UTF-8 text and refuses anything else; accepting invalid
	// UTF-8 here would let two different byte strings canonicalize alike.
	if !utf8.Valid(signed) {
		return nil, malformed("metablock \"signed\" is not valid UTF-8")
	}
	sigs, err := parseSignatures(top["signatures"], hex.DecodeString, "hex")
	if err != nil {
		return nil, err
	}
	return &Signed{Format: Metablock, Payload: signed, Signatures: sigs}, nil
}

func parseDSSE(top map[string]json.RawMessage) (*Signed, error) {
	var payloadType string
	if err := json.Unmarshal(top["payloadType"], &payloadType); err != nil {
		return nil, malformed("DSSE \"payloadType\" is missing or not a string")
	}
	payload, ok := jsonlimit.String(top["payload"])
	if !ok {
		return nil, malformed("DSSE \"payload\" is not a string")
	}
	body, err := decodeBase64Bytes(payload)
	if err != nil {
		return nil, malformed("DSSE \"payload\" is not valid base64")
	}
	sigs, err := parseSignatures(top["signatures"], decodeBase64, "base64")
	if err != nil {
		return nil, err
	}
	return &Signed{Format: DSSE, PayloadType: payloadType, Payload: body, Signatures: sigs}, nil
}

// decodeBase64Bytes is decodeBase64 on bytes, decoded into one buffer: the payload is
// untrusted and may be megabytes.
func decodeBase64Bytes(src []byte) ([]byte, error) {
	dst := make([]byte, base64.StdEncoding.DecodedLen(len(src))+2)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if n, err := enc.Decode(dst, src); err == nil {
			return dst[:n:n], nil
		}
	}
	return nil, errors.New("invalid base64")
}

// decodeBase64 accepts standard or URL-safe base64, padded or not, as the DSSE spec
// allows.
func decodeBase64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("invalid base64")
}
