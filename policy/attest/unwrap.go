package attest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"tollgate.dev/tollgate/policy/cosign"
	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/internal/jsonlimit"
	"tollgate.dev/tollgate/policy/reason"
)

const (
	// MaxFileBytes bounds one evidence file (a JSON-lines file may hold many envelopes).
	MaxFileBytes = 4 * jsonlimit.MaxBytes
	// MaxEnvelopes bounds the envelopes taken from one evidence file.
	MaxEnvelopes = 256
)

// Sigstore bundle media types whose dsseEnvelope field this package reads. Only v0.3 is
// produced today; the older spellings carry the same field.
var bundleMediaTypes = map[string]bool{
	"application/vnd.dev.sigstore.bundle.v0.3+json":        true,
	"application/vnd.dev.sigstore.bundle+json;version=0.3": true,
	"application/vnd.dev.sigstore.bundle+json;version=0.2": true,
	"application/vnd.dev.sigstore.bundle+json;version=0.1": true,
}

type bundleProbe struct {
	MediaType        string          `json:"mediaType"`
	DSSEEnvelope     json.RawMessage `json:"dsseEnvelope"`
	MessageSignature json.RawMessage `json:"messageSignature"`
	// cosign's own blob bundle (sign-blob/attest-blob --bundle, the older format)
	Base64Signature *string `json:"base64Signature"`
	// a cosign layer with its annotations (see package cosign)
	Data json.RawMessage `json:"data"`
}

// Unwrap returns the signed envelopes in an evidence file:
//   - one DSSE envelope (or legacy Metablock) as JSON;
//   - JSON lines, one envelope per line, as `cosign download attestation` prints them;
//   - a Sigstore bundle (v0.1-v0.3) with a dsseEnvelope. Only the envelope is taken: the
//     caller verifies it with its own keys, and transparency-log entries are ignored;
//   - cosign's older blob bundle from `cosign attest-blob --bundle` (base64Signature holds
//     the envelope);
//   - a cosign `.att` layer with its annotations (cosign.Layer).
//
// The envelopes' signatures are not verified here.
func Unwrap(data []byte) ([]*envelope.Signed, error) {
	if err := jsonlimit.Check(data, MaxFileBytes); err != nil {
		return nil, malformed("evidence file", err)
	}
	docs, err := splitJSON(data)
	if err != nil {
		return nil, err
	}
	out := make([]*envelope.Signed, 0, len(docs))
	for i, doc := range docs {
		s, err := unwrapOne(doc)
		if err != nil {
			if len(docs) > 1 {
				return nil, prefixed(fmt.Sprintf("evidence document %d of %d", i+1, len(docs)), err)
			}
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func unwrapOne(doc []byte) (*envelope.Signed, error) {
	if len(doc) > jsonlimit.MaxBytes {
		return nil, reason.New(reason.Malformed, "envelope is %d bytes, over the limit of %d", len(doc), jsonlimit.MaxBytes)
	}
	var probe bundleProbe
	if err := json.Unmarshal(doc, &probe); err != nil {
		return nil, malformed("evidence is not a JSON object", err)
	}
	switch {
	case probe.Base64Signature != nil:
		return unwrapBlobBundle(doc)
	case probe.MediaType == cosign.MediaTypeDSSE && len(probe.Data) > 0:
		return unwrapLayer(doc)
	case probe.MediaType == cosign.MediaTypeSimpleSigning:
		return nil, reason.New(reason.Malformed, "a cosign image signature (%s) signs an image, it is not an attestation", cosign.MediaTypeSimpleSigning)
	case probe.MediaType == "":
		return envelope.Parse(doc)
	}
	if !bundleMediaTypes[strings.TrimSpace(probe.MediaType)] {
		return nil, reason.New(reason.Malformed, "unsupported media type %q (want a Sigstore bundle v0.3)", reason.Clip(probe.MediaType))
	}
	if len(probe.DSSEEnvelope) == 0 || isNull(probe.DSSEEnvelope) {
		if len(probe.MessageSignature) > 0 {
			return nil, reason.New(reason.Malformed, "Sigstore bundle holds a message signature, not a DSSE envelope")
		}
		return nil, reason.New(reason.Malformed, "Sigstore bundle has no dsseEnvelope")
	}
	s, err := envelope.Parse(probe.DSSEEnvelope)
	if err != nil {
		return nil, err
	}
	if s.Format != envelope.DSSE {
		return nil, reason.New(reason.Malformed, "Sigstore bundle dsseEnvelope is not a DSSE envelope")
	}
	return s, nil
}

// splitJSON cuts data into its top-level JSON values (one for a plain file, one per line
// for JSON lines). Every value must be an object.
func splitJSON(data []byte) ([][]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var docs [][]byte
	for {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, malformed(fmt.Sprintf("evidence document %d is not valid JSON", len(docs)+1), err)
		}
		if firstByte(raw) != '{' {
			return nil, reason.New(reason.Malformed, "evidence document %d is not a JSON object", len(docs)+1)
		}
		if len(docs) == MaxEnvelopes {
			return nil, reason.New(reason.Malformed, "evidence file holds more than %d envelopes", MaxEnvelopes)
		}
		docs = append(docs, raw)
	}
	if len(docs) == 0 {
		return nil, reason.New(reason.Malformed, "evidence file is empty")
	}
	return docs, nil
}

// prefixed says where in a multi-document file err happened, keeping its Kind.
func prefixed(where string, err error) *reason.Error {
	c := *reason.As(err)
	if c.Msg == "" {
		c.Msg = where
	} else {
		c.Msg = where + ": " + c.Msg
	}
	return &c
}

func unwrapBlobBundle(doc []byte) (*envelope.Signed, error) {
	b, err := cosign.ParseBlobBundle(doc)
	if err != nil {
		return nil, err
	}
	if b.Envelope == nil {
		return nil, reason.New(reason.Malformed, "cosign bundle holds a signature over a blob (sign-blob), not an attestation (attest-blob)")
	}
	return b.Envelope, nil
}

func unwrapLayer(doc []byte) (*envelope.Signed, error) {
	l, err := cosign.ParseLayer(doc)
	if err != nil {
		return nil, err
	}
	s, err := envelope.Parse(l.Data)
	if err != nil {
		return nil, err
	}
	if s.Format != envelope.DSSE {
		return nil, reason.New(reason.Malformed, "cosign attestation layer %s does not hold a DSSE envelope", reason.Clip(l.Digest))
	}
	return s, nil
}
