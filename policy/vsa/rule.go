package vsa

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"tollgate.dev/tollgate/policy/reason"
)

// MaxClockSkew is how far in the future a VSA's timeVerified may lie and still be read as
// "now": the verifier's clock and the node's differ a little, never by minutes.
const MaxClockSkew = 5 * time.Minute

// Rule is what one requirement asks of a VSA. The signers are the caller's to check;
// everything else a VSA claims is judged here.
type Rule struct {
	// VerifierID must equal the VSA's verifier.id exactly.
	VerifierID string
	// PolicyDigests are the policy digests ("sha256:<hex>", lower case) the requirement
	// accepts; the VSA's policy.digest must hold one of them. A URI alone never suffices:
	// it names where a policy lives, not what it said when the verifier read it.
	PolicyDigests []string
	// PolicyURI, when set, must equal the VSA's policy.uri as well.
	PolicyURI string
	// MaxAge bounds how long ago the verification may have happened.
	MaxAge time.Duration
	// Levels must each be met by the VSA's verifiedLevels (SLSA_<TRACK>_LEVEL_<n> is met by
	// the same track at n or above; any other value only by itself).
	Levels []string
}

// Check judges s for an image whose proven digests are digests, at now. It returns nil or
// a *reason.Error that names what was expected and what the VSA says.
func (r *Rule) Check(s *Summary, digests []string, now time.Time) *reason.Error {
	if s.Result != Passed {
		return reason.New(reason.ConditionFailed, "verifier %q recorded verificationResult %s, not %s", reason.Clip(s.VerifierID), reason.Clip(s.Result), Passed)
	}
	if s.VerifierID != r.VerifierID {
		return reason.New(reason.ConditionFailed, "verifier.id is %q, want %q", reason.Clip(s.VerifierID), r.VerifierID)
	}
	if err := r.checkPolicy(s); err != nil {
		return err
	}
	if err := checkResource(s.ResourceURI, digests); err != nil {
		return err
	}
	if err := r.checkTime(s.TimeVerified, now); err != nil {
		return err
	}
	if missing := r.missingLevels(s.Levels); len(missing) > 0 {
		return reason.New(reason.ConditionFailed, "verifiedLevels %s do not meet %s (missing %s)",
			levelList(s.Levels), levelList(r.Levels), strings.Join(missing, ", "))
	}
	return nil
}

func (r *Rule) checkPolicy(s *Summary) *reason.Error {
	want := strings.Join(r.PolicyDigests, " or ")
	got, ok := s.PolicyDigest["sha256"]
	if !ok {
		return reason.New(reason.ConditionFailed, "policy %q is named by URI only, with no sha256 digest; want policy digest %s (a matching policy URI is not enough: the digest names the policy's content)",
			reason.Clip(s.PolicyURI), want)
	}
	if found := "sha256:" + got; !slices.Contains(r.PolicyDigests, found) {
		return reason.New(reason.ConditionFailed, "policy %q was verified with policy digest %s, want %s",
			reason.Clip(s.PolicyURI), reason.Clip(found), want)
	}
	if r.PolicyURI != "" && s.PolicyURI != r.PolicyURI {
		return reason.New(reason.ConditionFailed, "policy.uri is %q, want %q", reason.Clip(s.PolicyURI), r.PolicyURI)
	}
	return nil
}

// checkResource requires the resource URI to be pinned by a digest the image proved:
// "name@sha256:<hex>". A VSA about a tag says nothing about the content behind it now.
func checkResource(uri string, digests []string) *reason.Error {
	i := strings.LastIndex(uri, "@")
	if i < 0 {
		return reason.New(reason.BindingMismatch, "resourceUri %q is not pinned by a digest (want NAME@sha256:...)", reason.Clip(uri))
	}
	pinned := strings.ToLower(uri[i+1:])
	for _, d := range digests {
		if strings.ToLower(d) == pinned {
			return nil
		}
	}
	return reason.New(reason.BindingMismatch, "resourceUri %q names %s, not the image (%s)", reason.Clip(uri), reason.Clip(pinned), strings.Join(digests, ", "))
}

func (r *Rule) checkTime(t, now time.Time) *reason.Error {
	switch age := now.Sub(t); {
	case age < -MaxClockSkew:
		return reason.New(reason.ConditionFailed, "timeVerified %s is %s in the future (the verifier's clock or the VSA is wrong)",
			t.UTC().Format(time.RFC3339), (-age).Round(time.Second))
	case age > r.MaxAge:
		return reason.New(reason.Expired, "verified at %s, %s ago, over the maximum age of %s",
			t.UTC().Format(time.RFC3339), age.Round(time.Second), r.MaxAge)
	}
	return nil
}

// ExpiresAt is when a VSA verified at t stops being young enough for r.
func (r *Rule) ExpiresAt(t time.Time) time.Time { return t.Add(r.MaxAge) }

// missingLevels returns the required levels that have is short of.
func (r *Rule) missingLevels(have []string) []string {
	var missing []string
	for _, want := range r.Levels {
		if !levelMet(want, have) {
			missing = append(missing, want)
		}
	}
	return missing
}

func levelMet(want string, have []string) bool {
	wt, wn, wok := ParseLevel(want)
	for _, h := range have {
		if h == want {
			return true
		}
		if ht, hn, ok := ParseLevel(h); ok && wok && ht == wt && hn >= wn {
			return true
		}
	}
	return false
}

// ParseLevel reads "SLSA_<TRACK>_LEVEL_<n>" into its track and level. Each SLSA level
// implies those below it on the same track, so the spec lists only the highest.
func ParseLevel(s string) (track string, n int, ok bool) {
	rest, found := strings.CutPrefix(s, "SLSA_")
	if !found {
		return "", 0, false
	}
	i := strings.LastIndex(rest, "_LEVEL_")
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(rest[i+len("_LEVEL_"):])
	if err != nil || n < 0 || n > 9 {
		return "", 0, false
	}
	return rest[:i], n, true
}

// CheckLevel says whether s may be required or recorded as a verified level: an SLSA
// level, or a custom property that does not start with SLSA_ (the spec reserves those).
func CheckLevel(s string) error {
	if _, _, ok := ParseLevel(s); ok {
		return nil
	}
	if s == "" || s == Failed || strings.HasPrefix(s, "SLSA_") || len(s) > 128 || strings.ContainsAny(s, " \t\r\n") {
		return fmt.Errorf("level %q is neither SLSA_<TRACK>_LEVEL_<n> nor a custom property (not starting with SLSA_, no spaces)", s)
	}
	return nil
}

func levelList(ls []string) string {
	if len(ls) == 0 {
		return "[]"
	}
	c := append([]string(nil), ls...)
	sort.Strings(c)
	for i, l := range c {
		c[i] = reason.Clip(l)
	}
	return "[" + strings.Join(c, ", ") + "]"
}
