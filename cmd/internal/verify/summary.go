package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"tollgate.dev/tollgate/cmd/internal/exit"
	"tollgate.dev/tollgate/cmd/internal/input"
	"tollgate.dev/tollgate/policy"
	"tollgate.dev/tollgate/policy/attest"
	"tollgate.dev/tollgate/policy/provenance"
	"tollgate.dev/tollgate/policy/vsa"
)

// SummaryFlags ask verify to write a signed SLSA verification summary (VSA v1) when, and
// only when, verification passed.
type SummaryFlags struct {
	Out         string
	Key         string
	VerifierID  string
	PolicyURI   string
	ResourceURI string
	BuildLevel  int
}

func (s *SummaryFlags) bind(fl *pflag.FlagSet) {
	fl.StringVar(&s.Out, "vsa-out", "", "write a signed SLSA verification summary (VSA v1, DSSE) here when verification passes (nothing is written when it fails)")
	fl.StringVar(&s.Key, "vsa-key", "", "private key that signs the VSA (the verifier's key nodes trust)")
	fl.StringVar(&s.VerifierID, "verifier-id", "", "the VSA's verifier.id: a URI naming this verifier")
	fl.StringVar(&s.PolicyURI, "policy-uri", "", "the VSA's policy.uri: where the policy verified against lives")
	fl.StringVar(&s.ResourceURI, "vsa-resource-uri", "", "offline: the verified image's name (pinned with the first --image-digest); --image uses the image reference")
	fl.IntVar(&s.BuildLevel, "vsa-build-level", 0, "record SLSA_BUILD_LEVEL_N (2 or 3) instead of 1: you assert that the keys trusted for the provenance are a build platform's at that level")
}

// Wanted reports whether a VSA is asked for, and checks that its flags are complete.
func (s *SummaryFlags) Wanted() (bool, error) {
	if s.Out == "" {
		if s.Key != "" || s.VerifierID != "" || s.PolicyURI != "" || s.ResourceURI != "" || s.BuildLevel != 0 {
			return false, exit.Usagef("--vsa-key, --verifier-id, --policy-uri, --vsa-resource-uri and --vsa-build-level describe the VSA written to --vsa-out, which is not given")
		}
		return false, nil
	}
	switch {
	case s.Key == "":
		return false, exit.Usagef("--vsa-out needs --vsa-key (the verifier's private key)")
	case !isURI(s.VerifierID):
		return false, exit.Usagef("--vsa-out needs --verifier-id, a URI naming this verifier (got %q)", s.VerifierID)
	case !isURI(s.PolicyURI):
		return false, exit.Usagef("--vsa-out needs --policy-uri, a URI naming the policy (got %q)", s.PolicyURI)
	case s.BuildLevel != 0 && (s.BuildLevel < 2 || s.BuildLevel > 3):
		return false, exit.Usagef("--vsa-build-level %d: want 2 or 3 (1 is recorded whenever SLSA provenance was verified)", s.BuildLevel)
	}
	return true, nil
}

func isURI(s string) bool {
	u, err := url.Parse(s)
	return s != "" && err == nil && u.Scheme != ""
}

// Verified is what a passed verification covered: what a VSA may say about it.
type Verified struct {
	// Name is the image's name (no tag, no digest); Digests are the digests verified
	// against, the first being the one the resource URI is pinned by.
	Name    string
	Digests []string
	// PolicyDigest is policy.Digest of the policy verified against.
	PolicyDigest string
	// Provenance is true when SLSA provenance bound to Digests was verified with trusted
	// keys: SLSA_BUILD_LEVEL_1 at least.
	Provenance bool
	Inputs     []vsa.Input
	Time       time.Time
}

// Statement builds the VSA Statement for v: subjects are the verified digests, the result
// PASSED, and the levels only those verified (see SummaryFlags.BuildLevel).
func (s *SummaryFlags) Statement(v *Verified) ([]byte, error) {
	if len(v.Digests) == 0 {
		return nil, exit.Usagef("a VSA is about an image: pass --image-digest (offline) so there is a verified subject")
	}
	if s.BuildLevel > 0 && !v.Provenance {
		return nil, exit.Usagef("--vsa-build-level %d: no SLSA provenance was verified, so no build level can be recorded", s.BuildLevel)
	}
	var levels []string
	if v.Provenance {
		levels = []string{"SLSA_BUILD_LEVEL_" + strconv.Itoa(max(1, s.BuildLevel))}
	}
	alg, hexd, _ := strings.Cut(v.PolicyDigest, ":")
	sum := &vsa.Summary{VerifierID: s.VerifierID, TimeVerified: v.Time, ResourceURI: v.Name + "@" + v.Digests[0],
		PolicyURI: s.PolicyURI, PolicyDigest: map[string]string{alg: hexd}, Result: vsa.Passed, Levels: levels, SLSAVersion: "1.0"}
	pred, err := sum.Predicate(v.Inputs)
	if err != nil {
		return nil, exit.Fail(err)
	}
	subjects := make([]provenance.Subject, 0, len(v.Digests))
	for _, d := range v.Digests {
		sub, err := provenance.ImageSubject(v.Name, d)
		if err != nil {
			return nil, exit.Usagef("%v", err)
		}
		subjects = append(subjects, sub)
	}
	st, err := provenance.Statement(vsa.PredicateType, subjects, pred)
	if err != nil {
		return nil, exit.Fail(err)
	}
	return st, nil
}

// offlineVerified is what an offline verification that passed covered. Its policy is the
// trust it was given on the command line, restated as a directory for policy.Digest:
// layout/NAME, layout-keys/NAME, keys/NAME and a "settings" file with the remaining
// flags that decide the outcome, one per line.
func (f *Flags) offlineVerified(rep *offlineReport, img []string, now time.Time) (*Verified, error) {
	name := f.VSA.ResourceURI
	if name == "" || strings.Contains(name, "@") {
		return nil, exit.Usagef("offline, --vsa-out needs --vsa-resource-uri, the verified image's name without a digest (e.g. registry.example/app; got %q)", name)
	}
	files := map[string][]byte{}
	add := func(dir string, paths ...string) error {
		for _, p := range paths {
			data, err := input.File(p, input.MaxDocumentFile)
			if err != nil {
				return exit.Inputf(err, "reading %s", p)
			}
			files[dir+"/"+filepath.Base(p)] = data
		}
		return nil
	}
	if f.Layout != "" {
		if err := add("layout", f.Layout); err != nil {
			return nil, err
		}
	}
	if err := add("layout-keys", f.LayoutKeys...); err != nil {
		return nil, err
	}
	if err := add("keys", f.Keys...); err != nil {
		return nil, err
	}
	files["settings"] = []byte(fmt.Sprintf("predicate-type %s\nthreshold %d\nlayout-threshold %d\nparams %s\n",
		f.PredicateType, f.Threshold, f.LayoutThreshold, strings.Join(f.Params, " ")))
	v := &Verified{Name: name, Digests: img, PolicyDigest: policy.Digest(files), Time: now}
	if ar := rep.Attestations; ar != nil && ar.SubjectBound {
		for _, a := range ar.Accepted {
			if a.PredicateType == attest.PredicateSLSAProvenanceV1 || a.PredicateType == attest.PredicateSLSAProvenanceV02 {
				v.Provenance = true
			}
			v.Inputs = append(v.Inputs, vsa.Input{URI: a.File, Digest: map[string]string{"sha256": a.sha256}})
		}
	}
	return v, nil
}

func sha256Hex(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}
