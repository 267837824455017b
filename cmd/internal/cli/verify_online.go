package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"tollgate.dev/tollgate/cmd/internal/exit"
	"tollgate.dev/tollgate/cmd/internal/report"
	"tollgate.dev/tollgate/cmd/internal/verify"
	"tollgate.dev/tollgate/daemon/policydir"
	"tollgate.dev/tollgate/daemon/registry"
	"tollgate.dev/tollgate/policy"
	"tollgate.dev/tollgate/policy/policydiff"
)

// onlineReport is the node's decision, plus what it was about.
type onlineReport struct {
	Image         string           `json:"image"`
	Digest        string           `json:"digest"`
	ConfigDigest  string           `json:"configDigest"`
	BoundDigests  []string         `json:"boundDigests"`
	EvidenceFiles []string         `json:"evidenceFiles"`
	Allowed       bool             `json:"allowed"`
	Verified      bool             `json:"verified"`
	Outcome       string           `json:"outcome"`
	Mode          string           `json:"mode,omitempty"`
	Policy        string           `json:"policy,omitempty"`
	Message       string           `json:"message"`
	Reasons       []*report.Reason `json:"reasons,omitempty"`
	Warnings      []string         `json:"warnings"`
}

// verifyOnline decides as the node would and reports it. When the image was verified and
// --vsa-out asks for a summary, it returns what was verified (nil otherwise).
func verifyOnline(cmd *cobra.Command, e *env, f *verify.Flags) (*verify.Verified, error) {
	now, err := f.When(e.now())
	if err != nil {
		return nil, err
	}
	if err := checkRef("--image", f.Image); err != nil {
		return nil, err
	}
	if f.VSA.ResourceURI != "" {
		return nil, usage("--vsa-resource-uri is for the offline form; --image names the resource")
	}
	set, files, err := loadPolicies(f.PolicyDir)
	if err != nil {
		return nil, err
	}
	ctx := cmd.Context()
	c := newRegistry(f.Insecure)
	img, res, err := resolveImage(ctx, c, f.Image, f.Platform)
	if err != nil {
		return nil, err
	}
	ev, err := fetchEvidence(ctx, c, &img)
	if err != nil {
		return nil, failed(err)
	}
	d := policydiff.Decide(set, policy.Request{Image: img}, []policy.Evidence{{Files: ev}}, now)
	rep := newOnlineReport(res, img.ConfigDigest, img.Digests, ev, d)
	if f.Output == "json" {
		if err := report.JSON(e.stdout, rep); err != nil {
			return nil, failed(err)
		}
	} else {
		printOnline(e.stdout, rep)
	}
	switch {
	case !rep.Verified:
		return nil, exit.Quiet(ExitFailed)
	case d.Outcome == policy.Unmatched || d.Outcome == policy.Exempt:
		// Allowed, but nothing was verified: its own status, never success.
		return nil, exit.Quiet(exit.Unverified)
	}
	if f.VSA.Out == "" {
		return nil, nil
	}
	return &verify.Verified{Name: res.Repository, Digests: img.Digests, PolicyDigest: policy.Digest(files),
		Provenance: set.VerifiedProvenance(d), Time: now}, nil
}

func newOnlineReport(res *registry.Resolved, cfg string, bound []string, ev map[string][]byte, d policy.Decision) *onlineReport {
	rep := &onlineReport{Image: res.Ref, Digest: res.Digest, ConfigDigest: cfg, BoundDigests: bound,
		EvidenceFiles: sortedKeys(ev), Allowed: d.Allowed, Outcome: string(d.Outcome), Mode: string(d.Mode),
		Policy: d.Policy, Message: d.Message, Warnings: append([]string{}, d.Warnings...)}
	rep.Verified = d.Allowed && d.Outcome != policy.AuditFail && d.Outcome != policy.BreakGlass
	for _, r := range d.Reasons {
		rep.Reasons = append(rep.Reasons, report.ReasonOf(r))
	}
	return rep
}

// loadPolicies reads and loads the policy directory as the node daemon does, and returns
// the files too (their digest names the policy in a VSA).
func loadPolicies(dir string) (*policy.Set, map[string][]byte, error) {
	files, err := readPolicyDir(dir)
	if err != nil {
		return nil, nil, err
	}
	set, err := policy.Load(files, 1)
	if err != nil {
		return nil, nil, inputErr(err, "policy directory %s", dir)
	}
	return set, files, nil
}

// resolveImage asks the registry what ref names and returns the image the node would run:
// the config of the platform (an index's; default this machine's) and the manifest and
// index digests bound to it, which evidence must name. A registry failure is exit 1; a
// platform the reference lacks, or a bad --platform, exit 1 or 2.
func resolveImage(ctx context.Context, c *registry.Client, ref, platform string) (policy.Image, *registry.Resolved, error) {
	res, err := c.Resolve(ctx, ref)
	if err != nil {
		return policy.Image{}, nil, failed(fmt.Errorf("resolving %s: %w", ref, err))
	}
	cfg, err := pickConfig(res, platform)
	if err != nil {
		return policy.Image{}, nil, err
	}
	return policy.Image{Ref: res.Ref, Repository: res.Repository, ConfigDigest: cfg, Digests: res.BoundDigests(cfg)}, res, nil
}

// fetchEvidence fetches the evidence the registry holds for img's digests through its
// repository: the fetch the node daemon makes into its disk cache.
func fetchEvidence(ctx context.Context, c *registry.Client, img *policy.Image) (map[string][]byte, error) {
	ev, err := c.Fetch(ctx, img.Repository, img.Digests...)
	if err != nil {
		return nil, fmt.Errorf("fetching evidence for %s: %w", img.Name(), err)
	}
	return ev, nil
}

// pickConfig chooses the config digest the node would run: the manifest's own, or for an
// index the one of the requested platform (default linux/<this machine's arch>).
func pickConfig(res *registry.Resolved, platform string) (string, error) {
	if !res.IsIndex() {
		if platform != "" {
			return "", usage("--platform %s: %s is a single-platform manifest", platform, res.Ref)
		}
		return res.ConfigDigest, nil
	}
	if platform == "" {
		platform = "linux/" + runtime.GOARCH
	}
	parts := strings.Split(platform, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return "", usage("--platform %q: want OS/ARCH[/VARIANT]", platform)
	}
	var seen []string
	for _, m := range res.Manifests {
		seen = append(seen, m.OS+"/"+m.Architecture+variant(m.Variant))
		if m.OS == parts[0] && m.Architecture == parts[1] && (len(parts) == 2 || m.Variant == parts[2]) && m.ConfigDigest != "" {
			return m.ConfigDigest, nil
		}
	}
	return "", failed(fmt.Errorf("%s has no %s image (platforms: %s); pass --platform", res.Ref, platform, strings.Join(seen, ", ")))
}

func variant(v string) string {
	if v == "" {
		return ""
	}
	return "/" + v
}

// readPolicyDir reads the policy directory exactly as the node daemon does.
func readPolicyDir(dir string) (map[string][]byte, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, inputErr(err, "policy directory")
	}
	if !st.IsDir() {
		return nil, usage("--policy-dir %s is not a directory", dir)
	}
	files, err := policydir.Read(dir, policydir.DefaultLimits)
	if err != nil {
		return nil, inputErr(err, "reading policy directory %s", dir)
	}
	return files, nil
}

func printOnline(w io.Writer, r *onlineReport) {
	fmt.Fprintf(w, "Image %s\n  digest %s, config %s\n", r.Image, r.Digest, r.ConfigDigest)
	fmt.Fprintf(w, "  evidence for %s: %d file(s)\n", strings.Join(r.BoundDigests, ", "), len(r.EvidenceFiles))
	for _, name := range r.EvidenceFiles {
		fmt.Fprintf(w, "    %s\n", name)
	}
	if r.Policy != "" {
		fmt.Fprintf(w, "  policy %s (%s): %s\n", r.Policy, r.Mode, r.Outcome)
	} else {
		fmt.Fprintf(w, "  outcome: %s\n", r.Outcome)
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	fmt.Fprintln(w, r.Message)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
