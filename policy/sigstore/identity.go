package sigstore

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
)

// Claim names a Fulcio certificate extension that an identity may require.
type Claim string

// The Fulcio extensions an identity may put conditions on (names as Fulcio's
// documentation and sigstore-go's certificate.Extensions spell them).
const (
	SourceRepositoryURI        Claim = "sourceRepositoryURI"
	SourceRepositoryDigest     Claim = "sourceRepositoryDigest"
	SourceRepositoryRef        Claim = "sourceRepositoryRef"
	SourceRepositoryOwnerURI   Claim = "sourceRepositoryOwnerURI"
	BuildSignerURI             Claim = "buildSignerURI"
	BuildSignerDigest          Claim = "buildSignerDigest"
	RunnerEnvironment          Claim = "runnerEnvironment"
	BuildTrigger               Claim = "buildTrigger"
	BuildConfigURI             Claim = "buildConfigURI"
	SourceRepositoryVisibility Claim = "sourceRepositoryVisibilityAtSigning"
)

// claimValue reads a claim from a certificate's extensions.
var claimValue = map[Claim]func(e *certificate.Extensions) string{
	SourceRepositoryURI:        func(e *certificate.Extensions) string { return e.SourceRepositoryURI },
	SourceRepositoryDigest:     func(e *certificate.Extensions) string { return e.SourceRepositoryDigest },
	SourceRepositoryRef:        func(e *certificate.Extensions) string { return e.SourceRepositoryRef },
	SourceRepositoryOwnerURI:   func(e *certificate.Extensions) string { return e.SourceRepositoryOwnerURI },
	BuildSignerURI:             func(e *certificate.Extensions) string { return e.BuildSignerURI },
	BuildSignerDigest:          func(e *certificate.Extensions) string { return e.BuildSignerDigest },
	RunnerEnvironment:          func(e *certificate.Extensions) string { return e.RunnerEnvironment },
	BuildTrigger:               func(e *certificate.Extensions) string { return e.BuildTrigger },
	BuildConfigURI:             func(e *certificate.Extensions) string { return e.BuildConfigURI },
	SourceRepositoryVisibility: func(e *certificate.Extensions) string { return e.SourceRepositoryVisibilityAtSigning },
}

// Claims lists the claims an identity may require, sorted.
func Claims() []Claim {
	out := make([]Claim, 0, len(claimValue))
	for c := range claimValue {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// maxPatternBytes bounds one exact value or regular expression of an identity.
const maxPatternBytes = 1024

// Value matches one certificate field: exactly, or by a regular expression that must match
// the whole value. (sigstore-go's and cosign's regular expressions are unanchored:
// "https://github.com/org/.*" there also matches "https://evil.example/?https://github.com/org/x".
// Here the expression is anchored at both ends.)
type Value struct {
	Exact  string
	Regexp string
	re     *regexp.Regexp
}

// Exact returns a Value that matches s only.
func Exact(s string) Value { return Value{Exact: s} }

func (v *Value) compile() error {
	if v.Exact != "" && v.Regexp != "" {
		return fmt.Errorf("give an exact value or a regular expression, not both")
	}
	if len(v.Exact) > maxPatternBytes || len(v.Regexp) > maxPatternBytes {
		return fmt.Errorf("value is over %d bytes", maxPatternBytes)
	}
	if v.Regexp == "" || v.re != nil {
		return nil
	}
	re, err := regexp.Compile(`^(?:` + v.Regexp + `)$`)
	if err != nil {
		return fmt.Errorf("regular expression %q: %v", v.Regexp, err)
	}
	v.re = re
	return nil
}

// IsZero reports whether the value matches nothing in particular (it was not given).
func (v Value) IsZero() bool { return v.Exact == "" && v.Regexp == "" }

func (v Value) matches(s string) bool {
	switch {
	case v.re != nil:
		return v.re.MatchString(s)
	case v.Regexp != "":
		// Not compiled: cannot happen through NewIdentity; refuse rather than guess.
		return false
	}
	return v.Exact == s
}

// String renders the expectation for messages.
func (v Value) String() string {
	if v.Regexp != "" {
		return fmt.Sprintf("matching /%s/", v.Regexp)
	}
	return fmt.Sprintf("%q", v.Exact)
}

// Identity is a signer the policy trusts: a certificate issuer (the OIDC issuer Fulcio
// recorded) paired with a subject (the certificate's SAN), and optional conditions on
// other Fulcio extensions. All must match.
type Identity struct {
	// Issuer may be zero only for certificates that carry no issuer (GitHub's release
	// attestations); then the subject alone decides.
	Issuer     Value
	Subject    Value
	Conditions map[Claim]Value
	// Name is how messages and results name the identity; NewIdentity fills it.
	Name string
}

// NewIdentity checks and compiles an identity.
func NewIdentity(id Identity) (*Identity, error) {
	if id.Subject.IsZero() {
		return nil, fmt.Errorf("identity needs a subject (the certificate's SAN), exact or a regular expression")
	}
	if err := id.Subject.compile(); err != nil {
		return nil, fmt.Errorf("subject: %v", err)
	}
	if err := id.Issuer.compile(); err != nil {
		return nil, fmt.Errorf("issuer: %v", err)
	}
	conds := make(map[Claim]Value, len(id.Conditions))
	for c, v := range id.Conditions {
		if _, ok := claimValue[c]; !ok {
			return nil, fmt.Errorf("unknown certificate claim %q (known: %s)", c, claimList())
		}
		if v.IsZero() {
			return nil, fmt.Errorf("claim %s: give an exact value or a regular expression", c)
		}
		if err := v.compile(); err != nil {
			return nil, fmt.Errorf("claim %s: %v", c, err)
		}
		conds[c] = v
	}
	id.Conditions = conds
	if id.Name == "" {
		id.Name = id.describe()
	}
	return &id, nil
}

func claimList() string {
	var s []string
	for _, c := range Claims() {
		s = append(s, string(c))
	}
	return strings.Join(s, ", ")
}

// describe renders the identity as "subject S from issuer I".
func (id *Identity) describe() string {
	s := "subject " + id.Subject.String()
	if !id.Issuer.IsZero() {
		s += " from issuer " + id.Issuer.String()
	}
	return s
}

// Signer is who a certificate says signed: its SAN, its OIDC issuer, and its Fulcio
// extensions. For a bundle signed with a key, only KeyHint is set.
type Signer struct {
	Subject    string
	Issuer     string
	Extensions certificate.Extensions
	// CertificateIssuer is the distinguished name of the CA that issued the certificate.
	CertificateIssuer string
	KeyHint           string
}

// String renders the signer for messages.
func (s *Signer) String() string {
	if s.Subject == "" && s.KeyHint != "" {
		return fmt.Sprintf("key %q", s.KeyHint)
	}
	if s.Issuer == "" {
		return fmt.Sprintf("subject %q (no issuer in the certificate)", s.Subject)
	}
	return fmt.Sprintf("subject %q from issuer %q", s.Subject, s.Issuer)
}

// mismatch says why s does not match id, or returns "" when it does. claim reports that
// issuer and subject matched and a claim did not.
func (id *Identity) mismatch(s *Signer) (why string, claim bool) {
	if s.Subject == "" {
		return "the bundle is signed with a key, not a certificate", false
	}
	if !id.Subject.matches(s.Subject) || (!id.Issuer.IsZero() && !id.Issuer.matches(s.Issuer)) {
		return fmt.Sprintf("signed by %s, not %s", s, id.Name), false
	}
	claims := make([]Claim, 0, len(id.Conditions))
	for c := range id.Conditions {
		claims = append(claims, c)
	}
	sort.Slice(claims, func(i, j int) bool { return claims[i] < claims[j] })
	for _, c := range claims {
		got := claimValue[c](&s.Extensions)
		if want := id.Conditions[c]; !want.matches(got) {
			return fmt.Sprintf("signed by %s, whose certificate has %s %q, not %s", s, c, got, want), true
		}
	}
	return "", false
}

// GitHub is the shorthand `gh attestation verify` offers: --owner, --repo,
// --signer-workflow, --signer-repo and --deny-self-hosted-runners.
type GitHub struct {
	Owner string // an organisation or user: the source repository's owner
	Repo  string // "owner/name": the source repository
	// SignerWorkflow is the workflow that signed: "owner/repo/.github/workflows/x.yml", a
	// regular expression matched against the SAN after "https://github.com/" (as gh does).
	SignerWorkflow string
	// SignerRepo is the repository of the signing workflow ("owner/repo"), for reusable
	// workflows kept in another repository.
	SignerRepo            string
	DenySelfHostedRunners bool
	// Host is the GitHub host, "github.com" by default.
	Host string
}

// gitHubActionsIssuer is the OIDC issuer of GitHub Actions on github.com.
const gitHubActionsIssuer = "https://token.actions.githubusercontent.com"

// Identity expands the shorthand the way gh does: the signer is a workflow of the
// repository or owner (or SignerWorkflow / SignerRepo), the issuer is GitHub Actions, the
// source repository (or its owner) is a claim, and DenySelfHostedRunners requires the
// runner environment "github-hosted". Owner and repository names compare without case,
// as GitHub's do.
func (g GitHub) Identity() (*Identity, error) {
	host := g.Host
	if host == "" {
		host = "github.com"
	}
	if g.Owner == "" && g.Repo == "" {
		return nil, fmt.Errorf("github: give owner or repo")
	}
	owner := g.Owner
	if g.Repo != "" {
		o, n, ok := strings.Cut(g.Repo, "/")
		if !ok || o == "" || n == "" || strings.Contains(n, "/") {
			return nil, fmt.Errorf("github: repo %q: want OWNER/NAME", g.Repo)
		}
		if owner != "" && !strings.EqualFold(owner, o) {
			return nil, fmt.Errorf("github: repo %q is not owned by %q", g.Repo, owner)
		}
		owner = o
	}
	base := "https://" + host + "/"
	id := Identity{Issuer: Exact(gitHubActionsIssuer), Conditions: map[Claim]Value{}}
	if host != "github.com" {
		id.Issuer = Exact("https://token.actions." + host) // GitHub Enterprise Server's issuer
	}
	scope := owner
	if g.Repo != "" {
		scope = g.Repo
		id.Conditions[SourceRepositoryURI] = Value{Regexp: "(?i)" + regexp.QuoteMeta(base+g.Repo)}
	}
	id.Conditions[SourceRepositoryOwnerURI] = Value{Regexp: "(?i)" + regexp.QuoteMeta(base+owner)}
	switch {
	case g.SignerWorkflow != "":
		id.Subject = Value{Regexp: regexp.QuoteMeta(base) + g.SignerWorkflow + `@.*`}
		if strings.HasPrefix(g.SignerWorkflow, base) {
			id.Subject = Value{Regexp: g.SignerWorkflow + `@.*`}
		}
	case g.SignerRepo != "":
		id.Subject = Value{Regexp: "(?i)" + regexp.QuoteMeta(base+g.SignerRepo+"/") + `.*`}
	default:
		id.Subject = Value{Regexp: "(?i)" + regexp.QuoteMeta(base+scope+"/") + `.*`}
	}
	if g.DenySelfHostedRunners {
		id.Conditions[RunnerEnvironment] = Exact("github-hosted")
	}
	return NewIdentity(id)
}
