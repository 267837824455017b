package layoutspec

import (
	"fmt"
	"strings"
)

// splitCommand splits a command line the way Python's shlex.split does for the cases a
// layout needs (Python in-toto's tools split expected_command strings with it): words are
// separated by blanks; single quotes keep everything literally; double quotes keep
// everything but backslash escapes of \ " $ `; a backslash outside quotes escapes the
// next character.
func splitCommand(s string) ([]string, error) {
	var (
		words   []string
		cur     strings.Builder
		inWord  bool
		quote   rune
		escaped bool
	)
	for _, r := range s {
		switch {
		case escaped:
			if quote == '"' && !strings.ContainsRune("\\\"$`\n", r) {
				cur.WriteRune('\\')
			}
			cur.WriteRune(r)
			escaped = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case quote == '"':
			switch r {
			case '"':
				quote = 0
			case '\\':
				escaped = true
			default:
				cur.WriteRune(r)
			}
		case r == '\\':
			escaped, inWord = true, true
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("command %q has an unclosed %c quote", s, quote)
	}
	if escaped {
		return nil, fmt.Errorf("command %q ends in a backslash", s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
