// Package hostiletest builds hostile evidence for tests: files that fill every size limit
// at once with what nobody trusted signed (unsigned, wrongly signed, or signed under a
// keyid that is not an authorized key), shaped to make a parser work: huge member counts,
// deep nesting, duplicated members, the most signatures an envelope may carry.
package hostiletest

import (
	"bytes"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/internal/jsonlimit"
)

// Spec says what the evidence targets and how much of it there is.
type Spec struct {
	Digest        string   // "sha256:<hex>": every Statement names it as its subject
	PredicateType string   // the predicate type a policy requires
	Steps         []string // layout step names the links claim to be
	KeyIDs        []string // authorized keyids, claimed by signatures that do not verify
	BlobBytes     int      // each file is at most this long (the per-blob limit)
	TotalBytes    int      // files together are at most this long (the per-image limit)
}

// Evidence returns files of at most s.BlobBytes bytes each, s.TotalBytes in all, in turn
// Statements and links of each shape.
func Evidence(s Spec) map[string][]byte {
	shapes := []func(Spec, int, int) []byte{statementWide, linkWide, statementDeep, statementDuplicated, linkDeep}
	files := map[string][]byte{}
	total := 0
	for i := 0; total < s.TotalBytes; i++ {
		size := min(s.BlobBytes, s.TotalBytes-total)
		if size < 64<<10 { // less than a shape's envelope around it
			break
		}
		b := shapes[i%len(shapes)](s, i, size)
		for target := size; len(b) > size; { // the shapes are about size: make them at most
			target -= len(b) - size + 1024
			b = shapes[i%len(shapes)](s, i, target)
		}
		files[fmt.Sprintf("hostile-%04d.json", i)] = b
		total += len(b)
	}
	return files
}

// signatures returns envelope.MaxSignatures signatures that do not verify: without a keyid
// (so they are tried against every key), under each authorized keyid, and under keyids
// nobody authorized. enc encodes the signature bytes (base64 for DSSE, hex for Metablocks).
func signatures(s Spec, i int, enc func([]byte) string) string {
	var b strings.Builder
	b.WriteByte('[')
	for j := range envelope.MaxSignatures {
		sum := sha512.Sum512(fmt.Appendf(nil, "%d.%d", i, j))
		sum[63] &= 0x0f // a canonical ed25519 scalar: the full verification runs
		keyid := ""
		switch {
		case j%3 == 1 && len(s.KeyIDs) > 0:
			keyid = s.KeyIDs[j%len(s.KeyIDs)]
		case j%3 == 2:
			keyid = hex.EncodeToString(sum[:32])
		}
		if j > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"keyid":%q,"sig":%q}`, keyid, enc(sum[:]))
	}
	b.WriteByte(']')
	return b.String()
}

// fill appends members "m<n>":<n> to an object body until it is about size bytes.
func fill(b *bytes.Buffer, size int) {
	for n := 0; b.Len() < size; n++ {
		fmt.Fprintf(b, `"m%d":%d,`, n, n)
	}
}

// nest is JSON nested as deep as the policy allows, around a filler of about size bytes.
func nest(size int) string {
	depth := jsonlimit.MaxDepth - 8 // room for the Statement and envelope around it
	return strings.Repeat(`{"d":[`, depth/2) + fmt.Sprintf("%q", strings.Repeat("A", max(size, 0))) + strings.Repeat(`]}`, depth/2)
}

func statement(s Spec, predicate string) []byte {
	alg, hx, _ := strings.Cut(s.Digest, ":")
	return fmt.Appendf(nil, `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"x","digest":{%q:%q}}],"predicateType":%q,"predicate":%s}`,
		alg, hx, s.PredicateType, predicate)
}

// dsse wraps payload in a DSSE envelope of about size bytes.
func dsse(s Spec, i int, payload []byte) []byte {
	return fmt.Appendf(nil, `{"payloadType":%q,"payload":%q,"signatures":%s}`,
		envelope.PayloadTypeInToto, base64.StdEncoding.EncodeToString(payload), signatures(s, i, base64.StdEncoding.EncodeToString))
}

// payloadBytes is what a DSSE payload may take of a file of size bytes (base64 and
// signatures around it).
func payloadBytes(size int) int { return (size - 12<<10) * 3 / 4 }

func statementWide(s Spec, i, size int) []byte {
	var p bytes.Buffer
	p.WriteByte('{')
	fill(&p, payloadBytes(size)-512)
	p.WriteString(`"end":0}`)
	return dsse(s, i, statement(s, p.String()))
}

func statementDeep(s Spec, i, size int) []byte {
	return dsse(s, i, statement(s, nest(payloadBytes(size)-1024)))
}

func statementDuplicated(s Spec, i, size int) []byte {
	var p bytes.Buffer
	p.WriteString(`{"subject":[{"name":"y","digest":{"sha256":"` + strings.Repeat("0", 64) + `"}}],`)
	fill(&p, payloadBytes(size)-1024)
	p.WriteString(`"end":0}`)
	// The predicate's own members repeat, and so does the Statement's "subject".
	st := statement(s, p.String())
	st = append(st[:len(st)-1], `,"subject":[{"name":"z","digest":{"sha256":"`+strings.Repeat("1", 64)+`"}}]}`...)
	return dsse(s, i, st)
}

func step(s Spec, i int) string {
	if len(s.Steps) == 0 {
		return "build"
	}
	return s.Steps[i%len(s.Steps)]
}

// metablock wraps a link whose products are body in a Metablock.
func metablock(s Spec, i int, products string) []byte {
	return fmt.Appendf(nil, `{"signed":{"_type":"link","name":%q,"command":[],"materials":{},"products":%s,"byproducts":{},"environment":{}},"signatures":%s}`,
		step(s, i), products, signatures(s, i, hex.EncodeToString))
}

func linkWide(s Spec, i, size int) []byte {
	var p bytes.Buffer
	p.WriteByte('{')
	for n := 0; p.Len() < size-24<<10; n++ {
		fmt.Fprintf(&p, `"f%d":{"sha256":"%064x"},`, n, n)
	}
	p.WriteString(`"end":{}}`)
	return metablock(s, i, p.String())
}

func linkDeep(s Spec, i, size int) []byte {
	return metablock(s, i, `{"x":`+nest(size-24<<10)+`}`)
}
