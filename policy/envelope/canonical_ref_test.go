package envelope

import (
	"bytes"
	"fmt"
	"strings"
)

// writeCanonicalString and canonicalInt state the canonical forms of a string and a
// number; the single-pass canonicalizer (canonjson.go) produces the same bytes without
// building strings; the tests' reference encoders use these.

var canonicalEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

func writeCanonicalString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	if strings.ContainsAny(s, `\"`) {
		canonicalEscaper.WriteString(b, s)
	} else {
		b.WriteString(s)
	}
	b.WriteByte('"')
}

// canonicalInt writes a JSON number as Python's str(int(...)) would, refusing anything
// that Python parses as a float (securesystemslib cannot canonicalize floats either).
func canonicalInt(n string) (string, error) {
	digits := strings.TrimPrefix(n, "-")
	if digits == "" || strings.ContainsFunc(digits, func(r rune) bool { return r < '0' || r > '9' }) {
		return "", fmt.Errorf("number %.40q is not an integer; canonical JSON allows integers only", n)
	}
	if digits == "0" {
		return "0", nil // Python reads -0 as the integer 0
	}
	return n, nil
}
