// Package refname gives every spelling of an image repository that reaches the same
// registry endpoint and repository one canonical form. Policy matching, exemptions, the
// node's evidence cache, the webhook and the CLI all key on it: if two spellings that
// pull the same content were different keys, one of them would slip past the policies
// written for the other (under `unmatched: allow`, as allowed-unmatched).
//
// The canonical host is lower case (DNS names are case-insensitive, and the reference
// grammar allows upper case there), has no trailing dot, carries its port as a decimal
// number without leading zeros and without the HTTPS default 443, and names Docker Hub
// "docker.io" whichever of its aliases was written. A port that is not a number from 1 to
// 65535 is an error: no registry answers there, and no policy can be said to cover it.
//
// The package is pure and small: policy, daemon and CLI packages share it.
package refname

import (
	"fmt"
	"strconv"
	"strings"
)

// Host returns the canonical spelling of a registry "host[:port]" (IPv6 in brackets).
func Host(host string) (string, error) {
	name, port, err := splitPort(strings.ToLower(host))
	if err != nil {
		return "", fmt.Errorf("registry host %q: %w", host, err)
	}
	name = strings.TrimSuffix(name, ".")
	switch name {
	case "index.docker.io", "registry-1.docker.io":
		name = "docker.io"
	}
	if port == "" || port == "443" {
		return name, nil
	}
	return name + ":" + port, nil
}

// splitPort splits "name:port" and returns the port as a canonical decimal number, or
// "" when there is none.
func splitPort(host string) (name, port string, err error) {
	i := strings.LastIndexByte(host, ':')
	if i < 0 || strings.HasSuffix(host, "]") { // no port, or a bare bracketed IPv6 address
		return host, "", nil
	}
	name, p := host[:i], host[i+1:]
	if p == "" || len(p) > 32 || strings.Trim(p, "0123456789") != "" {
		return "", "", fmt.Errorf("port %q is not a number", p)
	}
	n, err := strconv.ParseUint(strings.TrimLeft(p, "0"), 10, 32)
	if err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Errorf("port %q is out of range (1-65535)", p)
	}
	return name, strconv.FormatUint(n, 10), nil
}

// IsHost reports whether the first path segment of a reference names a registry host,
// as Docker decides it: it has a '.' or a ':', is "localhost", or has upper case.
func IsHost(first string) bool {
	return strings.ContainsAny(first, ".:") || first == "localhost" || strings.ToLower(first) != first
}

// Repository returns the canonical form of a repository (no tag, no digest): the host in
// its canonical spelling, and Docker Hub's implicit parts spelled out ("nginx" and
// "library/nginx" are "docker.io/library/nginx").
func Repository(repo string) (string, error) {
	first, rest, hasSlash := strings.Cut(repo, "/")
	if !hasSlash {
		return "docker.io/library/" + repo, nil
	}
	if !IsHost(first) {
		return "docker.io/" + repo, nil
	}
	host, err := Host(first)
	if err != nil {
		return "", err
	}
	if host == "docker.io" && !strings.Contains(rest, "/") {
		return "docker.io/library/" + rest, nil
	}
	return host + "/" + rest, nil
}

// Split cuts a reference into its repository and the rest: "" or ":tag", "@digest",
// ":tag@digest".
func Split(ref string) (repo, suffix string) {
	repo = ref
	if i := strings.IndexByte(repo, '@'); i >= 0 {
		repo = ref[:i]
	}
	if i := strings.LastIndexByte(repo, ':'); i > strings.LastIndexByte(repo, '/') {
		repo = repo[:i]
	}
	return repo, ref[len(repo):]
}

// Reference returns the canonical form of a full reference: its repository canonical,
// its tag and digest as written.
func Reference(ref string) (string, error) {
	repo, suffix := Split(ref)
	canon, err := Repository(repo)
	if err != nil {
		return "", err
	}
	return canon + suffix, nil
}
