//go:build e2e

package e2e

import (
	"testing"
	"time"
)

// TestTollgate runs Tollgate's end-to-end scenarios (issue 5) against one real containerd
// with NRI's default validator requiring the "tollgate" plugin (fail-closed), one
// tollgated, and a loopback registry. Evidence is made by the tollgate CLI (keygen, layout
// create, run, attest, attach) exactly as a pipeline would.
//
// The scenarios share the environment and run in order; the ones that restart tollgated
// or containerd come last, after the metrics scenario, which reads the counters of the
// decisions before it.
func TestTollgate(t *testing.T) {
	start := time.Now()
	env := Start(t, WithRequiredPlugin())
	g := newGate(t, env)
	g.pod = env.RunPod(t, "gate")
	g.start(t)
	t.Logf("e2e: environment and tollgated ready in %s", time.Since(start).Round(time.Millisecond))

	// Images shared by several scenarios.
	g.signed = g.pushSigned(t, "app:signed", "signed")
	g.unsigned = g.push(t, "app:unsigned", "unsigned")

	for _, sc := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"1-signed-runs", g.scenarioSignedRuns},
		{"2-no-evidence-rejected", g.scenarioNoEvidenceRejected},
		{"3-bad-evidence-rejected", g.scenarioBadEvidenceRejected},
		{"4-retag-to-unsigned", g.scenarioRetagToUnsigned},
		{"5-audit-mode", g.scenarioAuditMode},
		{"7-policy-hot-reload", g.scenarioPolicyHotReload},
		{"8-preverification-cache", g.scenarioPreverificationCache},
		{"11-metrics", g.scenarioMetrics},
		{"9-containerd-restart", g.scenarioContainerdRestart},
		{"6-fail-closed", g.scenarioFailClosed},
		{"10-air-gapped", g.scenarioAirGapped},
	} {
		t0 := time.Now()
		t.Logf("e2e: ==== scenario %s ====", sc.name)
		ok := t.Run(sc.name, sc.run)
		t.Logf("e2e: ==== scenario %s: ok=%v in %s ====", sc.name, ok, time.Since(t0).Round(time.Millisecond))
	}

	t.Logf("e2e: TestTollgate done in %s", time.Since(start).Round(time.Millisecond))
}
