//go:build e2e

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// color is on when stdout is a terminal and NO_COLOR is unset.
var color = func() bool {
	if os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	st, err := os.Stdout.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}()

func paint(code, s string) string {
	if !color {
		return s
	}
	return "\033[" + code + "m" + s + "\033[0m"
}

func bold(s string) string  { return paint("1", s) }
func red(s string) string   { return paint("1;31", s) }
func green(s string) string { return paint("1;32", s) }
func dim(s string) string   { return paint("2", s) }

// indent prefixes every line of s; the result ends with a newline.
func indent(s, prefix string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix) + "\n"
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// rel shortens path for display when it is under base.
func rel(base, path string) string {
	if r, err := filepath.Rel(base, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func orFirst(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// shortDigest abbreviates "sha256:<64 hex>" to "sha256:<12 hex>…" for display.
func shortDigest(d string) string {
	if alg, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return alg + ":" + hex[:12] + "…"
	}
	return d
}

// jsonLine re-encodes one JSON object keeping only keys (in that order) and dropping
// empty strings, for showing a log or audit record without its noise. A line that is not JSON comes back as it is.
func jsonLine(line string, keys ...string) string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		return line
	}
	var b strings.Builder
	b.WriteString("{")
	n := 0
	for _, k := range keys {
		v, ok := m[k]
		if !ok || string(v) == `""` {
			continue
		}
		if n > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q: %s", k, v)
		n++
	}
	b.WriteString("}")
	return b.String()
}
