package intoto

import (
	"strings"
	"unicode/utf8"
)

// pattern is an artifact-rule pattern compiled once, with exactly Python's fnmatch
// semantics (fnmatch.translate of CPython 3.11 on POSIX): '*' matches any run of characters
// including '/', '?' one character, '[...]' a class ('!' negates, ranges as Python builds
// them, an unclosed '[' is literal), and nothing can be escaped. Common shapes (literal,
// "*", "prefix*", "*suffix") take fast paths; the rest use a backtracking matcher that is
// O(len(pattern)*len(name)) at worst.
type pattern struct {
	raw    string
	shape  patternShape
	fixed  string // literal, prefix or suffix for the fast shapes
	tokens []ptoken
}

type patternShape uint8

const (
	shapeGeneral patternShape = iota
	shapeLiteral
	shapeAll
	shapePrefix
	shapeSuffix
)

type ptoken struct {
	kind  tokenKind
	r     rune
	class *charClass
}

type tokenKind uint8

const (
	tokLiteral tokenKind = iota
	tokAny
	tokStar
	tokClass
)

type charClass struct {
	never  bool // an empty class: matches nothing
	negate bool
	chars  []rune
	ranges [][2]rune
}

func (c *charClass) matches(r rune) bool {
	if c.never {
		return false
	}
	in := false
	for _, x := range c.chars {
		if x == r {
			in = true
			break
		}
	}
	if !in {
		for _, rg := range c.ranges {
			if rg[0] <= r && r <= rg[1] {
				in = true
				break
			}
		}
	}
	return in != c.negate
}

func compilePattern(raw string) *pattern {
	p := &pattern{raw: raw, tokens: tokenize([]rune(raw))}
	p.classify()
	return p
}

func tokenize(pat []rune) []ptoken {
	var toks []ptoken
	n := len(pat)
	for i := 0; i < n; {
		c := pat[i]
		i++
		switch c {
		case '*':
			if len(toks) == 0 || toks[len(toks)-1].kind != tokStar {
				toks = append(toks, ptoken{kind: tokStar})
			}
		case '?':
			toks = append(toks, ptoken{kind: tokAny})
		case '[':
			cls, next, ok := parseClass(pat, i)
			if !ok {
				toks = append(toks, ptoken{kind: tokLiteral, r: '['})
				continue
			}
			toks = append(toks, ptoken{kind: tokClass, class: cls})
			i = next
		default:
			toks = append(toks, ptoken{kind: tokLiteral, r: c})
		}
	}
	return toks
}

// parseClass ports the bracket handling of fnmatch.translate; i is just past '['.
func parseClass(pat []rune, i int) (*charClass, int, bool) {
	n := len(pat)
	j := i
	if j < n && pat[j] == '!' {
		j++
	}
	if j < n && pat[j] == ']' {
		j++
	}
	for j < n && pat[j] != ']' {
		j++
	}
	if j >= n {
		return nil, i, false
	}
	chunks := classChunks(pat, i, j)
	cls := &charClass{}
	total := 0
	for _, ch := range chunks {
		total += len(ch)
	}
	switch {
	case total == 0:
		cls.never = true
		return cls, j + 1, true
	case len(chunks) == 1 && total == 1 && chunks[0][0] == '!':
		cls.negate, cls.never = true, false // "[!]"-like leftovers: any character
		return cls, j + 1, true
	}
	if len(chunks[0]) > 0 && chunks[0][0] == '!' {
		cls.negate = true
		chunks[0] = chunks[0][1:]
	}
	for k, ch := range chunks {
		cls.chars = append(cls.chars, ch...)
		if k > 0 && len(chunks[k-1]) > 0 && len(ch) > 0 {
			prev := chunks[k-1]
			cls.ranges = append(cls.ranges, [2]rune{prev[len(prev)-1], ch[0]})
		}
	}
	return cls, j + 1, true
}

// classChunks splits the class body pat[i:j] where fnmatch.translate does: chunks are
// joined by range hyphens, and a reversed (empty) range is removed with its endpoints.
func classChunks(pat []rune, i, j int) [][]rune {
	stuff := pat[i:j]
	if !containsRune(stuff, '-') {
		return [][]rune{append([]rune(nil), stuff...)}
	}
	var chunks [][]rune
	k := i + 1
	if pat[i] == '!' {
		k = i + 2
	}
	for {
		k = indexRune(pat, '-', k, j)
		if k < 0 {
			break
		}
		chunks = append(chunks, append([]rune(nil), pat[i:k]...))
		i = k + 1
		k += 3
	}
	if chunk := pat[i:j]; len(chunk) > 0 {
		chunks = append(chunks, append([]rune(nil), chunk...))
	} else {
		last := len(chunks) - 1
		chunks[last] = append(chunks[last], '-')
	}
	for k := len(chunks) - 1; k > 0; k-- {
		left, right := chunks[k-1], chunks[k]
		if len(left) > 0 && len(right) > 0 && left[len(left)-1] > right[0] {
			chunks[k-1] = append(append([]rune(nil), left[:len(left)-1]...), right[1:]...)
			chunks = append(chunks[:k], chunks[k+1:]...)
		}
	}
	return chunks
}

func containsRune(rs []rune, r rune) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

func indexRune(rs []rune, r rune, from, to int) int {
	for k := from; k < to && k < len(rs); k++ {
		if rs[k] == r {
			return k
		}
	}
	return -1
}

func (p *pattern) classify() {
	var lit strings.Builder
	stars, others, starAt := 0, 0, -1
	for i, t := range p.tokens {
		switch t.kind {
		case tokStar:
			stars++
			starAt = i
		case tokLiteral:
			lit.WriteRune(t.r)
		default:
			others++
		}
	}
	switch {
	case others > 0 || stars > 1:
		p.shape = shapeGeneral
	case stars == 0:
		p.shape, p.fixed = shapeLiteral, lit.String()
	case len(p.tokens) == 1:
		p.shape = shapeAll
	case starAt == len(p.tokens)-1:
		p.shape, p.fixed = shapePrefix, lit.String()
	case starAt == 0:
		p.shape, p.fixed = shapeSuffix, lit.String()
	default:
		p.shape = shapeGeneral
	}
}

// literal reports whether the pattern matches exactly one name, and which.
func (p *pattern) literal() (string, bool) { return p.fixed, p.shape == shapeLiteral }

func (p *pattern) match(s string) bool {
	switch p.shape {
	case shapeLiteral:
		return s == p.fixed
	case shapeAll:
		return true
	case shapePrefix:
		return strings.HasPrefix(s, p.fixed)
	case shapeSuffix:
		return strings.HasSuffix(s, p.fixed)
	}
	return matchTokens(p.tokens, s)
}

// matchTokens is the classic single-backtrack glob matcher; with fixed-width tokens between
// stars it accepts exactly what Python's translated regular expression accepts.
func matchTokens(toks []ptoken, s string) bool {
	ti, si := 0, 0
	starTi, starSi := -1, 0
	for si < len(s) {
		if ti < len(toks) {
			t := toks[ti]
			if t.kind == tokStar {
				starTi, starSi = ti, si
				ti++
				continue
			}
			r, size := utf8.DecodeRuneInString(s[si:])
			if t.matchRune(r) {
				ti++
				si += size
				continue
			}
		}
		if starTi < 0 {
			return false
		}
		_, size := utf8.DecodeRuneInString(s[starSi:])
		starSi += size
		si, ti = starSi, starTi+1
	}
	for ti < len(toks) && toks[ti].kind == tokStar {
		ti++
	}
	return ti == len(toks)
}

func (t ptoken) matchRune(r rune) bool {
	switch t.kind {
	case tokLiteral:
		return t.r == r
	case tokAny:
		return true
	case tokClass:
		return t.class.matches(r)
	}
	return false
}
