package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"path"
	"sort"
	"strings"
)

// Digest is the policy set's digest ("sha256:<hex>"): the value a node reports for the
// policy in force and a verification summary (VSA) names as the policy it checked.
//
// Canonical form: every file of the policy directory that a read keeps (hidden paths
// such as a ConfigMap's "..data" left out), named by its slash-separated path relative to
// the directory ("./" dropped), sorted by path as bytes, each written as sha256sum(1)
// writes it ("<hex>  <path>\n", a path holding "\" or a newline escaped and the line
// prefixed with "\"), and the whole text hashed with SHA-256. It depends only on paths
// and content: not on the order files were read, their times or their modes. So, with
// GNU tools:
//
//	cd DIR && find -L . -type f ! -path '*/.*' -printf '%P\n' | LC_ALL=C sort |
//	    xargs -d '\n' sha256sum | sha256sum
//
// Every file counts, not only the YAML documents: layouts, keys and trusted roots are
// what the policies trust, and a file nothing references today may be referenced by the
// next edit of a policy.
func Digest(files map[string][]byte) string {
	names := make([]string, 0, len(files))
	byName := make(map[string][]byte, len(files))
	for name, data := range files {
		c := path.Clean(strings.TrimPrefix(name, "./"))
		if hidden(c) {
			continue
		}
		names = append(names, c)
		byName[c] = data
	}
	sort.Strings(names)
	h := sha256.New()
	for _, name := range names {
		sum := sha256.Sum256(byName[name])
		prefix := ""
		if strings.ContainsAny(name, "\\\n") {
			prefix = "\\"
			name = strings.NewReplacer("\\", "\\\\", "\n", "\\n").Replace(name)
		}
		h.Write([]byte(prefix + hex.EncodeToString(sum[:]) + "  " + name + "\n"))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// hidden reports whether a relative path has a part starting with ".", as the policy
// directory read skips.
func hidden(name string) bool {
	for _, part := range strings.Split(name, "/") {
		if strings.HasPrefix(part, ".") {
			return true
		}
	}
	return false
}
