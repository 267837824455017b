package cosign

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"tollgate.dev/tollgate/policy/internal/jsonlimit"
	"tollgate.dev/tollgate/policy/reason"
)

// Layer is one layer of a cosign image with its annotations: the signature, and for
// keyless signing the certificate, chain and Rekor bundle, live there.
type Layer struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// Data is the layer blob (base64 in JSON, as the OCI descriptor's data field).
	Data []byte `json:"data"`
}

// layerProbe tells a Layer file from other evidence without decoding its data.
type layerProbe struct {
	MediaType string          `json:"mediaType"`
	Digest    string          `json:"digest"`
	Data      json.RawMessage `json:"data"`
}

// IsLayer reports whether data is meant as a Layer file: a JSON object with a cosign
// layer media type, a digest and data. A file that is one but is broken is then
// reported by ParseLayer with its cause, not skipped as some other kind of evidence.
func IsLayer(data []byte) bool {
	if len(data) == 0 || jsonlimit.Check(data, MaxLayerBytes*2) != nil {
		return false
	}
	var p layerProbe
	if json.Unmarshal(data, &p) != nil {
		return false
	}
	return (p.MediaType == MediaTypeSimpleSigning || p.MediaType == MediaTypeDSSE) && p.Digest != "" && len(p.Data) > 0
}

// ParseLayer reads a Layer file and checks that its data is what its digest and size
// say, so the annotations stay tied to the blob they were written with.
func ParseLayer(data []byte) (*Layer, error) {
	// base64 makes the file a third larger than the blob; annotations add the rest.
	max := MaxLayerBytes*4/3 + maxAnnotations*MaxAnnotationBytes + 4096
	var l Layer
	if err := jsonlimit.Decode(data, max, &l); err != nil {
		return nil, reason.New(reason.Malformed, "cosign layer is not a JSON OCI descriptor with data").Wrap(err)
	}
	if err := l.check(); err != nil {
		return nil, err
	}
	return &l, nil
}

func (l *Layer) check() error {
	switch l.MediaType {
	case MediaTypeSimpleSigning, MediaTypeDSSE:
	default:
		return reason.New(reason.Malformed, "cosign layer media type %q is neither %s nor %s", reason.Clip(l.MediaType), MediaTypeSimpleSigning, MediaTypeDSSE)
	}
	if len(l.Data) == 0 {
		return reason.New(reason.Malformed, "cosign layer %s holds no data", reason.Clip(l.Digest))
	}
	if len(l.Data) > MaxLayerBytes {
		return reason.New(reason.Malformed, "cosign layer is %d bytes, over the limit of %d", len(l.Data), MaxLayerBytes)
	}
	if l.Size != int64(len(l.Data)) {
		return reason.New(reason.Malformed, "cosign layer %s: size says %d bytes, data holds %d", reason.Clip(l.Digest), l.Size, len(l.Data))
	}
	alg, want, ok := strings.Cut(l.Digest, ":")
	if !ok || alg != "sha256" {
		return reason.New(reason.Malformed, "cosign layer digest %q is not sha256:<hex>", reason.Clip(l.Digest))
	}
	sum := sha256.Sum256(l.Data)
	if got := hex.EncodeToString(sum[:]); got != want {
		return reason.New(reason.Malformed, "cosign layer data has digest sha256:%s, not %s", got, reason.Clip(l.Digest))
	}
	if len(l.Annotations) > maxAnnotations {
		return reason.New(reason.Malformed, "cosign layer has %d annotations, over the limit of %d", len(l.Annotations), maxAnnotations)
	}
	for k, v := range l.Annotations {
		if len(v) > MaxAnnotationBytes {
			return reason.New(reason.Malformed, "cosign layer annotation %q is %d bytes, over the limit of %d", reason.Clip(k), len(v), MaxAnnotationBytes)
		}
	}
	return nil
}

// MarshalLayer writes a layer blob and its annotations as a Layer file: what the
// registry fetch stores for each cosign `.sig` layer and keyless `.att` layer.
func MarshalLayer(mediaType string, annotations map[string]string, blob []byte) ([]byte, error) {
	sum := sha256.Sum256(blob)
	l := Layer{MediaType: mediaType, Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(blob)),
		Annotations: annotations, Data: blob}
	if err := l.check(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&l); err != nil {
		return nil, fmt.Errorf("cosign layer: %w", err)
	}
	return buf.Bytes(), nil
}

// Keyless is the keyless signing material cosign v2 keeps beside a signature: the
// Fulcio certificate and chain (PEM), the Rekor bundle (cosign's JSON: a signed entry
// timestamp over a hashedrekord or intoto entry) and an RFC 3161 timestamp. Empty
// fields were not there.
type Keyless struct {
	Certificate []byte
	Chain       []byte
	RekorBundle []byte
	Timestamp   []byte
}

// Empty reports whether no keyless material is present (a key-signed layer).
func (k Keyless) Empty() bool {
	return len(k.Certificate) == 0 && len(k.Chain) == 0 && len(k.RekorBundle) == 0 && len(k.Timestamp) == 0
}

// Keyless returns the keyless material of the layer's annotations.
func (l *Layer) Keyless() Keyless {
	get := func(k string) []byte {
		if v := l.Annotations[k]; v != "" {
			return []byte(v)
		}
		return nil
	}
	return Keyless{Certificate: get(AnnotationCertificate), Chain: get(AnnotationChain),
		RekorBundle: get(AnnotationBundle), Timestamp: get(AnnotationTimestamp)}
}
