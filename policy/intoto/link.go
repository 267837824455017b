package intoto

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"

	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/internal/jsonlimit"
)

// Link predicate types of in-toto Statements whose predicate is a link.
const (
	PredicateLinkV03 = "https://in-toto.io/attestation/link/v0.3"
	PredicateLinkV1  = "https://in-toto.io/Link/v1" // deprecated form: the predicate is a whole link
)

// HashObj is an artifact's digests by algorithm, e.g. {"sha256": "<hex>"}.
type HashObj map[string]string

// Link is the evidence of one step (or a synthesized inspection). Artifacts are held in
// the rule engine's index and handed out as copies, so nothing can modify a parsed link.
type Link struct {
	Name        string
	Command     []string
	Byproducts  json.RawMessage
	Environment json.RawMessage

	mat, prod *artifactSet
}

// Materials returns a copy of the link's materials.
func (l *Link) Materials() map[string]HashObj { return l.mat.toMap() }

// Products returns a copy of the link's products.
func (l *Link) Products() map[string]HashObj { return l.prod.toMap() }

// artifactSet indexes one side of a link for the rule engine: paths (in no particular
// order; reports pick the smallest path themselves, so they stay deterministic), their
// digests, and a path index.
type artifactSet struct {
	paths  []string
	hashes []digest
	index  map[string]int32
}

func newArtifactSet(m map[string]HashObj) *artifactSet {
	a := &artifactSet{paths: make([]string, 0, len(m)), hashes: make([]digest, 0, len(m)), index: make(map[string]int32, len(m))}
	for p, h := range m {
		a.index[p] = int32(len(a.paths))
		a.paths = append(a.paths, p)
		a.hashes = append(a.hashes, digestOf(h))
	}
	return a
}

func (a *artifactSet) toMap() map[string]HashObj {
	m := make(map[string]HashObj, len(a.paths))
	for i, p := range a.paths {
		m[p] = a.hashes[i].hashObj()
	}
	return m
}

func (a *artifactSet) lookup(p string) (int32, bool) {
	i, ok := a.index[p]
	return i, ok
}

// sameHash compares two hash objects as Python compares the dicts: same algorithms, same
// digests (case-sensitive, as Python compares strings).
func sameHash(a, b HashObj) bool {
	if len(a) != len(b) {
		return false
	}
	for alg, x := range a {
		if y, ok := b[alg]; !ok || x != y {
			return false
		}
	}
	return true
}

// hashText renders a hash object for messages, algorithms sorted.
func hashText(h HashObj) string {
	algs := make([]string, 0, len(h))
	for alg := range h {
		algs = append(algs, alg)
	}
	sort.Strings(algs)
	var b strings.Builder
	for i, alg := range algs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(alg)
		b.WriteByte(':')
		b.WriteString(h[alg])
	}
	return b.String()
}

// side returns the materials or products index.
func (l *Link) side(products bool) *artifactSet {
	if products {
		return l.prod
	}
	return l.mat
}

// sameArtifacts reports whether two links record identical materials and products.
func (l *Link) sameArtifacts(o *Link) bool {
	eq := func(a, b *artifactSet) bool {
		if len(a.paths) != len(b.paths) {
			return false
		}
		for i, p := range a.paths {
			j, ok := b.lookup(p)
			if !ok || !a.hashes[i].equal(b.hashes[j]) {
				return false
			}
		}
		return true
	}
	return eq(l.mat, o.mat) && eq(l.prod, o.prod)
}

// linkDoc decodes a plain link and, in the same pass, tells a layout or a Statement apart.
type linkDoc struct {
	Type          string          `json:"_type"`
	Name          *string         `json:"name"`
	Command       []string        `json:"command"`
	Materials     artifactField   `json:"materials"`
	Products      artifactField   `json:"products"`
	Byproducts    json.RawMessage `json:"byproducts"`
	Environment   json.RawMessage `json:"environment"`
	PredicateType string          `json:"predicateType"`
	Subject       []descriptor    `json:"subject"`
	Predicate     json.RawMessage `json:"predicate"`
}

type descriptor struct {
	Name   string  `json:"name"`
	Digest HashObj `json:"digest"`
}

// linkPredicateV03 is the predicate of a link/v0.3 Statement.
type linkPredicateV03 struct {
	Name        *string         `json:"name"`
	Command     []string        `json:"command"`
	Materials   []descriptor    `json:"materials"`
	Byproducts  json.RawMessage `json:"byproducts"`
	Environment json.RawMessage `json:"environment"`
}

const (
	statementV1  = "https://in-toto.io/Statement/v1"
	statementV01 = "https://in-toto.io/Statement/v0.1"
)

// payloadKind classifies a signed in-toto payload.
type payloadKind int

const (
	kindOther payloadKind = iota
	kindLink
	kindLayout
)

// ParseLink parses the link carried by s: a Metablock link, a DSSE envelope whose payload
// is a link (in-toto-golang's --use-dsse), or a DSSE envelope with an in-toto Statement
// whose predicate is a link (converted as the attestation spec describes).
func ParseLink(s *envelope.Signed) (*Link, error) {
	if s == nil {
		return nil, malformed("no link given")
	}
	l, kind, err := decodeLink(s)
	if err != nil {
		return nil, err
	}
	switch kind {
	case kindLayout:
		return nil, malformed("metadata is a layout, not a link")
	case kindOther:
		return nil, malformed("metadata is not an in-toto link")
	}
	return l, nil
}

func decodeLink(s *envelope.Signed) (*Link, payloadKind, error) {
	if err := checkPayload(s); err != nil {
		return nil, kindOther, err
	}
	var doc linkDoc
	if err := jsonlimit.Check(s.Payload, jsonlimit.MaxBytes); err != nil {
		return nil, kindOther, malformed("link is not valid in-toto JSON").Wrap(err)
	}
	if err := decodeLinkDoc(s.Payload, &doc); err != nil {
		return nil, kindOther, malformed("link is not valid in-toto JSON").Wrap(err)
	}
	switch {
	case doc.Type == "layout":
		return nil, kindLayout, nil
	case doc.Type == "link":
		l, err := doc.toLink()
		return l, kindLink, err
	case doc.Type == statementV1 || doc.Type == statementV01:
		if doc.PredicateType != PredicateLinkV03 && doc.PredicateType != PredicateLinkV1 {
			return nil, kindOther, nil
		}
		l, err := doc.statementLink()
		if err == nil && s.Format != envelope.DSSE {
			// A Metablock signs the canonical form, which drops repeated members that
			// encoding/json would merge into "subject" and the predicate.
			return nil, kindOther, malformed("a link Statement must travel in a DSSE envelope, not a %s", s.Format)
		}
		return l, kindLink, err
	}
	return nil, kindOther, nil
}

func (doc *linkDoc) toLink() (*Link, error) {
	if doc.Name == nil || *doc.Name == "" {
		return nil, malformed("link has no name")
	}
	l := &Link{
		Name:        *doc.Name,
		Command:     doc.Command,
		Byproducts:  doc.Byproducts,
		Environment: doc.Environment,
		mat:         doc.Materials.set,
		prod:        doc.Products.set,
	}
	return l, l.finish()
}

func (doc *linkDoc) statementLink() (*Link, error) {
	if doc.PredicateType == PredicateLinkV1 {
		// The deprecated form carries a whole link as the predicate.
		var inner linkDoc
		if err := json.Unmarshal(doc.Predicate, &inner); err != nil {
			return nil, malformed("link predicate is not a link").Wrap(err)
		}
		if inner.Products.set == nil && len(doc.Subject) > 0 {
			p, err := descriptorMap(doc.Subject, "subject")
			if err != nil {
				return nil, err
			}
			inner.Products.set = newArtifactSet(p)
		}
		return inner.toLink()
	}
	var pred linkPredicateV03
	if err := json.Unmarshal(doc.Predicate, &pred); err != nil {
		return nil, malformed("link predicate is not valid").Wrap(err)
	}
	if pred.Name == nil || *pred.Name == "" {
		return nil, malformed("link predicate has no name")
	}
	mat, err := descriptorMap(pred.Materials, "materials")
	if err != nil {
		return nil, err
	}
	prod, err := descriptorMap(doc.Subject, "subject")
	if err != nil {
		return nil, err
	}
	l := &Link{
		Name:        *pred.Name,
		Command:     pred.Command,
		Byproducts:  pred.Byproducts,
		Environment: pred.Environment,
		mat:         newArtifactSet(mat),
		prod:        newArtifactSet(prod),
	}
	return l, l.finish()
}

func descriptorMap(ds []descriptor, what string) (map[string]HashObj, error) {
	if len(ds) > MaxArtifacts {
		return nil, malformed("link has %d %s entries, over the limit of %d", len(ds), what, MaxArtifacts)
	}
	m := make(map[string]HashObj, len(ds))
	for _, d := range ds {
		if d.Name == "" || len(d.Digest) == 0 {
			return nil, malformed("link %s entry without a name or digest", what)
		}
		if _, dup := m[d.Name]; dup {
			return nil, malformed("link %s names %q twice", what, d.Name)
		}
		m[d.Name] = d.Digest
	}
	return m, nil
}

// finish validates a link as Python's Link model does and builds the rule indexes.
func (l *Link) finish() error {
	if len(l.Name) > maxNameBytes {
		return malformed("link name is %d bytes, over the limit of %d", len(l.Name), maxNameBytes)
	}
	if len(l.Command) > maxCommandArgs {
		return malformed("link %q command has %d arguments, over the limit of %d", l.Name, len(l.Command), maxCommandArgs)
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"byproducts", l.Byproducts}, {"environment", l.Environment}} {
		if t := bytes.TrimSpace(f.raw); len(t) > 0 && !bytes.Equal(t, []byte("null")) && t[0] != '{' {
			return malformed("link %q field %s must be an object", l.Name, f.name)
		}
	}
	if l.mat == nil {
		l.mat = emptySet()
	}
	if l.prod == nil {
		l.prod = emptySet()
	}
	for _, side := range []struct {
		name string
		set  *artifactSet
	}{{"materials", l.mat}, {"products", l.prod}} {
		if len(side.set.paths) > MaxArtifacts {
			return malformed("link %q has %d %s, over the limit of %d", l.Name, len(side.set.paths), side.name, MaxArtifacts)
		}
		for i, d := range side.set.hashes {
			if d.one {
				if !isHex(d.hex) {
					return malformed("link %q: %s %q has a %s digest that is not hex", l.Name, side.name, side.set.paths[i], d.alg)
				}
				continue
			}
			for alg, hex := range d.h {
				if !isHex(hex) {
					return malformed("link %q: %s %q has a %s digest that is not hex", l.Name, side.name, side.set.paths[i], alg)
				}
			}
		}
	}
	return nil
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// newLink builds a link in memory (synthesized inspections, summary links).
func newLink(name string, command []string, materials, products map[string]HashObj) *Link {
	return &Link{Name: name, Command: command, mat: newArtifactSet(materials), prod: newArtifactSet(products)}
}

// NewLink validates a link built by a caller (an InspectionRunner) and indexes it.
func NewLink(name string, command []string, materials, products map[string]HashObj) (*Link, error) {
	l := &Link{Name: name, Command: command, mat: newArtifactSet(materials), prod: newArtifactSet(products)}
	if name == "" {
		return nil, malformed("link has no name")
	}
	return l, l.finish()
}
