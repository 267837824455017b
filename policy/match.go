package policy

import (
	"fmt"
	"strings"

	"tollgate.dev/tollgate/policy/refname"
)

// Repository globs.
//
// A glob is matched against the whole repository name in its canonical form
// ("docker.io/library/nginx", "ghcr.io/acme/api", "localhost:5000/app"):
//   - '*' matches any run of characters within one path segment (never '/');
//   - '?' matches exactly one character other than '/';
//   - every other character matches itself; there are no classes and no escapes;
//   - "**" is not allowed: a policy names each level it covers, so a new sub-tree of a
//     registry is never covered by accident.
//
// "ghcr.io/acme/*" covers "ghcr.io/acme/api" but not "ghcr.io/acme/team/api";
// "*.example.com/base/*" covers every registry host under example.com.
// Globs and repositories are both canonicalized the way Docker does it: a first segment
// without '.' or ':' that is not "localhost" is a Docker Hub path, so "nginx" and
// "library/nginx" both mean "docker.io/library/nginx".

// glob is a compiled repository glob.
type glob struct {
	src      string   // as written
	segments []string // canonical pattern, split at '/'
}

func compileGlob(s string) (glob, error) {
	switch {
	case s == "":
		return glob{}, fmt.Errorf("empty image glob")
	case strings.Contains(s, "**"):
		return glob{}, fmt.Errorf("image glob %q: \"**\" is not supported; '*' matches within one path segment", s)
	case strings.ContainsAny(s, "@ \t[]\\{}"):
		return glob{}, fmt.Errorf("image glob %q: must be a repository without tag or digest; only '*' and '?' are special", s)
	case strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/") || strings.Contains(s, "//"):
		return glob{}, fmt.Errorf("image glob %q: empty path segment", s)
	}
	canon, err := globRepository(s)
	if err != nil {
		return glob{}, fmt.Errorf("image glob %q: %w", s, err)
	}
	last := canon[strings.LastIndex(canon, "/")+1:]
	if strings.Contains(last, ":") {
		return glob{}, fmt.Errorf("image glob %q: must not carry a tag (globs match repositories)", s)
	}
	return glob{src: s, segments: strings.Split(canon, "/")}, nil
}

// globRepository canonicalizes a glob as a repository. A port with '*' or '?' is left as
// written (lower case): it is a pattern, not a port.
func globRepository(s string) (string, error) {
	first, rest, hasSlash := strings.Cut(s, "/")
	if hasSlash && refname.IsHost(first) && strings.ContainsAny(first, "*?") {
		if _, port, ok := strings.Cut(first, ":"); ok && strings.ContainsAny(port, "*?") {
			return strings.ToLower(first) + "/" + rest, nil
		}
	}
	return canonicalRepository(s)
}

// match reports whether repo (canonical) matches the glob.
func (g glob) match(repo string) bool {
	// Walk segments without allocating: the hook calls this for every policy.
	for i, pat := range g.segments {
		var seg string
		j := strings.IndexByte(repo, '/')
		if j < 0 {
			seg, repo = repo, ""
			if i != len(g.segments)-1 {
				return false
			}
		} else {
			seg, repo = repo[:j], repo[j+1:]
			if i == len(g.segments)-1 {
				return false
			}
		}
		if !matchSegment(pat, seg) {
			return false
		}
	}
	return true
}

// matchSegment matches one path segment against a pattern of literals, '*' and '?'.
// Iterative with single backtracking: linear in practice, never exponential.
func matchSegment(pat, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pat) && (pat[p] == '?' || pat[p] == s[i]):
			p++
			i++
		case p < len(pat) && pat[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pat) && pat[p] == '*' {
		p++
	}
	return p == len(pat)
}

type globs []glob

func compileGlobs(list []string) (globs, error) {
	out := make(globs, 0, len(list))
	for _, s := range list {
		g, err := compileGlob(s)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, nil
}

func (gs globs) match(repo string) bool {
	for _, g := range gs {
		if g.match(repo) {
			return true
		}
	}
	return false
}

// canonicalRepository returns repo in the one spelling refname gives it, or an error for
// a registry port that is not a number in range.
func canonicalRepository(repo string) (string, error) { return refname.Repository(repo) }

// repositoryOf returns the canonical repository of an image: Image.Repository when set,
// else Image.Ref without its tag or digest; "" when the image names none. An error says
// the reference names no registry one can reach (a port out of range).
func repositoryOf(img Image) (string, error) {
	repo := img.Repository
	if repo == "" {
		repo, _ = refname.Split(img.Ref)
	}
	if repo == "" {
		return "", nil
	}
	return canonicalRepository(repo)
}
