// Package evidence finds the in-toto evidence (links, DSSE envelopes, Sigstore bundles) for
// an image's manifest and index digests on the node: in the node evidence directory, in the
// daemon's disk cache of earlier registry fetches, and through a registry Fetcher that fills
// that cache.
//
// # On-disk layout
//
// The node evidence directory (--evidence-dir) holds a directory per manifest or index
// digest, named after the digest, that holds that digest's evidence files under any
// relative path:
//
//	<root>/sha256/<64 hex>/build.abcd1234.link
//	<root>/sha256/<64 hex>/provenance.dsse.json
//	<root>/sha256/<64 hex>/sub.abcd1234/package.ef567890.link   (sublayout links)
//
// The operator fills it, so it serves every image with those digests, whatever repository
// the image came from.
//
// The disk cache (<cache-dir>/evidence) is filled from registries, and what a registry
// holds for a digest depends on the repository asked: anyone may push a copy of a manifest,
// or an index containing it, to a repository of their own, with evidence of their own. So
// the cache has the same tree one level down, per repository, under the lower-case hex
// SHA-256 of the repository name exactly as the image names it ("registry.example/team/app"):
//
//	<cache-dir>/evidence/<64 hex of sha256(repository)>/sha256/<64 hex>/...
//
// A fetch through one repository never replaces or removes what another's fetch stored,
// and an image's evidence is read from its own repository's tree only.
//
// File names matter only for sublayouts ("<step>.<keyid8>/..."): policy classifies every
// other file by its content. Names starting with "." are ignored (they are temporary files,
// or a ConfigMap's "..data" machinery). Symbolic links are followed.
//
// Only bytes are stored, never verdicts: whatever a Source returns is verified again by the
// policy on every use. Reads are bounded in file size, file count, total size and depth;
// exceeding a bound is an error rather than a silent truncation, so an operator reads why.
// The registry Refresh enforces the same per-image bounds over an image's digests
// together before it stores anything, so the cache never holds what it cannot read back.
package evidence

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"

	"tollgate.dev/tollgate/policy"
)

// Source yields the evidence stored for a set of manifest/index digests. A Source that has
// nothing returns an Evidence with no files and a nil error; an error means the source
// could not be read (disk or network trouble, a limit exceeded) and must never be taken
// as "no evidence".
type Source interface {
	// Name says where the evidence came from, for logs and messages ("evidence-dir").
	Name() string
	// Load returns the files for digests, merged, with Version set.
	Load(ctx context.Context, repo string, digests []string) (policy.Evidence, error)
}

// Limits bound what one Load reads.
type Limits struct {
	MaxFileBytes  int64 // one file
	MaxFiles      int   // files per Load, all digests together
	MaxTotalBytes int64 // bytes per Load, all digests together
	MaxDepth      int   // directory levels below a digest directory
}

// DefaultLimits fit real evidence (a few links and SLSA statements per image) with a wide
// margin, and keep a hostile directory or registry from exhausting memory. MaxTotalBytes
// is what one verification loads: with at most two verifications at once (the gate's
// default) and the heap one costs at the limits (under 48 MiB, measured by the gate's
// TestHostileEvidenceHeap), they fit the DaemonSet's GOMEMLIMIT (100 MiB) above the
// daemon's baseline; docs/operations.md ("Sizing") has the arithmetic. It holds what the
// registry client returns for an image's index and platform manifest at its per-fetch
// limit (8 MiB each).
var DefaultLimits = Limits{
	MaxFileBytes:  16 << 20, // the policy's own bound on one JSON document
	MaxFiles:      512,
	MaxTotalBytes: 16 << 20,
	MaxDepth:      8,
}

// Version identifies a set of evidence files: "sha256:" over every name and its bytes, in
// name order. No files give "", so "nothing found" is one stable version.
func Version(files map[string][]byte) string {
	if len(files) == 0 {
		return ""
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	var n8 [8]byte
	for _, n := range names {
		// Length-prefix names and contents so that no two different sets hash alike.
		binary.BigEndian.PutUint64(n8[:], uint64(len(n)))
		h.Write(n8[:])
		h.Write([]byte(n))
		binary.BigEndian.PutUint64(n8[:], uint64(len(files[n])))
		h.Write(n8[:])
		h.Write(files[n])
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// ErrOverLimit is wrapped by the error of a Refresh whose evidence exceeds Limits, for
// all of the image's digests together.
var ErrOverLimit = errors.New("evidence over the per-image limit")

// repoDir names the disk cache directory of a repository: the hex SHA-256 of its name,
// so that any name gives one fixed-length, safe path element.
func repoDir(repo string) string {
	h := sha256.Sum256([]byte(repo))
	return hex.EncodeToString(h[:])
}

// digestPath turns "sha256:<hex>" into the relative directory "sha256/<hex>", refusing
// anything that is not a well-formed digest (it becomes part of a file path).
func digestPath(digest string) (string, error) {
	alg, hx, ok := strings.Cut(digest, ":")
	if !ok {
		return "", fmt.Errorf("digest %q has no algorithm", digest)
	}
	var want int
	switch alg {
	case "sha256":
		want = 64
	case "sha384":
		want = 96
	case "sha512":
		want = 128
	default:
		return "", fmt.Errorf("digest %q: unsupported algorithm %q", digest, alg)
	}
	if len(hx) != want {
		return "", fmt.Errorf("digest %q: want %d hex characters", digest, want)
	}
	for i := 0; i < len(hx); i++ {
		c := hx[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", fmt.Errorf("digest %q: not lower-case hex", digest)
		}
	}
	return alg + "/" + hx, nil
}

// merge adds files found for one digest to the evidence of the whole image. The same name
// under two digests (an index and its platform manifest often carry the same link) is kept
// once when the bytes agree; when they differ, the later file gets a suffix naming its
// digest. The suffix keeps the directory, which is all a sublayout's scope depends on.
func merge(dst map[string][]byte, digest string, files map[string][]byte) {
	for name, data := range files {
		old, taken := dst[name]
		switch {
		case !taken:
			dst[name] = data
		case string(old) == string(data):
		default:
			_, hx, _ := strings.Cut(digest, ":")
			if len(hx) > 12 {
				hx = hx[:12]
			}
			dst[name+".from-"+hx] = data
		}
	}
}
