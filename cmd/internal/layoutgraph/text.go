package layoutgraph

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxLine bounds one line of a label: a layout may hold long names and commands, and a
// picture needs none of that length.
const maxLine = 80

// clean makes one line of text from the layout safe to show in any format: invalid UTF-8,
// control characters (newlines included), and the invisible characters that reorder or
// hide text (bidirectional overrides, zero-width marks, line separators) become U+FFFD;
// the line is cut at maxLine runes. The renderers then escape what their syntax needs.
func clean(s string) string {
	var b strings.Builder
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if n == maxLine {
			b.WriteString("…")
			break
		}
		if r == utf8.RuneError || hidden(r) {
			r = unicode.ReplacementChar
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// hidden reports runes that control layout or hide themselves rather than show.
func hidden(r rune) bool {
	return unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Zl, r) ||
		unicode.Is(unicode.Zp, r) || unicode.Is(unicode.Co, r) || r == '\uFFFE' || r == '\uFFFF'
}

// statusName is how a result reads in a legend and in class names.
func statusName(s Status) string {
	switch s {
	case Verified:
		return "verified"
	case Failed:
		return "failed"
	case BelowThreshold:
		return "below threshold"
	case NotReached:
		return "not reached"
	}
	return ""
}

// lines is a node's text, name first.
func (n *Node) lines() []string {
	out := []string{n.Name}
	if n.Kind == Unknown {
		out[0] = "unknown step " + n.Name
	}
	out = append(out, n.Lines...)
	if n.Status != None {
		line := statusName(n.Status)
		if n.Note != "" {
			line += ": " + n.Note
		}
		out = append(out, wrap(strings.ToUpper(line[:1])+line[1:])...)
	}
	return out
}

// maxWrapped is how many lines a long status note may take.
const maxWrapped = 3

// wrap cuts s into at most maxWrapped lines of at most maxLine runes, at a space where
// one is near the end (clean cuts whatever is left over).
func wrap(s string) []string {
	var out []string
	r := []rune(s)
	for len(r) > maxLine && len(out) < maxWrapped-1 {
		cut := maxLine
		for i := maxLine; i > maxLine/2; i-- {
			if r[i] == ' ' {
				cut = i
				break
			}
		}
		out = append(out, string(r[:cut]))
		r = r[cut:]
		if r[0] == ' ' {
			r = r[1:]
		}
	}
	return append(out, string(r))
}
