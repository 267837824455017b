//go:build e2e

package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/daemon/audit"
	"tollgate.dev/tollgate/test/tools/testimage"
)

// TestTollgateDefaults runs the scenarios of the node defaults (exemptions, break-glass,
// the unmatched default, revocation) and of multi-platform images against their own containerd and
// tollgated, set up as in TestTollgate. They rewrite NodeDefaults, which the scenarios of
// TestTollgate must never see; each one restores the node defaults when it ends, even when
// it fails, so the next one starts from the same node.
func TestTollgateDefaults(t *testing.T) {
	start := time.Now()
	env := Start(t, WithRequiredPlugin())
	g := &defaultsGate{gate: newGate(t, env)}
	g.pod = env.RunPod(t, "defaults")
	g.start(t)
	// newGate's node defaults are the baseline every scenario starts from and returns to.
	g.baseline = string(readFile(t, filepath.Join(g.policyDir, "node.yaml")))
	g.current = g.baseline
	t.Logf("e2e: environment and tollgated ready in %s", time.Since(start).Round(time.Millisecond))

	g.signed = g.pushSigned(t, "app:signed", "signed")
	g.unsigned = g.push(t, "app:unsigned", "unsigned")
	g.pull(t, g.signed)
	g.pull(t, g.unsigned)

	for _, sc := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"12-exempt-repository", g.scenarioExemptRepository},
		{"13-exempt-digest", g.scenarioExemptDigest},
		{"14-break-glass", g.scenarioBreakGlass},
		{"15-unmatched-default", g.scenarioUnmatchedDefault},
		{"16-multi-platform-index", g.scenarioIndex},
		{"17-revoked", g.scenarioRevoked},
	} {
		t0 := time.Now()
		t.Logf("e2e: ==== scenario %s ====", sc.name)
		ok := t.Run(sc.name, sc.run)
		t.Logf("e2e: ==== scenario %s: ok=%v in %s ====", sc.name, ok, time.Since(t0).Round(time.Millisecond))
	}
	t.Logf("e2e: TestTollgateDefaults done in %s", time.Since(start).Round(time.Millisecond))
}

// defaultsGate is a gate whose node defaults the scenarios change.
type defaultsGate struct {
	*gate
	baseline string // node.yaml as newGate wrote it
	current  string // node.yaml as last written
}

// nodeDefaults is one NodeDefaults document. The sandbox image's repository is always
// exempt, as in newGate.
type nodeDefaults struct {
	unmatchedAllow bool
	repositories   []string // exempted repository globs, besides the sandbox image's
	digests        []string // exempted digests
	breakGlass     time.Time
	why            string   // break-glass reason
	revoked        []string // revoked digests
	revokedWhy     string   // revocation reason
}

func (nd nodeDefaults) isBaseline() bool {
	return !nd.unmatchedAllow && len(nd.repositories)+len(nd.digests)+len(nd.revoked) == 0 && nd.breakGlass.IsZero()
}

// nodeYAML is node.yaml for nd; the zero nodeDefaults is newGate's baseline, byte for byte,
// so that restoring it is a reload only when something else was in force.
func (g *defaultsGate) nodeYAML(nd nodeDefaults) string {
	if nd.isBaseline() {
		return g.baseline
	}
	unmatched := "deny"
	if nd.unmatchedAllow {
		unmatched = "allow"
	}
	repos := []string{fmt.Sprintf("%q", g.host+"/e2e/pause")}
	for _, r := range nd.repositories {
		repos = append(repos, fmt.Sprintf("%q", r))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: tollgate.dev/v1alpha1\nkind: NodeDefaults\nmetadata:\n  name: node\nspec:\n  unmatched: %s\n", unmatched)
	fmt.Fprintf(&b, "  exemptions:\n    repositories: [%s]\n", strings.Join(repos, ", "))
	if len(nd.digests) > 0 {
		fmt.Fprintf(&b, "    digests: [%s]\n", strings.Join(nd.digests, ", "))
	}
	if !nd.breakGlass.IsZero() {
		fmt.Fprintf(&b, "  breakGlass:\n    enabled: true\n    until: %q\n    reason: %q\n",
			nd.breakGlass.UTC().Format(time.RFC3339), nd.why)
	}
	if len(nd.revoked) > 0 {
		fmt.Fprintf(&b, "  revoked:\n    digests: [%s]\n    reason: %q\n", strings.Join(nd.revoked, ", "), nd.revokedWhy)
	}
	return b.String()
}

// setDefaults writes node.yaml and waits until tollgated has loaded it (a new policy
// generation). Writing the content already in force is a no-op.
func (g *defaultsGate) setDefaults(t *testing.T, nd nodeDefaults) {
	t.Helper()
	content := g.nodeYAML(nd)
	if content == g.current {
		return
	}
	gen := metric(g.metrics(t), "tollgate_policy_generation")
	writeFile(t, filepath.Join(g.policyDir, "node.yaml"), content)
	g.current = content
	g.waitMetric(t, "tollgate_policy_generation", gen+1, 15*time.Second)
	g.waitReady(t, 10*time.Second)
	t.Logf("e2e: node defaults loaded as generation %v:\n%s", gen+1, content)
}

// withDefaults sets nd for the rest of the scenario and restores the baseline when it ends.
func (g *defaultsGate) withDefaults(t *testing.T, nd nodeDefaults) {
	t.Helper()
	t.Cleanup(func() { g.setDefaults(t, nodeDefaults{}) })
	g.setDefaults(t, nd)
}

// decisions reads tollgate_decisions_total for the labels given ("k=v").
func (g *defaultsGate) decisions(t *testing.T, labels ...string) float64 {
	t.Helper()
	return metric(g.metrics(t), "tollgate_decisions_total", labels...)
}

// checkGrew checks that tollgate_decisions_total{labels} grew by at least n since before.
func (g *defaultsGate) checkGrew(t *testing.T, before float64, n float64, labels ...string) {
	t.Helper()
	if d := g.decisions(t, labels...) - before; d < n {
		t.Errorf("tollgate_decisions_total%v grew by %v, want ≥ %v", labels, d, n)
	}
}

// hooks returns the hook records about img's content written after the first skip records.
func (g *defaultsGate) hooks(t *testing.T, img *testimage.Pushed, skip int) []audit.Record {
	t.Helper()
	var out []audit.Record
	for i, r := range g.audits(t) {
		if i >= skip && r.Path == "hook" && r.ConfigDigest == img.ConfigDigest {
			out = append(out, r)
		}
	}
	return out
}

// scenarioExemptRepository is scenario 12: an unsigned image that no policy covers is
// rejected; once its repository matches an exemption glob it runs, recorded as exempt.
func (g *defaultsGate) scenarioExemptRepository(t *testing.T) {
	img := g.push(t, "vendor-tools:1", "vendor")
	g.pull(t, img)
	g.mustReject(t, img.Ref, "tollgate: denied", "no policy matches")

	g.withDefaults(t, nodeDefaults{repositories: []string{g.host + "/e2e/vendor-*"}})
	before := g.decisions(t, "result=exempt")
	g.mustRun(t, img.Ref)
	r := g.lastHook(t, img)
	if !r.Allowed || r.Outcome != "exempt" || len(r.Reasons) != 0 ||
		!strings.Contains(r.Message, "repository "+img.Repository+" is exempted by NodeDefaults") {
		t.Errorf("audit record: allowed=%v outcome=%q reasons=%+v message=%q; want an exemption of repository %s",
			r.Allowed, r.Outcome, r.Reasons, r.Message, img.Repository)
	}
	g.checkGrew(t, before, 1, "result=exempt", "reason=none")
	// A glob matches whole repositories: e2e/vendor is not e2e/vendor-*.
	neighbor := g.push(t, "vendor:1", "vendor-neighbor")
	g.pull(t, neighbor)
	g.mustReject(t, neighbor.Ref, "tollgate: denied", "no policy matches")
}

// scenarioExemptDigest is scenario 13: in a repository an enforce policy covers, unsigned
// images exempted by manifest digest, by config digest and by index digest run; another
// unsigned image of the same repository is still rejected.
func (g *defaultsGate) scenarioExemptDigest(t *testing.T) {
	byManifest := g.push(t, "app:exempt-manifest", "exempt-manifest")
	byConfig := g.push(t, "app:exempt-config", "exempt-config")
	byIndex := g.pushIndex(t, "app:exempt-index", "exempt-index")
	g.withDefaults(t, nodeDefaults{digests: []string{byManifest.Digest, byConfig.ConfigDigest, byIndex.Digest}})
	other := g.push(t, "app:not-exempt", "not-exempt")
	for _, img := range []*testimage.Pushed{byManifest, byConfig, byIndex, other} {
		g.pull(t, img)
	}
	before := g.decisions(t, "result=exempt")
	for _, c := range []struct {
		img  *testimage.Pushed
		want string
	}{
		{byManifest, "digest " + byManifest.Digest + " is exempted"},
		{byConfig, "config digest " + byConfig.ConfigDigest + " is exempted"},
		{byIndex, "digest " + byIndex.Digest + " is exempted"},
	} {
		g.mustRun(t, c.img.Ref)
		r := g.lastHook(t, c.img)
		if !r.Allowed || r.Outcome != "exempt" || !strings.Contains(r.Message, c.want) {
			t.Errorf("audit record of %s: allowed=%v outcome=%q message=%q; want exempt, %q",
				c.img.Ref, r.Allowed, r.Outcome, r.Message, c.want)
		}
	}
	g.checkGrew(t, before, 3, "result=exempt")
	g.mustReject(t, other.Ref, "tollgate: denied", `policy "app"`, "no in-toto evidence found")
	g.checkHookReason(t, other, "missing_evidence")
	if r := g.lastHook(t, other); r.Outcome != "denied" {
		t.Errorf("audit record of %s: outcome %q, want denied", other.Ref, r.Outcome)
	}
}

// scenarioBreakGlass is scenario 14: while break-glass is on, an unsigned image in an
// enforce policy's repository and one no policy covers run, every time decided afresh
// (never cached), with the reasons they would have been denied for; once it is switched
// off (a hot reload) or has run out by itself (no reload), they are rejected again.
func (g *defaultsGate) scenarioBreakGlass(t *testing.T) {
	unsigned := g.unsigned
	stray := g.push(t, "stray-bg:1", "stray-bg")
	g.pull(t, stray)
	g.mustReject(t, unsigned.Ref, "tollgate: denied", "no in-toto evidence found")
	g.mustReject(t, stray.Ref, "tollgate: denied", "no policy matches")

	const why = "INC-4242 e2e break-glass"
	until := time.Now().Add(time.Hour).Truncate(time.Second)
	g.withDefaults(t, nodeDefaults{breakGlass: until, why: why})
	skip := len(g.audits(t))
	bgBefore := g.decisions(t, "result=break_glass", "mode=enforce", "reason=missing_evidence")
	strayBefore := g.decisions(t, "result=break_glass", "reason=no_policy")
	for i := 0; i < 2; i++ {
		g.mustRun(t, unsigned.Ref)
	}
	g.mustRun(t, stray.Ref)

	recs := g.hooks(t, unsigned, skip)
	if len(recs) != 2 {
		t.Fatalf("%d hook records for %s under break-glass, want 2: %+v", len(recs), unsigned.Ref, recs)
	}
	for _, r := range recs {
		if !r.Allowed || r.Outcome != "break_glass" || r.Cached {
			t.Errorf("audit record: allowed=%v outcome=%q cached=%v; want an uncached break_glass allowance", r.Allowed, r.Outcome, r.Cached)
		}
		for _, w := range []string{"break-glass allowed", until.UTC().Format(time.RFC3339), why, "would deny", "no in-toto evidence found"} {
			if !strings.Contains(r.Message, w) {
				t.Errorf("break-glass message %q lacks %q", r.Message, w)
			}
		}
		if len(r.Reasons) == 0 || r.Reasons[0].Kind != "missing_evidence" {
			t.Errorf("break-glass record keeps reasons %+v, want missing_evidence first", r.Reasons)
		}
	}
	if r := g.lastHook(t, stray); !r.Allowed || r.Outcome != "break_glass" || !strings.Contains(r.Message, "no policy matches") {
		t.Errorf("audit record of %s: allowed=%v outcome=%q message=%q; want break_glass over the node default",
			stray.Ref, r.Allowed, r.Outcome, r.Message)
	}
	g.checkGrew(t, bgBefore, 2, "result=break_glass", "mode=enforce", "reason=missing_evidence")
	g.checkGrew(t, strayBefore, 1, "result=break_glass", "reason=no_policy")

	// Switched off by a hot reload: rejected again at once.
	t.Log("e2e: break-glass off (hot reload)")
	g.setDefaults(t, nodeDefaults{})
	g.mustReject(t, unsigned.Ref, "tollgate: denied", "no in-toto evidence found")
	g.mustReject(t, stray.Ref, "tollgate: denied", "no policy matches")
	if r := g.lastHook(t, unsigned); r.Allowed || r.Outcome != "denied" {
		t.Errorf("after break-glass: allowed=%v outcome=%q, want denied", r.Allowed, r.Outcome)
	}

	// Running out by itself: no reload, only the clock. RFC 3339 in whole seconds, so
	// the window is 3–4 s.
	until = time.Now().Add(4 * time.Second).Truncate(time.Second)
	g.setDefaults(t, nodeDefaults{breakGlass: until, why: why})
	gen := metric(g.metrics(t), "tollgate_policy_generation")
	if time.Until(until) > time.Second {
		g.mustRun(t, unsigned.Ref)
	} else {
		t.Logf("e2e: the reload took the whole break-glass window; only its end is checked")
	}
	time.Sleep(time.Until(until) + 1100*time.Millisecond)
	t.Logf("e2e: break-glass ran out at %s", until.Format(time.RFC3339))
	g.mustReject(t, unsigned.Ref, "tollgate: denied", "no in-toto evidence found")
	if got := metric(g.metrics(t), "tollgate_policy_generation"); got != gen {
		t.Errorf("policy generation moved from %v to %v; this check is about the clock alone", gen, got)
	}
}

// scenarioUnmatchedDefault is scenario 15: an image no ImagePolicy covers is rejected with
// no_policy under `unmatched: deny` and runs under `unmatched: allow`, which leaves images
// that a policy covers to that policy.
func (g *defaultsGate) scenarioUnmatchedDefault(t *testing.T) {
	img := g.push(t, "stray:1", "stray")
	g.pull(t, img)
	denyBefore := g.decisions(t, "result=unmatched", "reason=no_policy")
	g.mustReject(t, img.Ref, "tollgate: denied",
		fmt.Sprintf("no policy matches repository %q and the node default denies it", img.Repository))
	r := g.lastHook(t, img)
	if r.Allowed || r.Outcome != "unmatched" || r.Policy != "" {
		t.Errorf("audit record: allowed=%v outcome=%q policy=%q; want an unmatched denial by no policy", r.Allowed, r.Outcome, r.Policy)
	}
	g.checkHookReason(t, img, "no_policy")
	g.checkGrew(t, denyBefore, 1, "result=unmatched", "reason=no_policy")

	g.withDefaults(t, nodeDefaults{unmatchedAllow: true})
	allowBefore := g.decisions(t, "result=unmatched", "reason=none")
	g.mustRun(t, img.Ref)
	r = g.lastHook(t, img)
	if !r.Allowed || r.Outcome != "unmatched" || len(r.Reasons) != 0 || !strings.Contains(r.Message, "node default allows it") {
		t.Errorf("audit record: allowed=%v outcome=%q reasons=%+v message=%q; want an unmatched allowance",
			r.Allowed, r.Outcome, r.Reasons, r.Message)
	}
	g.checkGrew(t, allowBefore, 1, "result=unmatched", "reason=none")
	// Covered images are still the policy's to decide.
	g.mustReject(t, g.unsigned.Ref, "tollgate: denied", `policy "app"`, "no in-toto evidence found")
	g.mustRun(t, g.signed.Ref)
}

// scenarioIndex is scenario 16: a multi-platform index whose evidence (the build link's
// image product and the SLSA provenance's subject) names the index digest runs; an index
// whose evidence, attached to it, names another digest (its other platform's manifest) is
// rejected as not bound to the image.
func (g *defaultsGate) scenarioIndex(t *testing.T) {
	good := g.pushIndex(t, "app:multi", "multi")
	g.attach(t, good, g.makeEvidence(t, good, evidence{}))
	g.pull(t, good)
	g.mustRun(t, good.Ref)
	r := g.lastHook(t, good)
	if !r.Allowed || r.Outcome != "verified" || r.Policy != "app" {
		t.Errorf("audit record: allowed=%v outcome=%q policy=%q reasons=%+v; want verified by policy app",
			r.Allowed, r.Outcome, r.Policy, r.Reasons)
	}
	for _, d := range []string{good.Digest, good.ManifestDigest} {
		if !slices.Contains(r.Digests, d) {
			t.Errorf("audit record digests %v lack %s (index %s, host manifest %s)", r.Digests, d, good.Digest, good.ManifestDigest)
		}
	}

	bad := g.pushIndex(t, "app:multi-wrong", "multi-wrong")
	other := ""
	for plat, d := range bad.Manifests {
		if d != bad.ManifestDigest {
			other = d
			t.Logf("e2e: evidence of %s names its %s manifest %s", bad.Ref, plat, d)
		}
	}
	if other == "" {
		t.Fatalf("index %s has no second platform: %v", bad.Ref, bad.Manifests)
	}
	// The evidence is made for the other digest and attached to the index.
	named := *bad
	named.Digest = other
	g.attach(t, bad, g.makeEvidence(t, &named, evidence{}))
	g.pull(t, bad)
	g.mustReject(t, bad.Ref, "tollgate: denied", `policy "app"`)
	g.checkHookReason(t, bad, "binding_mismatch")
	// The evidence was found (it is not missing), and both requirements refuse it: the
	// layout's image inspection and the provenance's subject.
	r = g.lastHook(t, bad)
	var inspection, subject bool
	for _, rr := range r.Reasons {
		t.Logf("e2e: reason %s: %s", rr.Kind, rr.Message)
		if rr.Kind == "missing_evidence" {
			t.Errorf("reasons %+v: the evidence attached to the index was not found", r.Reasons)
		}
		inspection = inspection || rr.Kind == "binding_mismatch" && strings.Contains(rr.Message, `step "image"`)
		subject = subject || rr.Kind == "binding_mismatch" && strings.Contains(rr.Message, `attestation "provenance"`) &&
			strings.Contains(rr.Message, other)
	}
	if !inspection || !subject {
		t.Errorf("reasons %+v: want binding_mismatch from the image inspection (%v) and from the provenance naming %s (%v)",
			r.Reasons, inspection, other, subject)
	}
}

// pushIndex pushes a two-platform index of a Sleeper variant as e2e/<repoTag>.
func (g *defaultsGate) pushIndex(t *testing.T, repoTag, variant string) *testimage.Pushed {
	t.Helper()
	img, err := g.env.PushIndex("e2e/"+repoTag, testimage.Spec{Program: testimage.Sleeper, Variant: variant})
	if err != nil {
		t.Fatalf("push index %s: %v", repoTag, err)
	}
	if img.ConfigDigest == "" || img.ManifestDigest == "" || img.ManifestDigest == img.Digest {
		t.Fatalf("index %s: no host-platform image: %+v", repoTag, img)
	}
	return img
}
