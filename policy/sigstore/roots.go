// Package sigstore verifies Sigstore bundles (v0.1 to v0.3, DSSE and message signature)
// offline, from trusted roots the node holds, and matches the signer against an identity
// policy.
//
// The cryptography is sigstore-go's (certificate chains, SCTs, Rekor SETs, inclusion
// proofs and checkpoints, RFC 3161 timestamps); this package chooses what each Sigstore
// instance must prove, and decides who signed: identities are issuer and subject pairs,
// exact or regular expressions that must match the whole value, with Fulcio certificate
// extensions as further conditions. Nothing here reads files or the network.
//
// The flow is two steps, so that one bundle's cryptography is checked once however many
// requirements look at it:
//
//	roots, _ := sigstore.ParseTrustedRoots(data)          // trusted_root.json, or JSON lines
//	v, err := roots.VerifyBundle(bundleJSON, sigstore.Digest("sha256:…")) // crypto only
//	id, err := v.Match(identities...)                      // who signed, against the policy
//
// Verify does both at once.
package sigstore

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/sigstore/sigstore-go/pkg/root"

	"tollgate.dev/tollgate/policy/reason"
)

// Bounds on trust material. A trusted_root.json of the public-good instance is about 8 KiB,
// GitHub's with its CA rotations about 20 KiB.
const (
	MaxTrustedRootBytes = 4 << 20
	MaxInstances        = 32
)

// gitHubOrganization is the organisation in the certificates of GitHub's own Sigstore
// instance (its Fulcio and its timestamp authority), as `gh attestation verify` tells
// that instance apart.
const gitHubOrganization = "GitHub, Inc."

// Requirements are what a bundle from one instance must carry for its certificate to be
// trusted: counts of verified proofs, each 0 (not required) or more.
type Requirements struct {
	// SCTs: signed certificate timestamps from the instance's CT logs in the certificate.
	SCTs int `json:"signedCertificateTimestamps"`
	// TransparencyLog: verified transparency-log entries (inclusion proof or promise).
	TransparencyLog int `json:"transparencyLogEntries"`
	// ObserverTimestamps: trusted times of signing, from log entries or timestamp
	// authorities together.
	ObserverTimestamps int `json:"observerTimestamps"`
	// SignedTimestamps: RFC 3161 timestamps from the instance's timestamp authorities.
	SignedTimestamps int `json:"signedTimestamps"`
}

// PublicGoodRequirements are `gh attestation verify`'s (and cosign's) for the public-good
// instance, and the default for any instance that is not GitHub's: one SCT, one log
// entry, and one observer timestamp.
var PublicGoodRequirements = Requirements{SCTs: 1, TransparencyLog: 1, ObserverTimestamps: 1}

// GitHubRequirements are `gh attestation verify`'s for GitHub's instance (private
// repositories' attestations): it runs no transparency log and no CT log, so one RFC 3161
// signed timestamp is what proves when the certificate was used.
var GitHubRequirements = Requirements{SignedTimestamps: 1}

func (r Requirements) validate() error {
	if r.SCTs < 0 || r.TransparencyLog < 0 || r.ObserverTimestamps < 0 || r.SignedTimestamps < 0 {
		return fmt.Errorf("requirement counts must not be negative")
	}
	if r.SCTs > 8 || r.TransparencyLog > 8 || r.ObserverTimestamps > 8 || r.SignedTimestamps > 8 {
		return fmt.Errorf("requirement counts must be at most 8")
	}
	if r.ObserverTimestamps == 0 && r.SignedTimestamps == 0 {
		// A short-lived certificate is only meaningful with a trusted time of signing.
		return fmt.Errorf("observerTimestamps or signedTimestamps must be at least 1: a short-lived certificate needs a trusted time of signing")
	}
	return nil
}

// String renders the requirements for messages.
func (r Requirements) String() string {
	var parts []string
	add := func(n int, what string) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, what))
		}
	}
	add(r.SCTs, "SCT")
	add(r.TransparencyLog, "transparency-log entry")
	add(r.ObserverTimestamps, "observer timestamp")
	add(r.SignedTimestamps, "signed timestamp")
	return strings.Join(parts, ", ")
}

// Instance is one Sigstore instance's trust material and what its bundles must prove.
type Instance struct {
	// Name names the instance in messages and metrics.
	Name string
	// GitHub reports that the instance is GitHub's own (its CA says "GitHub, Inc.").
	GitHub       bool
	Requirements Requirements
	// root is the parsed trusted root (a root.TrustedMaterial so that tests can stand a
	// Sigstore of their own in).
	root root.TrustedMaterial
}

// TrustedRoots is the trust material of one or more instances, tried in order.
type TrustedRoots struct {
	instances []*Instance
}

// Instances returns the instances, in the order they were given.
func (t *TrustedRoots) Instances() []*Instance {
	if t == nil {
		return nil
	}
	return t.instances
}

// Option adjusts ParseTrustedRoots.
type Option func(*parseConfig)

type parseConfig struct {
	name string
	req  *Requirements
}

// WithName names the instances ("NAME", then "NAME-2", "NAME-3" for further lines).
// Without it an instance is named for its CA ("github", or the CA's host).
func WithName(name string) Option { return func(c *parseConfig) { c.name = name } }

// WithRequirements sets what every instance of the data requires, instead of the
// defaults (GitHubRequirements for GitHub's instance, PublicGoodRequirements otherwise).
func WithRequirements(r Requirements) Option { return func(c *parseConfig) { c.req = &r } }

// ParseTrustedRoots reads Sigstore trust material: one trusted_root.json, or the JSON
// lines `gh attestation trusted-root` prints (one trusted root per line).
func ParseTrustedRoots(data []byte, opts ...Option) (*TrustedRoots, error) {
	var cfg parseConfig
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.req != nil {
		if err := cfg.req.validate(); err != nil {
			return nil, reason.New(reason.Malformed, "trusted root requirements").Wrap(err)
		}
	}
	if len(data) > MaxTrustedRootBytes {
		return nil, reason.New(reason.Malformed, "trusted root is %d bytes, over the limit of %d", len(data), MaxTrustedRootBytes)
	}
	docs, err := splitRoots(data)
	if err != nil {
		return nil, err
	}
	t := &TrustedRoots{}
	for i, doc := range docs {
		tr, err := root.NewTrustedRootFromJSON(doc)
		if err != nil {
			return nil, reason.New(reason.Malformed, "trusted root %d of %d is not a Sigstore trusted root", i+1, len(docs)).Wrap(err)
		}
		if len(tr.FulcioCertificateAuthorities()) == 0 && len(tr.TimestampingAuthorities()) == 0 && len(tr.RekorLogs()) == 0 {
			return nil, reason.New(reason.Malformed, "trusted root %d of %d holds no certificate authority, timestamp authority or log", i+1, len(docs))
		}
		in := &Instance{root: tr, GitHub: isGitHub(tr)}
		in.Name = instanceName(cfg.name, i, tr, in.GitHub)
		switch {
		case cfg.req != nil:
			in.Requirements = *cfg.req
		case in.GitHub:
			in.Requirements = GitHubRequirements
		default:
			in.Requirements = PublicGoodRequirements
		}
		t.instances = append(t.instances, in)
	}
	return t, nil
}

// Join returns the instances of all of ts, in order.
func Join(ts ...*TrustedRoots) *TrustedRoots {
	out := &TrustedRoots{}
	for _, t := range ts {
		out.instances = append(out.instances, t.Instances()...)
	}
	return out
}

// splitRoots cuts data into its top-level JSON objects (one, or one per line).
func splitRoots(data []byte) ([][]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var docs [][]byte
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, reason.New(reason.Malformed, "trusted root %d is not valid JSON", len(docs)+1).Wrap(err)
		}
		if len(raw) == 0 || raw[0] != '{' {
			return nil, reason.New(reason.Malformed, "trusted root %d is not a JSON object", len(docs)+1)
		}
		if len(docs) == MaxInstances {
			return nil, reason.New(reason.Malformed, "more than %d trusted roots", MaxInstances)
		}
		docs = append(docs, raw)
	}
	if len(docs) == 0 {
		return nil, reason.New(reason.Malformed, "trusted root file is empty")
	}
	return docs, nil
}

// isGitHub reports whether every certificate authority of tr is GitHub's.
func isGitHub(tr *root.TrustedRoot) bool {
	cas := tr.FulcioCertificateAuthorities()
	if len(cas) == 0 {
		return false
	}
	for _, ca := range cas {
		f, ok := ca.(*root.FulcioCertificateAuthority)
		if !ok || f.Root == nil || !hasOrg(f.Root, gitHubOrganization) {
			return false
		}
	}
	return true
}

func hasOrg(c *x509.Certificate, org string) bool {
	for _, o := range c.Subject.Organization {
		if o == org {
			return true
		}
	}
	return false
}

func instanceName(given string, i int, tr *root.TrustedRoot, gitHub bool) string {
	base := given
	switch {
	case base != "":
	case gitHub:
		base = "github"
	default:
		base = "sigstore"
		for _, ca := range tr.FulcioCertificateAuthorities() {
			if f, ok := ca.(*root.FulcioCertificateAuthority); ok && f.URI != "" {
				base = hostOf(f.URI)
				break
			}
		}
	}
	if i == 0 {
		return base
	}
	return fmt.Sprintf("%s-%d", base, i+1)
}

func hostOf(uri string) string {
	h := uri
	if _, rest, ok := strings.Cut(h, "://"); ok {
		h = rest
	}
	h, _, _ = strings.Cut(h, "/")
	if h == "" {
		return "sigstore"
	}
	return h
}
