package policy

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode"

	"tollgate.dev/tollgate/policy/attest"
	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/vsa"
)

// maxLoadErrors bounds how many problems one failed Load reports.
const maxLoadErrors = 20

// Load parses every file of a policy directory (by relative path) into a Set.
//
// YAML files (".yaml", ".yml"; hidden paths skipped) must be Tollgate policy documents;
// every other file is read only when a policy references it (layouts, keys). Everything is
// checked here: schemas (strictly: unknown fields are errors), globs, referenced files,
// keys, layout signatures and CEL conditions, so that Evaluate meets no configuration
// error at decision time. The error names every problem found, each with its file.
func Load(files map[string][]byte, generation uint64) (*Set, error) {
	l := &loader{files: files, keyCache: map[string]*keys.Key{}, set: &Set{Generation: generation}}
	names := make([]string, 0, len(files))
	for name := range files {
		if isPolicyFile(name) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		l.loadFile(name, files[name])
	}
	l.resolveTrustedRoots()
	if len(l.errs) == 0 && l.set.defaults == nil {
		l.set.defaults = &nodeDefaults{}
	}
	if len(l.errs) > 0 {
		if len(l.errs) > maxLoadErrors {
			n := len(l.errs) - maxLoadErrors
			l.errs = append(l.errs[:maxLoadErrors], fmt.Errorf("and %d more problems", n))
		}
		return nil, fmt.Errorf("policy: %w", errors.Join(l.errs...))
	}
	sort.Slice(l.set.policies, func(i, j int) bool { return l.set.policies[i].name < l.set.policies[j].name })
	return l.set, nil
}

type loader struct {
	files    map[string][]byte
	keyCache map[string]*keys.Key
	set      *Set
	errs     []error
	names    map[string]string // policy name -> file
	ndFile   string
}

func (l *loader) fail(format string, args ...any) {
	l.errs = append(l.errs, fmt.Errorf(format, args...))
}

func (l *loader) loadFile(name string, data []byte) {
	if len(data) > maxPolicyFileBytes {
		l.fail("%s: file is %d bytes, over the limit of %d", name, len(data), maxPolicyFileBytes)
		return
	}
	docs := splitDocs(data)
	if len(docs) > maxDocsPerFile {
		l.fail("%s: %d documents, over the limit of %d", name, len(docs), maxDocsPerFile)
		return
	}
	for i, doc := range docs {
		where := name
		if len(docs) > 1 {
			where = fmt.Sprintf("%s (document %d)", name, i+1)
		}
		l.loadDoc(where, doc)
	}
}

func (l *loader) loadDoc(where string, doc []byte) {
	var probe docProbe
	if err := yamlUnmarshalLenient(doc, &probe); err != nil {
		l.fail("%s: not a YAML mapping: %v", where, err)
		return
	}
	tm := probe.typeMeta
	named := func(kind string) string {
		if probe.Metadata.Name == "" {
			return kind
		}
		return fmt.Sprintf("%s %q", kind, probe.Metadata.Name)
	}
	if tm.APIVersion != APIVersion {
		l.fail("%s: apiVersion %q is not %q (every YAML file in the policy directory must be a Tollgate policy)", where, tm.APIVersion, APIVersion)
		return
	}
	switch tm.Kind {
	case KindImagePolicy:
		var d imagePolicyDoc
		if err := decodeStrict(doc, &d); err != nil {
			l.fail("%s: %s: %v", where, named(KindImagePolicy), err)
			return
		}
		l.addImagePolicy(where, &d)
	case KindNodeDefaults:
		var d nodeDefaultsDoc
		if err := decodeStrict(doc, &d); err != nil {
			l.fail("%s: %s: %v", where, named(KindNodeDefaults), err)
			return
		}
		l.addNodeDefaults(where, &d)
	case KindTrustedRoot:
		var d trustedRootDoc
		if err := decodeStrict(doc, &d); err != nil {
			l.fail("%s: %s: %v", where, named(KindTrustedRoot), err)
			return
		}
		l.addTrustedRoot(where, &d)
	default:
		l.fail("%s: kind %q is not %s, %s or %s", where, tm.Kind, KindImagePolicy, KindNodeDefaults, KindTrustedRoot)
	}
}

func (l *loader) addImagePolicy(where string, d *imagePolicyDoc) {
	name := d.Metadata.Name
	if !validName(name) {
		l.fail("%s: ImagePolicy: metadata.name %q must be a lower-case DNS name (letters, digits, '-', '.')", where, name)
		return
	}
	ctx := fmt.Sprintf("%s: ImagePolicy %q", where, name)
	if l.names == nil {
		l.names = map[string]string{}
	}
	if prev, dup := l.names[name]; dup {
		l.fail("%s: name already used in %s", ctx, prev)
		return
	}
	l.names[name] = where
	if len(l.set.policies) >= maxPolicies {
		l.fail("%s: more than %d policies", ctx, maxPolicies)
		return
	}
	p, errs := l.compilePolicy(where, name, &d.Spec)
	for _, err := range errs {
		l.fail("%s: %v", ctx, err)
	}
	if len(errs) == 0 {
		l.set.policies = append(l.set.policies, p)
	}
}

func (l *loader) compilePolicy(file, name string, spec *imagePolicySpec) (*imagePolicy, []error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	p := &imagePolicy{name: name, file: file, mode: spec.Mode}
	switch spec.Mode {
	case "":
		p.mode = Enforce
	case Enforce, Audit:
	default:
		bad("spec.mode %q must be %q or %q", spec.Mode, Enforce, Audit)
	}
	if len(spec.Images) == 0 {
		bad("spec.images must name at least one repository glob")
	} else if len(spec.Images) > maxImagesPerPolicy {
		bad("spec.images has %d globs, over the limit of %d", len(spec.Images), maxImagesPerPolicy)
	} else if g, err := compileGlobs(spec.Images); err != nil {
		bad("spec.images: %v", err)
	} else {
		p.images = g
	}
	if len(spec.Layouts) == 0 && len(spec.Attestations) == 0 && len(spec.Signatures) == 0 && len(spec.VerificationSummaries) == 0 {
		bad("spec must require at least one of layouts, attestations, signatures or verificationSummaries")
	}
	if len(spec.Layouts) > maxLayoutsPerPolicy {
		bad("spec.layouts has %d entries, over the limit of %d", len(spec.Layouts), maxLayoutsPerPolicy)
		return nil, errs
	}
	if len(spec.Attestations) > maxAttestsPerPolicy {
		bad("spec.attestations has %d entries, over the limit of %d", len(spec.Attestations), maxAttestsPerPolicy)
		return nil, errs
	}
	for i := range spec.Layouts {
		lr, err := l.compileLayout(&spec.Layouts[i])
		if err != nil {
			bad("spec.layouts[%d]: %v", i, err)
			continue
		}
		p.layouts = append(p.layouts, lr)
	}
	seen := map[string]bool{}
	for i := range spec.Attestations {
		a := &spec.Attestations[i]
		if seen[a.Name] && a.Name != "" {
			bad("spec.attestations[%d]: name %q is used twice", i, a.Name)
			continue
		}
		seen[a.Name] = true
		ar, err := l.compileAttestation(a)
		if err != nil {
			bad("spec.attestations[%d] %q: %v", i, a.Name, err)
			continue
		}
		p.attests = append(p.attests, ar)
	}
	p.sigs, errs = l.compileSignatures(spec.Signatures, errs)
	var sums []*attestReq
	sums, errs = l.compileSummaries(spec.VerificationSummaries, errs)
	p.attests = append(p.attests, sums...)
	return p, errs
}

func (l *loader) compileAttestation(a *attestationSpec) (*attestReq, error) {
	if a.Name == "" {
		return nil, fmt.Errorf("name is required")
	}
	pt, err := predicateTypeOf(a.PredicateType)
	if err != nil {
		return nil, err
	}
	if pt == vsa.PredicateType {
		// Read as a plain attestation, a VSA would pass on its signature alone: whoever
		// signed it, for whatever policy, however long ago, whatever its result.
		return nil, fmt.Errorf("predicateType %s is a verification summary: require it under spec.verificationSummaries, which checks its verifier, policy digest, age, result and levels", pt)
	}
	if len(a.Conditions) > maxConditions {
		return nil, fmt.Errorf("%d conditions, over the limit of %d", len(a.Conditions), maxConditions)
	}
	r := &attestReq{name: a.Name, predicateType: pt, rootNames: a.TrustedRoots}
	if err := l.compileSigners(r, a.Keys, a.Identities, a.Threshold); err != nil {
		return nil, err
	}
	for _, src := range a.Conditions {
		c, err := compileCondition(src)
		if err != nil {
			return nil, fmt.Errorf("condition %q: %v", src, err)
		}
		r.conds = append(r.conds, c)
	}
	return r, nil
}

// compileSigners sets r's trusted keys and keyless identities and its threshold of
// distinct signers among them.
func (l *loader) compileSigners(r *attestReq, keyRefs []string, identities []identitySpec, threshold int) error {
	var err error
	if len(keyRefs) > 0 || len(identities) == 0 {
		if r.keys, err = l.loadKeys(keyRefs); err != nil {
			return fmt.Errorf("%v (or identities must name keyless signers)", err)
		}
	}
	if r.identities, err = compileIdentities(identities); err != nil {
		return err
	}
	if len(r.rootNames) > 0 && len(r.identities) == 0 {
		return fmt.Errorf("trustedRoots apply to identities, and none is given")
	}
	r.threshold = threshold
	if r.threshold == 0 {
		r.threshold = 1
	}
	if n := len(r.keys) + len(r.identities); r.threshold < 1 || r.threshold > n {
		return fmt.Errorf("threshold %d must be between 1 and the %d distinct keys and identities", threshold, n)
	}
	return nil
}

// predicateTypeOf expands a shorthand, or checks that s is an absolute URI.
func predicateTypeOf(s string) (string, error) {
	switch s {
	case "":
		return "", fmt.Errorf("predicateType is required (a URI, or %s, %s, %s)", shorthandSLSAv1, shorthandSLSAv02, shorthandLink)
	case shorthandSLSAv1:
		return attest.PredicateSLSAProvenanceV1, nil
	case shorthandSLSAv02:
		return attest.PredicateSLSAProvenanceV02, nil
	case shorthandLink:
		return attest.PredicateLinkV03, nil
	}
	if u, err := url.Parse(s); err != nil || u.Scheme == "" || (u.Host == "" && u.Opaque == "") {
		return "", fmt.Errorf("predicateType %q is neither a URI nor one of %s, %s, %s", s, shorthandSLSAv1, shorthandSLSAv02, shorthandLink)
	}
	return s, nil
}

// loadKeys parses the referenced public key files, dropping repeats of the same key so
// that a threshold always counts distinct keys.
func (l *loader) loadKeys(refs []string) ([]*keys.Key, error) {
	if len(refs) == 0 {
		return nil, fmt.Errorf("keys must name at least one public key file")
	}
	if len(refs) > maxKeysPerEntry {
		return nil, fmt.Errorf("%d keys, over the limit of %d", len(refs), maxKeysPerEntry)
	}
	var out []*keys.Key
	for _, ref := range refs {
		k, err := l.loadKey(ref)
		if err != nil {
			return nil, err
		}
		dup := false
		for _, o := range out {
			if o.ID == k.ID || o.SameMaterial(k) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, k)
		}
	}
	return out, nil
}

func (l *loader) loadKey(ref string) (*keys.Key, error) {
	data, p, err := lookup(l.files, ref)
	if err != nil {
		return nil, fmt.Errorf("key: %v", err)
	}
	if k, ok := l.keyCache[p]; ok {
		return k, nil
	}
	if len(data) > maxReferencedBytes {
		return nil, fmt.Errorf("key %q is %d bytes, over the limit", p, len(data))
	}
	k, err := keys.ParsePublic(data)
	if err != nil {
		return nil, fmt.Errorf("key %q: %v", p, err)
	}
	l.keyCache[p] = k
	return k, nil
}

func (l *loader) addNodeDefaults(where string, d *nodeDefaultsDoc) {
	if l.ndFile != "" {
		l.fail("%s: NodeDefaults: only one is allowed, and %s already has one", where, l.ndFile)
		return
	}
	l.ndFile = where
	if d.Metadata.Name != "" && !validName(d.Metadata.Name) {
		l.fail("%s: NodeDefaults: metadata.name %q must be a lower-case DNS name", where, d.Metadata.Name)
	}
	nd, errs := compileDefaults(&d.Spec)
	for _, err := range errs {
		l.fail("%s: NodeDefaults: %v", where, err)
	}
	nd.file = where
	l.set.defaults = nd
}

// fail records one problem of a document being compiled.
type fail func(format string, args ...any)

func compileDefaults(spec *nodeDefaultsSpec) (*nodeDefaults, []error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	nd := &nodeDefaults{}
	switch spec.Unmatched {
	case "", defaultUnmatchedDeny:
	case "allow":
		nd.allowUnmatched = true
	default:
		bad("spec.unmatched %q must be \"deny\" or \"allow\"", spec.Unmatched)
	}
	compileExemptions(nd, &spec.Exemptions, bad)
	compileRevoked(nd, &spec.Revoked, bad)
	compileBreakGlass(nd, &spec.BreakGlass, bad)
	return nd, errs
}

func compileExemptions(nd *nodeDefaults, ex *exemptionsSpec, bad fail) {
	if len(ex.Digests)+len(ex.Repositories) > maxExemptions {
		bad("spec.exemptions: more than %d entries", maxExemptions)
	}
	nd.exemptDigests = digestSet("spec.exemptions.digests", ex.Digests, bad)
	if g, err := compileGlobs(ex.Repositories); err != nil {
		bad("spec.exemptions.repositories: %v", err)
	} else {
		nd.exemptRepos = g
	}
}

// compileRevoked checks the revocation list. Its reason ends every denial it causes, which
// reaches the kubelet as one line: it is bounded and may hold no line break.
func compileRevoked(nd *nodeDefaults, rv *revokedSpec, bad fail) {
	if len(rv.Digests) > maxRevoked {
		bad("spec.revoked.digests: %d entries, over the limit of %d", len(rv.Digests), maxRevoked)
	}
	nd.revoked = digestSet("spec.revoked.digests", rv.Digests, bad)
	switch {
	case len(rv.Reason) > maxRevokedReason:
		bad("spec.revoked.reason: %d bytes, over the limit of %d", len(rv.Reason), maxRevokedReason)
	case strings.IndexFunc(rv.Reason, unicode.IsControl) >= 0:
		bad("spec.revoked.reason %q must be one line of text, without control characters", rv.Reason)
	}
	nd.revokedReason = rv.Reason
}

func compileBreakGlass(nd *nodeDefaults, bg *breakGlassSpec, bad fail) {
	if bg.Until != "" {
		t, err := time.Parse(time.RFC3339, bg.Until)
		if err != nil {
			bad("spec.breakGlass.until %q is not an RFC 3339 time (2026-01-02T15:04:05Z)", bg.Until)
		}
		nd.breakGlassUntil = t
	}
	if bg.Enabled && bg.Until == "" {
		bad("spec.breakGlass.until is required when breakGlass is enabled (break-glass must end)")
	}
	nd.breakGlass = bg.Enabled
	nd.breakGlassReason = bg.Reason
}

// digestSet checks a list of digests and returns it as a set, in lower case: a digest
// copied in upper case names the same content, and images' digests are compared lowered.
// Each bad entry is reported with its index and as written.
func digestSet(field string, digests []string, bad fail) map[string]bool {
	set := make(map[string]bool, len(digests))
	for i, d := range digests {
		lower := strings.ToLower(d)
		if !validDigest(lower) {
			bad("%s[%d]: %q is not a digest (sha256:<64 hex digits>)", field, i, d)
			continue
		}
		set[lower] = true
	}
	return set
}

func validDigest(d string) bool {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || alg != "sha256" || len(hex) != 64 {
		return false
	}
	for _, c := range hex {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
