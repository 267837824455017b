// Package policy decides whether an image may run on a node: it matches the image against
// the node's policies and verifies the image's in-toto evidence against them.
//
// The package is pure. It reads bytes handed to it and returns decisions; it touches no
// file, network or runtime, so the node daemon, the CLI and the admission webhook all reach
// the same verdict from the same inputs.
package policy

import (
	"time"

	"tollgate.dev/tollgate/policy/reason"
	"tollgate.dev/tollgate/policy/refname"
)

// Image is the node's view of the content a container is about to run.
type Image struct {
	// Ref is the reference the user asked for (for messages and repository matching).
	Ref string
	// Repository is Ref without tag or digest, e.g. "ghcr.io/acme/api".
	Repository string
	// ConfigDigest is the image ID the rootfs is built from ("sha256:<hex>"); decisions bind to it.
	ConfigDigest string
	// Digests are the manifest and index digests that the caller has proven, from its own
	// content store, to lead to ConfigDigest. Evidence counts only if it names one of them.
	Digests []string
}

// Name renders the image for messages, audit records and logs, always one way:
// repository@digest, the digest being the first manifest (or index) digest the caller
// proved, else the config digest. A tag is never shown: it is not what was decided on,
// and with it the same content would read two ways (repo@sha256:… and
// repo:tag@sha256:…).
func (img Image) Name() string {
	name := img.Repository
	if name == "" {
		name, _ = refname.Split(img.Ref)
	}
	dg := img.ConfigDigest
	if len(img.Digests) > 0 {
		dg = img.Digests[0]
	}
	switch {
	case name == "" && dg == "":
		return "image"
	case dg == "":
		return name
	case name == "":
		return dg
	}
	return name + "@" + dg
}

// Request asks whether a container may be created from an image.
type Request struct {
	Image     Image
	Namespace string
	Pod       string
	Container string
}

// Evidence is every piece of supply-chain metadata found for an image, by relative path.
// Paths matter only for sublayouts ("<step>.<keyid8>/..."); anything else is classified by
// content.
type Evidence struct {
	Files map[string][]byte
	// Version identifies this evidence set (for example a hash over the files), so that a
	// cached decision is dropped when the evidence changes.
	Version string
}

// Mode says what happens when verification fails.
type Mode string

const (
	Enforce Mode = "enforce" // deny the container
	Audit   Mode = "audit"   // allow it, and report the failure
)

// Outcome is the bounded set of decision results, used as a metric label.
type Outcome string

const (
	Verified   Outcome = "verified"    // evidence satisfied every matching policy
	Denied     Outcome = "denied"      // verification failed in enforce mode
	AuditFail  Outcome = "audit_fail"  // verification failed in audit mode: allowed, reported
	Exempt     Outcome = "exempt"      // an exemption by digest or repository applied
	BreakGlass Outcome = "break_glass" // the node's break-glass allowed an unverified image
	Unmatched  Outcome = "unmatched"   // no policy matched; the node default decided
)

// Decision is the verdict for one Request.
type Decision struct {
	Allowed  bool
	Outcome  Outcome
	Mode     Mode
	Policy   string          // the policy (or policies, comma-separated) that decided
	Reasons  []*reason.Error // why verification failed; empty when verified
	Warnings []string        // non-fatal findings, e.g. expected_command mismatches
	Message  string          // one line for the operator: what was decided, and why
	// Cacheable is false when the verdict depends on something transient (time-bounded
	// break-glass, for instance). Infrastructure errors never reach a Decision at all.
	Cacheable bool
	// ValidUntil bounds how long the verdict may be reused (layout expiry, for instance);
	// zero means no bound beyond the cache's own lifetime.
	ValidUntil time.Time
}
