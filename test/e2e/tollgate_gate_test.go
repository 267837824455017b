//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/layoutspec"
	"tollgate.dev/tollgate/test/tools/testimage"
)

// builderID is the SLSA builder the test policies require.
const builderID = "https://ci.e2e.tollgate.dev/builder"

// gate is one containerd with one tollgated and the evidence pipeline around them, shared
// by every scenario of TestTollgate. Everything lives under env.Dir/tg.
type gate struct {
	env       *Env
	cli       string // the tollgate CLI binary
	daemonBin string // tollgated
	host      string // the registry's host:port

	keysDir, policyDir, evidenceDir, cacheDir, auditLog, workDir string
	listen                                                       string

	proc      *Process
	pod       *Pod
	extraArgs []string // more tollgated flags
	counter   atomic.Int64

	// Images shared by several scenarios: valid evidence in the registry, and none.
	signed, unsigned *testimage.Pushed
}

// newGate prepares keys, layouts and policies, and builds both binaries.
func newGate(t *testing.T, env *Env) *gate {
	t.Helper()
	root := filepath.Join(env.Dir, "tg")
	g := &gate{
		env: env, host: env.Registry.Host,
		cli:       BuildCLI(t),
		daemonBin: BuildBinary(t, "./cmd/tollgated"),
		keysDir:   filepath.Join(root, "keys"), policyDir: filepath.Join(root, "policies"),
		evidenceDir: filepath.Join(root, "evidence"), cacheDir: filepath.Join(root, "cache"),
		auditLog: filepath.Join(root, "audit.jsonl"), workDir: filepath.Join(root, "work"),
		listen: freeAddr(t),
	}
	for _, d := range []string{g.keysDir, g.policyDir, g.evidenceDir, g.cacheDir, g.workDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// owner signs layouts, builder signs the build links, ci signs provenance; rogue is a
	// key nobody trusts.
	for _, k := range []string{"owner", "builder", "ci", "rogue"} {
		g.tollgate(t, "keygen", filepath.Join(g.keysDir, k))
	}
	layoutYAML := filepath.Join(g.keysDir, "app.layout.yaml")
	writeFile(t, layoutYAML, `expires: 8760h
readme: Tollgate e2e supply chain
steps:
  - name: build
    threshold: 1
    functionaries: [builder.pub]
    expected_command: []
    materials: [DISALLOW *]
    products: [ALLOW image, DISALLOW *]
inspections:
  - image: {from: build}
`)
	g.tollgate(t, "layout", "create", "--from", layoutYAML, "--key", filepath.Join(g.keysDir, "owner"),
		"--out", filepath.Join(g.policyDir, "app.layout"))
	g.writeExpiredLayout(t, layoutYAML, filepath.Join(g.policyDir, "old.layout"))
	for _, k := range []string{"owner.pub", "ci.pub"} {
		copyFile(t, filepath.Join(g.keysDir, k), filepath.Join(g.policyDir, k))
	}
	writeFile(t, filepath.Join(g.policyDir, "node.yaml"), fmt.Sprintf(`apiVersion: tollgate.dev/v1alpha1
kind: NodeDefaults
metadata:
  name: node
spec:
  unmatched: deny
  exemptions:
    repositories: ["%s/e2e/pause"]
`, g.host))
	writeFile(t, filepath.Join(g.policyDir, "app.yaml"), fmt.Sprintf(`apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: app
spec:
  images: ["%[1]s/e2e/app"]
  mode: enforce
  layouts:
    - layout: app.layout
      keys: [owner.pub]
  attestations:
    - name: provenance
      predicateType: slsa-v1
      keys: [ci.pub]
      conditions:
        - provenance.builderId == "%[2]s"
---
apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: old
spec:
  images: ["%[1]s/e2e/old"]
  layouts:
    - layout: old.layout
      keys: [owner.pub]
---
apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: audited
spec:
  images: ["%[1]s/e2e/audited"]
  mode: audit
  attestations:
    - name: provenance
      predicateType: slsa-v1
      keys: [ci.pub]
`, g.host, builderID))
	return g
}

// writeExpiredLayout signs a copy of the layout that expired a day ago. `tollgate layout
// create` refuses to write one, so this goes through its packages directly.
func (g *gate) writeExpiredLayout(t *testing.T, specPath, out string) {
	t.Helper()
	spec, err := layoutspec.Parse(readFile(t, specPath))
	if err != nil {
		t.Fatal(err)
	}
	env, err := layoutspec.Build(spec, map[string][]byte{"builder.pub": readFile(t, filepath.Join(g.keysDir, "builder.pub"))},
		time.Now().Add(-8761*time.Hour), false)
	if err != nil {
		t.Fatal(err)
	}
	owner, err := keys.ParsePrivate(readFile(t, filepath.Join(g.keysDir, "owner")), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Sign(owner); err != nil {
		t.Fatal(err)
	}
	raw, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, out, string(raw))
}

// tollgate runs the CLI and fails the test if it fails.
func (g *gate) tollgate(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(g.cli, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("tollgate %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// evidence says how to make an image's evidence.
type evidence struct {
	linkKey   string // who signs the build link (default builder); "" with noLink
	noLink    bool
	tamper    bool // alter the link after signing
	builderID string
}

// makeEvidence records the build link and the SLSA provenance for img, with the CLI, into
// a fresh directory: <dir>/links/*.link and <dir>/provenance.json.
func (g *gate) makeEvidence(t *testing.T, img *testimage.Pushed, ev evidence) string {
	t.Helper()
	dir := filepath.Join(g.workDir, fmt.Sprintf("ev-%d", g.counter.Add(1)))
	links := filepath.Join(dir, "links")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if ev.linkKey == "" {
		ev.linkKey = "builder"
	}
	if ev.builderID == "" {
		ev.builderID = builderID
	}
	if !ev.noLink {
		g.tollgate(t, "run", "--step-name", "build", "--key", filepath.Join(g.keysDir, ev.linkKey),
			"--image-product-digest", "image="+img.Digest, "--no-command", "--out-dir", links)
	}
	if ev.tamper {
		tamperLinks(t, links)
	}
	g.tollgate(t, "attest", "--image", img.DigestRef(), "--predicate-type", "slsa-v1",
		"--key", filepath.Join(g.keysDir, "ci"), "--builder-id", ev.builderID,
		"--source-uri", "git+https://git.e2e.tollgate.dev/app@refs/heads/main",
		"--out", filepath.Join(dir, "provenance.json"))
	return dir
}

// attach pushes evidence made by makeEvidence next to img in the registry.
func (g *gate) attach(t *testing.T, img *testimage.Pushed, dir string) {
	t.Helper()
	args := []string{"attach", "--image", img.DigestRef(), "--attestation", filepath.Join(dir, "provenance.json"),
		"--insecure-registry", g.host}
	if ents, _ := os.ReadDir(filepath.Join(dir, "links")); len(ents) > 0 {
		args = append(args, "--link-dir", filepath.Join(dir, "links"))
	}
	g.tollgate(t, args...)
}

// tamperLinks changes what each link says after it was signed: its byproducts.
func tamperLinks(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) == 0 {
		t.Fatalf("no link to tamper with in %s: %v", dir, err)
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		var mb map[string]json.RawMessage
		if err := json.Unmarshal(readFile(t, p), &mb); err != nil {
			t.Fatal(err)
		}
		var signed map[string]any
		if err := json.Unmarshal(mb["signed"], &signed); err != nil {
			t.Fatalf("%s is not a Metablock link: %v", p, err)
		}
		signed["byproducts"] = map[string]any{"stdout": "not what was signed", "return-value": 0}
		mb["signed"], _ = json.Marshal(signed)
		raw, _ := json.Marshal(mb)
		writeFile(t, p, string(raw))
	}
}

// push builds and pushes a Sleeper image variant as e2e/<repoTag>.
func (g *gate) push(t *testing.T, repoTag, variant string) *testimage.Pushed {
	t.Helper()
	img, err := g.env.PushImage("e2e/"+repoTag, testimage.Spec{Program: testimage.Sleeper, Variant: variant})
	if err != nil {
		t.Fatalf("push %s: %v", repoTag, err)
	}
	return img
}

// pushSigned pushes an image and attaches valid evidence for it.
func (g *gate) pushSigned(t *testing.T, repoTag, variant string) *testimage.Pushed {
	t.Helper()
	img := g.push(t, repoTag, variant)
	g.attach(t, img, g.makeEvidence(t, img, evidence{}))
	return img
}

// start runs tollgated as the environment's NRI plugin and waits until it is ready.
func (g *gate) start(t *testing.T) {
	t.Helper()
	args := []string{
		"--nri-socket", g.env.NRISocket,
		"--containerd-socket", g.env.Socket,
		"--containerd-namespace", CRINamespace,
		"--policy-dir", g.policyDir,
		"--evidence-dir", g.evidenceDir,
		"--cache-dir", g.cacheDir,
		"--audit-log", g.auditLog,
		"--listen", g.listen,
		"--node-name", "e2e-node",
		"--insecure-registry", g.host,
		"--log-level", "debug",
	}
	p, err := g.env.StartNRIPlugin("tollgated", g.daemonBin, append(args, g.extraArgs...)...)
	if err != nil {
		t.Fatalf("start tollgated: %v", err)
	}
	g.proc = p
	g.waitReady(t, 15*time.Second)
}

// stop stops tollgated with SIGTERM and checks that it exits cleanly.
func (g *gate) stop(t *testing.T) {
	t.Helper()
	if g.proc == nil {
		return
	}
	err := g.proc.Stop(10 * time.Second)
	g.proc = nil
	if err != nil {
		t.Errorf("tollgated did not exit cleanly on SIGTERM: %v", err)
	}
}

// kill kills tollgated with SIGKILL, as a crash would.
func (g *gate) kill(t *testing.T) {
	t.Helper()
	if g.proc != nil {
		_ = g.proc.Kill()
		g.proc = nil
	}
}
