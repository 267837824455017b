package intoto

import (
	"fmt"
	"strings"

	"tollgate.dev/tollgate/policy/reason"
)

// The artifact rules engine (verifylib.verify_item_rules). All of an item's materials (or
// products) start in a queue; rules consume artifacts in order; DISALLOW fails on what is
// still queued and matches, REQUIRE on a name that is not queued. Consuming never touches
// the link: the queue is a bitmap over the link's sorted artifact index.
//
// Cost is O(rules × artifacts) pattern tests plus O(1) lookups per test; literal patterns
// are a single lookup.

// Near misses: a MATCH rule that selected an artifact but could not consume it remembers
// why, so that a later DISALLOW can name the rule the layout author meant to pass.
const (
	missNoLink uint32 = iota + 1
	missNoDest
	missHash
)

type ruleQueue struct {
	item     string
	products bool
	src      *artifactSet
	alive    []bool
	live     []int32 // alive indexes; compacted after each consuming rule
	near     []uint32
	rules    []*rule
	links    map[string]*Link
	kind     reason.Kind
	buf      []int32
}

// verifyItemRules applies rules to the materials (products=false) or products of the
// link of item. links holds the links the rules may refer to by name.
func verifyItemRules(item string, products bool, rules []*rule, links map[string]*Link, kind reason.Kind) error {
	self := links[item]
	if self == nil {
		return reason.New(reason.MissingEvidence, "no link to check the rules against").InStep(item)
	}
	src := self.side(products)
	q := &ruleQueue{item: item, products: products, src: src, rules: rules, links: links, kind: kind,
		alive: make([]bool, len(src.paths)), live: make([]int32, len(src.paths))}
	for i := range q.alive {
		q.alive[i] = true
		q.live[i] = int32(i)
	}
	for ri, r := range rules {
		var consumed []int32
		var err error
		switch r.kind {
		case ruleMatch:
			consumed, err = q.match(ri, r)
		case ruleCreate, ruleDelete, ruleModify:
			consumed = q.change(r, self)
		case ruleAllow:
			consumed = q.filter(r.pat)
		case ruleDisallow:
			if hit := q.filter(r.pat); len(hit) > 0 {
				err = q.disallowed(r, hit)
			}
		case ruleRequire:
			if i, ok := src.lookup(r.pat.raw); !ok || !q.alive[i] {
				err = q.required(r, ok)
			}
		}
		if err != nil {
			return err
		}
		q.consume(consumed)
	}
	return nil
}

func (q *ruleQueue) consume(idx []int32) {
	if len(idx) == 0 {
		return
	}
	for _, i := range idx {
		q.alive[i] = false
	}
	live := q.live[:0]
	for _, i := range q.live {
		if q.alive[i] {
			live = append(live, i)
		}
	}
	q.live = live
}

// filter returns the queued artifacts whose path matches p. The result
// aliases a buffer reused by the next call.
func (q *ruleQueue) filter(p *pattern) []int32 {
	out := q.buf[:0]
	if lit, ok := p.literal(); ok {
		if i, ok := q.src.lookup(lit); ok && q.alive[i] {
			out = append(out, i)
		}
	} else {
		for _, i := range q.live {
			if p.match(q.src.paths[i]) {
				out = append(out, i)
			}
		}
	}
	q.buf = out
	return out
}

// change implements CREATE, DELETE and MODIFY, which compare the item's own materials and
// products by path (and, for MODIFY, by digest).
func (q *ruleQueue) change(r *rule, self *Link) []int32 {
	hit := q.filter(r.pat)
	var out []int32
	for _, i := range hit {
		p := q.src.paths[i]
		mi, inMat := self.mat.lookup(p)
		pi, inProd := self.prod.lookup(p)
		ok := false
		switch r.kind {
		case ruleCreate:
			ok = inProd && !inMat
		case ruleDelete:
			ok = inMat && !inProd
		case ruleModify:
			ok = inMat && inProd && !self.mat.hashes[mi].equal(self.prod.hashes[pi])
		}
		if ok {
			out = append(out, i)
		}
	}
	return out
}

// match implements MATCH (verifylib.verify_match_rule) including its prefix handling.
func (q *ruleQueue) match(ri int, r *rule) ([]int32, error) {
	dest := q.links[r.dstName]
	var out []int32
	visit := func(i int32, stripped string) error {
		if dest == nil {
			q.miss(i, ri, missNoLink)
			return nil
		}
		srcIdx := i
		if r.srcPrefix != "" {
			full := strings.ReplaceAll(pyJoin(r.srcPrefix, stripped), `\`, "/")
			if full != q.src.paths[i] {
				j, ok := q.src.lookup(full)
				if !ok { // Python raises KeyError here and fails verification
					return reason.New(reason.Malformed, "artifact path cannot be resolved under prefix %q", r.srcPrefix).
						InStep(q.item).ForRule(r.text).OnArtifact(q.src.paths[i])
				}
				srcIdx = j
			}
		}
		ds := dest.side(r.dstProducts)
		d, ok := ds.lookup(destPath(r, stripped))
		switch {
		case !ok:
			q.miss(i, ri, missNoDest)
		case !ds.hashes[d].equal(q.src.hashes[srcIdx]):
			q.miss(i, ri, missHash)
		default:
			out = append(out, srcIdx)
		}
		return nil
	}
	if lit, ok := r.pat.literal(); ok {
		full := lit
		if r.srcPrefix != "" {
			full = r.normSrcPrefix + lit
		}
		if i, ok := q.src.lookup(full); ok && q.alive[i] {
			return out, visit(i, lit)
		}
		return out, nil
	}
	for _, i := range q.live {
		stripped := q.src.paths[i]
		if r.srcPrefix != "" {
			if !strings.HasPrefix(stripped, r.normSrcPrefix) {
				continue
			}
			stripped = stripped[len(r.normSrcPrefix):]
		}
		if r.pat.match(stripped) {
			if err := visit(i, stripped); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func destPath(r *rule, stripped string) string {
	if r.dstPrefix == "" {
		return stripped
	}
	return strings.ReplaceAll(pyJoin(r.dstPrefix, stripped), `\`, "/")
}

func (q *ruleQueue) miss(i int32, ri int, code uint32) {
	if q.near == nil {
		q.near = make([]uint32, len(q.src.paths))
	}
	if q.near[i] == 0 { // the first MATCH that tried is the one the author most likely meant
		q.near[i] = uint32(ri+1)<<2 | code
	}
}

func (q *ruleQueue) disallowed(r *rule, hit []int32) error {
	i := hit[0]
	for _, j := range hit[1:] { // report the smallest path: deterministic, whatever map order
		if q.src.paths[j] < q.src.paths[i] {
			i = j
		}
	}
	path := q.src.paths[i]
	more := ""
	if len(hit) > 1 {
		more = fmt.Sprintf(" (and %d more)", len(hit)-1)
	}
	if q.near != nil && q.near[i] != 0 {
		mr := q.rules[int(q.near[i]>>2)-1]
		msg := q.missMessage(mr, path, q.near[i]&3)
		return reason.New(q.kind, "%s; disallowed by %q%s", msg, r.text, more).
			InStep(q.item).ForRule(mr.text).OnArtifact(path)
	}
	return reason.New(q.kind, "%s not allowed: no earlier rule accepted it%s", singular(q.products), more).
		InStep(q.item).ForRule(r.text).OnArtifact(path)
}

func (q *ruleQueue) missMessage(r *rule, path string, code uint32) string {
	switch code {
	case missNoLink:
		return fmt.Sprintf("there is no link of %q to match against", r.dstName)
	}
	stripped := path
	if r.srcPrefix != "" {
		stripped = strings.TrimPrefix(path, r.normSrcPrefix)
	}
	dp := destPath(r, stripped)
	side := sideName(r.dstProducts)
	if code == missNoDest {
		if dp != path {
			return fmt.Sprintf("no artifact %q in %s of step %q", dp, side, r.dstName)
		}
		return fmt.Sprintf("no matching artifact in %s of step %q", side, r.dstName)
	}
	ds := q.links[r.dstName].side(r.dstProducts)
	d, _ := ds.lookup(dp)
	si, _ := q.src.lookup(path)
	return fmt.Sprintf("digest %s differs from %s in %s of step %q", shortHash(hashText(q.src.hashes[si].hashObj())), shortHash(hashText(ds.hashes[d].hashObj())), side, r.dstName)
}

func (q *ruleQueue) required(r *rule, present bool) error {
	if present {
		return reason.New(q.kind, "required %s was consumed by an earlier rule", singular(q.products)).
			InStep(q.item).ForRule(r.text).OnArtifact(r.pat.raw)
	}
	return reason.New(q.kind, "required %s is not among the %s", singular(q.products), sideName(q.products)).
		InStep(q.item).ForRule(r.text).OnArtifact(r.pat.raw)
}

func singular(products bool) string {
	if products {
		return "product"
	}
	return "material"
}

// shortHash abbreviates a canonical hash rendering for messages.
func shortHash(h string) string {
	if len(h) > 24 {
		return h[:24] + "…"
	}
	return h
}
