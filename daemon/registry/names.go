package registry

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	maxNameBytes = 255 // one whole relative path
	maxNameDepth = 8   // directories: sublayouts nest, but not deeply
)

var errBadName = errors.New("invalid evidence file name")

// SanitizeName checks a file name taken from a registry (the org.opencontainers.image.title
// annotation) or given to Attach, and returns it unchanged when it is a clean relative
// slash-separated path: no absolute path, no "." or ".." element, no empty element, no
// backslash, no control character, valid UTF-8, at most 255 bytes and 8 elements. Names
// like "build.abcd1234.link" and "sub.abcd1234/x.link" pass.
func SanitizeName(name string) (string, error) {
	switch {
	case name == "":
		return "", fmt.Errorf("%w: empty", errBadName)
	case len(name) > maxNameBytes:
		return "", fmt.Errorf("%w: %d bytes, over %d", errBadName, len(name), maxNameBytes)
	case !utf8.ValidString(name):
		return "", fmt.Errorf("%w %q: not UTF-8", errBadName, name)
	case strings.HasPrefix(name, "/"):
		return "", fmt.Errorf("%w %q: absolute path", errBadName, name)
	case strings.ContainsRune(name, '\\'):
		return "", fmt.Errorf("%w %q: backslash", errBadName, name)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "", fmt.Errorf("%w %q: control character", errBadName, name)
	}
	elems := strings.Split(name, "/")
	if len(elems) > maxNameDepth {
		return "", fmt.Errorf("%w %q: more than %d path elements", errBadName, name, maxNameDepth)
	}
	for _, e := range elems {
		switch e {
		case "":
			return "", fmt.Errorf("%w %q: empty path element", errBadName, name)
		case ".", "..":
			return "", fmt.Errorf("%w %q: %q path element", errBadName, name, e)
		}
	}
	return name, nil
}

// digestName is the file name of an untitled blob: "sha256-<hex>" plus an extension that
// says what the media type is.
func digestName(digest, mediaType string) string {
	return strings.Replace(digest, ":", "-", 1) + extension(mediaType)
}

// fileName picks the name under which a blob is returned. A usable title wins; an unusable
// one (absolute, "..", ...) is ignored rather than trusted, and the blob keeps a name
// derived from its digest. When a title is already taken by another blob, the newcomer
// keeps the title's directory (which scopes sublayouts) and takes a digest name inside it.
// A title with an element starting with "." is unusable too: evidence directories skip
// such names and the daemon's disk cache refuses them, so one referrer titled ".x" would
// otherwise keep all of an image's evidence out of the cache.
func fileName(title, digest, mediaType string, taken func(string) bool) string {
	if title != "" && !hasHiddenElement(title) {
		if clean, err := SanitizeName(title); err == nil {
			if !taken(clean) {
				return clean
			}
			if dir := path.Dir(clean); dir != "." {
				if n := dir + "/" + digestName(digest, mediaType); !taken(n) {
					return n
				}
			}
		}
	}
	// Only a title that impersonates another blob's digest name can take this one.
	n := digestName(digest, mediaType)
	for i := 1; taken(n); i++ {
		n = fmt.Sprintf("%s.%d", digestName(digest, mediaType), i)
	}
	return n
}

// hasHiddenElement reports whether a slash-separated name has an element starting with ".".
func hasHiddenElement(name string) bool {
	for _, e := range strings.Split(name, "/") {
		if strings.HasPrefix(e, ".") {
			return true
		}
	}
	return false
}
