package policy

import (
	"fmt"
	"path"
	"regexp"
	"strings"
	"sync"

	"sigs.k8s.io/yaml"

	"tollgate.dev/tollgate/policy/sigstore"
)

// APIVersion is the only apiVersion policy files may declare.
const APIVersion = "tollgate.dev/v1alpha1"

// Kinds of policy documents.
const (
	KindImagePolicy  = "ImagePolicy"
	KindNodeDefaults = "NodeDefaults"
	KindTrustedRoot  = "TrustedRoot"
)

// Bounds on the policy directory: a node's policy is written by its operators, but a
// ConfigMap is easy to over-fill, and the hook must stay fast whatever it holds.
const (
	maxPolicyFileBytes     = 1 << 20
	maxDocsPerFile         = 64
	maxPolicies            = 512
	maxImagesPerPolicy     = 256
	maxLayoutsPerPolicy    = 16
	maxAttestsPerPolicy    = 32
	maxSignaturesPerPolicy = 16
	maxKeysPerEntry        = 32
	maxConditions          = 32
	maxConditionBytes      = 4096
	maxParameters          = 128
	maxExemptions          = 4096
	maxRevoked             = maxExemptions // revoked digests: the same scale as exemptions
	maxRevokedReason       = 256           // bytes: it ends every denial it causes, one line read in pod events
	maxReferencedBytes     = 16 << 20
	maxIdentitiesPerReq    = 32
	maxTrustedRootDocs     = 16
	shorthandSLSAv1        = "slsa-v1"
	shorthandSLSAv02       = "slsa-v0.2"
	shorthandLink          = "link"
	defaultUnmatchedDeny   = "deny"
)

// typeMeta is read first, leniently, to pick the document's schema.
type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// docProbe is read leniently before the strict decode, so that even a schema error can
// name the document.
type docProbe struct {
	typeMeta
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
}

type objectMeta struct {
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// imagePolicyDoc is kind ImagePolicy as written.
type imagePolicyDoc struct {
	typeMeta
	Metadata objectMeta      `json:"metadata"`
	Spec     imagePolicySpec `json:"spec"`
}

type imagePolicySpec struct {
	Images       []string          `json:"images"`
	Mode         Mode              `json:"mode,omitempty"`
	Layouts      []layoutSpec      `json:"layouts,omitempty"`
	Attestations []attestationSpec `json:"attestations,omitempty"`
	Signatures   []signatureSpec   `json:"signatures,omitempty"`
	// VerificationSummaries are SLSA VSAs the image must carry (see summary.go).
	VerificationSummaries []summarySpec `json:"verificationSummaries,omitempty"`
}

type layoutSpec struct {
	Layout     string            `json:"layout"`
	Keys       []string          `json:"keys"`
	Threshold  int               `json:"threshold,omitempty"`
	Parameters map[string]string `json:"parameters,omitempty"`
}

type attestationSpec struct {
	Name          string         `json:"name"`
	PredicateType string         `json:"predicateType"`
	Keys          []string       `json:"keys,omitempty"`
	Identities    []identitySpec `json:"identities,omitempty"`
	TrustedRoots  []string       `json:"trustedRoots,omitempty"`
	Threshold     int            `json:"threshold,omitempty"`
	Conditions    []string       `json:"conditions,omitempty"`
}

// identitySpec is one keyless signer: an issuer and a subject (exact or an anchored
// regular expression), Fulcio claims, or the GitHub shorthand.
type identitySpec struct {
	Issuer        string            `json:"issuer,omitempty"`
	IssuerRegexp  string            `json:"issuerRegexp,omitempty"`
	Subject       string            `json:"subject,omitempty"`
	SubjectRegexp string            `json:"subjectRegexp,omitempty"`
	Claims        map[string]string `json:"claims,omitempty"`
	ClaimsRegexp  map[string]string `json:"claimsRegexp,omitempty"`
	GitHub        *gitHubSpec       `json:"github,omitempty"`
}

type gitHubSpec struct {
	Owner                 string `json:"owner,omitempty"`
	Repo                  string `json:"repo,omitempty"`
	SignerWorkflow        string `json:"signerWorkflow,omitempty"`
	SignerRepo            string `json:"signerRepo,omitempty"`
	DenySelfHostedRunners bool   `json:"denySelfHostedRunners,omitempty"`
	Host                  string `json:"host,omitempty"`
}

// trustedRootDoc is kind TrustedRoot: Sigstore trust material, inline or in files of the
// policy directory, and what its instances' bundles must prove.
type trustedRootDoc struct {
	typeMeta
	Metadata objectMeta      `json:"metadata"`
	Spec     trustedRootSpec `json:"spec"`
}

type trustedRootSpec struct {
	// Files are trusted_root.json files or `gh attestation trusted-root` output.
	Files []string `json:"files,omitempty"`
	// TrustedRoot is the same content inline.
	TrustedRoot  string                 `json:"trustedRoot,omitempty"`
	Requirements *sigstore.Requirements `json:"requirements,omitempty"`
}

// signatureSpec requires that the image is signed by cosign (`cosign sign`, the `.sig`
// image): threshold distinct keys of keys, or keyless identities, signed a simple-signing
// payload naming one of the image's manifest digests.
type signatureSpec struct {
	Name         string         `json:"name"`
	Keys         []string       `json:"keys,omitempty"`
	Identities   []identitySpec `json:"identities,omitempty"`
	TrustedRoots []string       `json:"trustedRoots,omitempty"`
	Threshold    int            `json:"threshold,omitempty"`
}

// nodeDefaultsDoc is kind NodeDefaults as written.
type nodeDefaultsDoc struct {
	typeMeta
	Metadata objectMeta       `json:"metadata"`
	Spec     nodeDefaultsSpec `json:"spec"`
}

type nodeDefaultsSpec struct {
	Unmatched  string         `json:"unmatched,omitempty"`
	Exemptions exemptionsSpec `json:"exemptions,omitempty"`
	BreakGlass breakGlassSpec `json:"breakGlass,omitempty"`
	Revoked    revokedSpec    `json:"revoked,omitempty"`
}

type exemptionsSpec struct {
	Digests      []string `json:"digests,omitempty"`
	Repositories []string `json:"repositories,omitempty"`
}

type revokedSpec struct {
	Digests []string `json:"digests,omitempty"`
	Reason  string   `json:"reason,omitempty"`
}

type breakGlassSpec struct {
	Enabled bool   `json:"enabled,omitempty"`
	Until   string `json:"until,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// isPolicyFile reports whether a file of the policy directory is read as a policy document.
// Hidden paths are skipped: a mounted ConfigMap keeps its real files under "..data/".
func isPolicyFile(name string) bool {
	if hidden(name) {
		return false
	}
	ext := strings.ToLower(path.Ext(name))
	return ext == ".yaml" || ext == ".yml"
}

// docSeparator is compiled on first use, not at start-up: the CLI links this package, and
// most of its commands never read a policy file.
var docSeparator = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?m)^---[ \t]*(#.*)?\r?$`) })

// splitDocs cuts a YAML stream at its "---" lines and drops documents that hold only
// comments and blank lines.
func splitDocs(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range docSeparator().Split(string(data), -1) {
		if yamlEmpty(d) {
			continue
		}
		docs = append(docs, []byte(d))
	}
	return docs
}

func yamlEmpty(doc string) bool {
	for _, line := range strings.Split(doc, "\n") {
		l := strings.TrimSpace(line)
		if l != "" && !strings.HasPrefix(l, "#") && l != "..." {
			return false
		}
	}
	return true
}

// decodeStrict decodes one YAML document into v, rejecting unknown and duplicate fields.
func decodeStrict(doc []byte, v any) error {
	if err := yaml.UnmarshalStrict(doc, v); err != nil {
		return cleanYAMLError(err)
	}
	return nil
}

// cleanYAMLError strips the decoder's layered prefixes so the message names the field.
func cleanYAMLError(err error) error {
	msg := err.Error()
	for _, p := range []string{"error unmarshaling JSON: ", "while decoding JSON: ", "json: ",
		"error converting YAML to JSON: ", "yaml: unmarshal errors:"} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	msg = strings.Join(strings.Fields(msg), " ")
	msg = strings.ReplaceAll(msg, "Go value of type policy.docProbe", "a mapping")
	return fmt.Errorf("%s", msg)
}

// validName reports whether a policy name is a Kubernetes DNS subdomain name: at most 253
// characters of [-a-z0-9.], starting and ending alphanumeric. Names are metric labels and
// appear in every denial, so they are kept short and plain. (Written out rather than as a
// regexp: the counted repetition compiled into hundreds of states at every CLI start.)
func validName(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
	if !alnum(s[0]) || !alnum(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// cleanRef checks a path referenced from a policy file and returns it in the form used as
// a key of the policy directory's file map.
func cleanRef(ref string) (string, error) {
	if ref == "" {
		return "", fmt.Errorf("empty file reference")
	}
	if strings.HasPrefix(ref, "/") || strings.Contains(ref, "\\") {
		return "", fmt.Errorf("file reference %q must be a relative path inside the policy directory", ref)
	}
	c := path.Clean(ref)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("file reference %q leaves the policy directory", ref)
	}
	return c, nil
}

// lookup finds a referenced file, accepting either spelling of its path ("a/b" or "./a/b").
func lookup(files map[string][]byte, ref string) ([]byte, string, error) {
	c, err := cleanRef(ref)
	if err != nil {
		return nil, "", err
	}
	if b, ok := files[c]; ok {
		return b, c, nil
	}
	if b, ok := files["./"+c]; ok {
		return b, c, nil
	}
	return nil, c, fmt.Errorf("file %q is not in the policy directory", c)
}

// yamlUnmarshalLenient decodes a document without rejecting unknown fields (to read its
// apiVersion and kind before choosing the strict schema).
func yamlUnmarshalLenient(doc []byte, v any) error {
	if err := yaml.Unmarshal(doc, v); err != nil {
		return cleanYAMLError(err)
	}
	return nil
}
