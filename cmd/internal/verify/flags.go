// Package verify is `tollgate verify`'s flags and its offline form: a signed layout with
// its links, and signed Statements, checked from files with the verification core
// (policy/keys, envelope, intoto, attest). The online form, which needs the registry
// client and the policy engine, is package cli's.
package verify

import (
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"tollgate.dev/tollgate/cmd/internal/exit"
	"tollgate.dev/tollgate/cmd/internal/input"
	"tollgate.dev/tollgate/policy/attest"
	"tollgate.dev/tollgate/policy/intoto"
)

// Flags are both forms of `tollgate verify`.
type Flags struct {
	// offline
	Layout            string
	LayoutKeys        []string
	LayoutThreshold   int
	LinkDir           string
	ImageDigests      []string
	ImageConfigDigest string
	Attestations      []string
	Keys              []string
	PredicateType     string
	Threshold         int
	Params            []string
	RunInspections    bool
	At                string
	// keyless (Sigstore bundles against trusted roots), spelled as cosign spells them
	TrustedRoots   []string
	CertIdentity   string
	CertIdentityRE string
	CertIssuer     string
	CertIssuerRE   string
	Artifact       string
	// online
	Image     string
	PolicyDir string
	Insecure  []string
	Platform  string
	// output
	Output string
	// a verification summary (VSA) of a passed verification
	VSA SummaryFlags
}

// Bind defines the verify flags on fs. The cobra command and the fast path both use it,
// so they parse a command line the same way.
func (f *Flags) Bind(fl *pflag.FlagSet) {
	fl.StringVarP(&f.Layout, "layout", "l", "", "signed root layout file")
	fl.StringArrayVarP(&f.LayoutKeys, "layout-keys", "k", nil, "public key of a layout owner (repeatable)")
	fl.IntVar(&f.LayoutThreshold, "layout-threshold", 0, "distinct layout keys that must have signed (default: all given)")
	fl.StringVarP(&f.LinkDir, "link-dir", "d", ".", "directory holding the links (and sublayout directories)")
	fl.StringArrayVar(&f.ImageDigests, "image-digest", nil, "manifest or index digest of the image (sha256:...) for the image inspection and subject binding")
	fl.StringVar(&f.ImageConfigDigest, "image-config-digest", "", "config digest of the image (sha256:...)")
	fl.StringArrayVar(&f.Attestations, "attestation", nil, "DSSE envelope, cosign JSON-lines or Sigstore bundle file (repeatable)")
	fl.StringArrayVar(&f.Keys, "key", nil, "public key trusted to sign attestations (repeatable)")
	fl.StringVar(&f.PredicateType, "predicate-type", "", "required predicate type: slsa-v1, slsa-v0.2, link, or a URI")
	fl.IntVar(&f.Threshold, "threshold", 1, "distinct attestation keys that must have signed")
	fl.StringArrayVar(&f.Params, "param", nil, "layout substitution parameter `K=V` (repeatable)")
	fl.BoolVar(&f.RunInspections, "run-inspections", false, "run the layout's inspection commands here, like in-toto-verify (UNSAFE on nodes)")
	fl.StringVar(&f.At, "at", "", "verify as of this time (RFC 3339) instead of now")
	fl.StringArrayVar(&f.TrustedRoots, "trusted-root", nil, "Sigstore trusted_root.json or `gh attestation trusted-root` output (repeatable): verify --attestation as Sigstore bundles")
	fl.StringVar(&f.CertIdentity, "certificate-identity", "", "keyless: the signing certificate's subject (SAN), exactly")
	fl.StringVar(&f.CertIdentityRE, "certificate-identity-regexp", "", "keyless: a regular expression the whole SAN must match")
	fl.StringVar(&f.CertIssuer, "certificate-oidc-issuer", "", "keyless: the certificate's OIDC issuer, exactly")
	fl.StringVar(&f.CertIssuerRE, "certificate-oidc-issuer-regexp", "", "keyless: a regular expression the whole OIDC issuer must match")
	fl.StringVar(&f.Artifact, "artifact", "", "keyless: the signed file (a message signature's artifact, or a Statement's subject)")
	fl.StringVar(&f.Image, "image", "", "online: image reference to verify")
	fl.StringVar(&f.PolicyDir, "policy-dir", "", "online: the node's policy directory")
	fl.StringArrayVar(&f.Insecure, "insecure-registry", nil, "registry `HOST[:PORT]` spoken to over plain HTTP")
	fl.StringVar(&f.Platform, "platform", "", "online: platform of an index to verify (default: this machine's, linux/"+runtime.GOARCH+")")
	fl.StringVarP(&f.Output, "output", "o", "text", "output format: text, json, or (with --layout) dot or mermaid: the layout's graph coloured by each step's result")
	f.VSA.bind(fl)
}

// Mode is which form of verify a command line asks for.
type Mode int

const (
	Offline Mode = iota + 1 // files: --layout, --attestation
	Online                  // the node's decision: --image with --policy-dir
)

// Mode checks that the flags ask for exactly one form of verify, and which.
func (f *Flags) Mode() (Mode, error) {
	switch {
	case f.Output != "text" && f.Output != "json" && !f.graph():
		return 0, exit.Usagef("-o %q: want text, json, dot or mermaid", f.Output)
	case f.graph() && (f.Layout == "" || len(f.Attestations) > 0 || f.Keyless()):
		return 0, exit.Usagef("-o %s draws a layout's verification: give --layout (and no --attestation)", f.Output)
	}
	online := f.Image != "" || f.PolicyDir != ""
	offline := f.Layout != "" || len(f.Attestations) > 0
	switch {
	case online && offline:
		return 0, exit.Usagef("--image/--policy-dir (online) and --layout/--attestation (offline) are two forms of verify; use one")
	case online:
		if f.Image == "" || f.PolicyDir == "" {
			return 0, exit.Usagef("online verification needs both --image and --policy-dir")
		}
		return Online, nil
	case offline:
		return Offline, nil
	}
	return 0, exit.Usagef("nothing to verify: give --layout (with --layout-keys and --link-dir), --attestation (with --key, or with --trusted-root and --certificate-identity), or --image with --policy-dir")
}

// Keyless reports whether the command line verifies Sigstore bundles against trusted roots
// (any keyless flag). That form links sigstore-go, so the fast path leaves it to the full CLI.
func (f *Flags) Keyless() bool {
	return len(f.TrustedRoots) > 0 || f.CertIdentity != "" || f.CertIdentityRE != "" ||
		f.CertIssuer != "" || f.CertIssuerRE != "" || f.Artifact != ""
}

// When is the time to verify at: --at, or now.
func (f *Flags) When(now time.Time) (time.Time, error) {
	if f.At == "" {
		return now, nil
	}
	t, err := time.Parse(time.RFC3339, f.At)
	if err != nil {
		return time.Time{}, exit.Usagef("--at %q is not an RFC 3339 time like 2030-01-02T03:04:05Z", f.At)
	}
	return t, nil
}

// imageIdentity reads --image-digest and --image-config-digest.
func (f *Flags) imageIdentity() (*intoto.Image, error) {
	if len(f.ImageDigests) == 0 && f.ImageConfigDigest == "" {
		return nil, nil
	}
	if len(f.ImageDigests) == 0 {
		return nil, exit.Usagef("--image-config-digest needs --image-digest too")
	}
	for _, d := range append(append([]string{}, f.ImageDigests...), f.ImageConfigDigest) {
		if d == "" {
			continue
		}
		if _, _, err := input.Digest(d); err != nil {
			return nil, exit.Usagef("%v", err)
		}
	}
	return &intoto.Image{Digests: f.ImageDigests, ConfigDigest: f.ImageConfigDigest}, nil
}

func (f *Flags) parameters() (map[string]string, error) {
	if len(f.Params) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range f.Params {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, exit.Usagef("--param %q: want NAME=VALUE", kv)
		}
		out[k] = v
	}
	return out, nil
}

// PredicateURI maps the short predicate names to type URIs; a URI passes through.
func PredicateURI(s string) (string, error) {
	switch strings.ToLower(s) {
	case "":
		return "", nil
	case "slsa-v1", "slsaprovenance1", "slsa1":
		return attest.PredicateSLSAProvenanceV1, nil
	case "slsa-v0.2", "slsaprovenance02", "slsaprovenance", "slsa0.2":
		return attest.PredicateSLSAProvenanceV02, nil
	case "link":
		return attest.PredicateLinkV03, nil
	}
	if strings.Contains(s, "://") {
		return s, nil
	}
	return "", fmt.Errorf("predicate type %q: want slsa-v1, slsa-v0.2, link or a URI", s)
}
