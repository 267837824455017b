//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/test/tools/testimage"
)

// TestBenchCreate measures CRI CreateContainer latency (DESIGN §7: with Tollgate, warm, at
// most 1 ms more than without it, median over 200 creates). It is a benchmark, not a test
// of speed: it fails only when something does not work, and prints its numbers. It runs
// only with TOLLGATE_BENCH_E2E=1 (make bench-e2e); TOLLGATE_BENCH_CREATES sets the number
// of measured creates per variant (default 200).
//
// Four containerds run side by side, each with its own registry and one pod:
//
//	plain   no NRI plugin, no validator: containerd as it runs without Tollgate
//	nri     required_plugins + the e2e stand-in plugin answering "allow": the NRI
//	        round-trip alone, no decision
//	warm    required_plugins + tollgated; the image's verdict is in the decision cache
//	cold    required_plugins + tollgated --allow-ttl 0: no allow verdict is kept, so every
//	        create is decided from the node evidence directory (read, verify the layout,
//	        link and SLSA provenance signatures, CEL), as the first create of an image is
//
// The creates are interleaved (one per variant in turn, the first of each round rotating),
// so a noisy neighbour hits every variant alike, and each container is removed (untimed) before the next round. Timing is
// of the CreateContainer RPC alone, through a direct gRPC client (benchCRI).
func TestBenchCreate(t *testing.T) {
	if os.Getenv("TOLLGATE_BENCH_E2E") != "1" {
		t.Skip("a benchmark: set TOLLGATE_BENCH_E2E=1 (make bench-e2e)")
	}
	n := envInt(t, "TOLLGATE_BENCH_CREATES", 200)
	const warmup = 10

	b := &benchSetup{cli: BuildCLI(t), daemon: BuildBinary(t, "./cmd/tollgated"), work: t.TempDir()}
	b.makeKeys(t)
	variants := []*benchVariant{
		{name: "plain", what: "containerd, no NRI plugin (without Tollgate)"},
		{name: "nri", what: "NRI round-trip only (stand-in plugin, allow)", required: true},
		{name: "warm", what: "Tollgate, cached verdict (warm)", required: true, tollgate: true},
		{name: "cold", what: "Tollgate, decided from node evidence (cold)", required: true, tollgate: true, coldFlags: true},
	}
	fake := BuildBinary(t, "./test/e2e/fakeplugin")
	for _, v := range variants {
		b.prepare(t, v, fake)
	}

	ctx := context.Background()
	for i := -warmup; i < n; i++ {
		// Each round starts with another variant, so none always follows the same one.
		for k := range variants {
			v := variants[(i+warmup+k)%len(variants)]
			req, err := createRequest(v.pod, fmt.Sprintf("c%d", i+warmup), v.image.Ref, "1h")
			if err != nil {
				t.Fatal(err)
			}
			id, took, err := v.cri.CreateContainer(ctx, req)
			if err != nil {
				t.Fatalf("%s: create %d: %v", v.name, i+warmup, err)
			}
			if i >= 0 {
				v.lat = append(v.lat, took)
			}
			if err := v.cri.RemoveContainer(ctx, id); err != nil {
				t.Fatalf("%s: remove: %v", v.name, err)
			}
		}
	}
	for _, v := range variants {
		if v.tollgate {
			v.readAudit(t, warmup, n)
		}
	}
	if w, c := variants[2], variants[3]; w.cached != w.decisions || c.cached != 0 {
		t.Errorf("the variants did not measure what they claim: warm %d of %d hook decisions cached (want all), cold %d cached (want none)",
			w.cached, w.decisions, c.cached)
	}
	t.Logf("CRI CreateContainer latency, %d creates per variant after %d warm-up creates, interleaved; %s\n%s",
		n, warmup, benchMachine(), benchTable(variants))
}

// benchSetup holds what the variants share: the binaries and the signing keys.
type benchSetup struct {
	cli, daemon, work string
}

// benchVariant is one containerd configuration and its measurements.
type benchVariant struct {
	name, what                    string
	required, tollgate, coldFlags bool

	env   *Env
	pod   *Pod
	image *testimage.Pushed
	cri   *benchCRI
	audit string
	lat   []time.Duration

	decisions, cached int       // hook records in the audit log
	decideMS          []float64 // their latency_ms
}

func (b *benchSetup) tollgate(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(b.cli, args...)
	cmd.Dir = b.work
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tollgate %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// makeKeys creates the keys and the signed layout: the same supply chain as the demo
// (an RSA-3072 layout owner, an ed25519 build functionary, an ECDSA provenance signer).
func (b *benchSetup) makeKeys(t *testing.T) {
	t.Helper()
	b.tollgate(t, "keygen", "owner", "--type", "rsa", "--bits", "3072")
	b.tollgate(t, "keygen", "builder", "--type", "ed25519")
	b.tollgate(t, "keygen", "ci", "--type", "ecdsa")
	spec := `expires: 720h
steps:
  - name: build
    functionaries: [builder.pub]
    materials: [DISALLOW *]
    products: [CREATE image, DISALLOW *]
inspections:
  - image: {from: build}
`
	if err := os.WriteFile(filepath.Join(b.work, "layout.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	b.tollgate(t, "layout", "create", "--from", "layout.yaml", "--key", "owner", "--out", "app.layout")
}

// prepare starts v's containerd (and plugin), pushes and pulls its image, runs its pod and
// checks that a create is allowed.
func (b *benchSetup) prepare(t *testing.T, v *benchVariant, fake string) {
	t.Helper()
	var opts []Option
	if v.required {
		opts = append(opts, WithRequiredPlugin())
	}
	v.env = Start(t, opts...)
	img, err := v.env.PushImage("bench/app:1", testimage.Spec{Program: testimage.Sleeper, Variant: "bench"})
	if err != nil {
		t.Fatal(err)
	}
	v.image = img
	switch {
	case v.tollgate:
		b.startTollgated(t, v)
	case v.required:
		if _, err := v.env.StartNRIPlugin("fake-allow", fake, "--nri-socket", v.env.NRISocket, "--mode", "allow"); err != nil {
			t.Fatal(err)
		}
	}
	v.env.MustPull(t, img.Ref)
	if v.tollgate && !v.coldFlags {
		// The pull's pre-verification puts the verdict into the cache.
		benchWait(t, 30*time.Second, "pre-verification of "+img.Ref, func() bool {
			return strings.Contains(readAll(v.audit), `"path":"preverify"`)
		})
	}
	v.pod = v.env.RunPod(t, "bench")
	if _, err := v.env.CreateContainer(v.pod, "check", img.Ref, WithArgs("1h")); err != nil {
		t.Fatalf("%s: a create with valid evidence failed: %v", v.name, err)
	}
	if v.cri, err = dialBenchCRI(v.env.Socket); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.cri.Close() })
}

// startTollgated writes v's policy and node evidence and starts tollgated.
func (b *benchSetup) startTollgated(t *testing.T, v *benchVariant) {
	t.Helper()
	root := filepath.Join(v.env.Dir, "bench")
	policy, evidence, cache := filepath.Join(root, "policy"), filepath.Join(root, "evidence"), filepath.Join(root, "cache")
	hex := strings.TrimPrefix(v.image.Digest, "sha256:")
	evDir := filepath.Join(evidence, "sha256", hex)
	for _, d := range []string{policy, evDir, cache} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The evidence: the build link and SLSA provenance, in the node evidence directory.
	b.tollgate(t, "run", "--step-name", "build", "--key", "builder", "--image-product-digest", "image="+v.image.Digest,
		"--no-command", "--out-dir", evDir)
	b.tollgate(t, "attest", "--image", v.image.DigestRef(), "--predicate-type", "slsa-v1", "--key", "ci",
		"--builder-id", "https://bench.tollgate.dev/builder", "--source-uri", "git+https://bench.tollgate.dev/app@refs/heads/main",
		"--out", filepath.Join(evDir, "provenance.json"))
	for _, f := range []string{"app.layout", "owner.pub", "ci.pub"} {
		data, err := os.ReadFile(filepath.Join(b.work, f))
		if err == nil {
			err = os.WriteFile(filepath.Join(policy, f), data, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	pol := fmt.Sprintf(`apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: bench
spec:
  images: ["%[1]s/bench/app"]
  layouts:
    - layout: app.layout
      keys: [owner.pub]
  attestations:
    - name: provenance
      predicateType: slsa-v1
      keys: [ci.pub]
      conditions:
        - provenance.builderId == "https://bench.tollgate.dev/builder"
---
apiVersion: tollgate.dev/v1alpha1
kind: NodeDefaults
metadata:
  name: node
spec:
  exemptions:
    repositories: ["%[1]s/e2e/pause"]
`, v.env.Registry.Host)
	if err := os.WriteFile(filepath.Join(policy, "bench.yaml"), []byte(pol), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := benchFreeAddr(t)
	v.audit = filepath.Join(root, "audit.jsonl")
	args := []string{
		"--nri-socket", v.env.NRISocket, "--containerd-socket", v.env.Socket, "--containerd-namespace", CRINamespace,
		"--policy-dir", policy, "--evidence-dir", evidence, "--cache-dir", cache, "--audit-log", v.audit,
		"--listen", listen, "--node-name", "bench-" + v.name, "--insecure-registry", v.env.Registry.Host,
	}
	if v.coldFlags {
		args = append(args, "--allow-ttl", "0s")
	}
	if _, err := v.env.StartNRIPlugin("tollgated", b.daemon, args...); err != nil {
		t.Fatal(err)
	}
	benchWaitReady(t, listen)
}

// benchWaitReady waits until tollgated's /readyz at listen answers 200.
func benchWaitReady(t *testing.T, listen string) {
	t.Helper()
	benchWait(t, 15*time.Second, "tollgated /readyz", func() bool {
		c := http.Client{Timeout: time.Second}
		resp, err := c.Get("http://" + listen + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// readAudit counts the hook decisions of the measured creates, which follow the warm-up
// ones (the audit writer is asynchronous: wait for them all), and keeps their latencies.
func (v *benchVariant) readAudit(t *testing.T, warmup, n int) {
	t.Helper()
	type rec struct {
		Path      string  `json:"path"`
		Container string  `json:"container"`
		Allowed   bool    `json:"allowed"`
		Cached    bool    `json:"cached"`
		LatencyMS float64 `json:"latency_ms"`
	}
	var recs []rec
	benchWait(t, 10*time.Second, v.name+" audit records", func() bool {
		recs = recs[:0]
		sc := bufio.NewScanner(strings.NewReader(readAll(v.audit)))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var r rec
			// "check" is prepare's functional create; the c<i> containers are measured.
			if json.Unmarshal(sc.Bytes(), &r) == nil && r.Path == "hook" && r.Container != "check" {
				recs = append(recs, r)
			}
		}
		return len(recs) >= warmup+n
	})
	for _, r := range recs[warmup : warmup+n] {
		if !r.Allowed {
			t.Errorf("%s: a measured create was denied", v.name)
		}
		v.decisions++
		if r.Cached {
			v.cached++
		}
		v.decideMS = append(v.decideMS, r.LatencyMS)
	}
}

func benchWait(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not there after %s", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readAll(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func benchFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// pairedMedian is the median of a[i]-b[i]: creates i of two variants ran in the same
// round, so their difference cancels most of the load the machine had at that moment.
func pairedMedian(a, b []time.Duration) time.Duration {
	d := make([]time.Duration, min(len(a), len(b)))
	for i := range d {
		d[i] = a[i] - b[i]
	}
	return Quantile(Sorted(d), 0.5)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func deltaMS(d time.Duration) string {
	return fmt.Sprintf("%+.2f ms", float64(d)/float64(time.Millisecond))
}

// benchTable formats the variants' latencies with their differences to the first (plain).
func benchTable(vs []*benchVariant) string {
	var sb strings.Builder
	row := "%-46s %9s %9s %9s %22s %20s %14s %10s\n"
	fmt.Fprintf(&sb, row, "variant", "median", "p90", "p99", "median vs plain", "p99 vs plain", "paired Δ", "decide")
	plain := Sorted(vs[0].lat)
	for i, v := range vs {
		s := Sorted(v.lat)
		med, p90, p99 := Quantile(s, 0.5), Quantile(s, 0.9), Quantile(s, 0.99)
		dMed, dP99, paired, decide := "—", "—", "—", "—"
		if i > 0 {
			base, baseP99 := Quantile(plain, 0.5), Quantile(plain, 0.99)
			dMed = fmt.Sprintf("%s (%.2fx)", deltaMS(med-base), float64(med)/float64(base))
			dP99 = fmt.Sprintf("%s (%.2fx)", deltaMS(p99-baseP99), float64(p99)/float64(baseP99))
			paired = deltaMS(pairedMedian(v.lat, vs[0].lat))
		}
		if len(v.decideMS) > 0 {
			d := append([]float64(nil), v.decideMS...)
			sort.Float64s(d)
			decide = fmt.Sprintf("%.3f ms", d[len(d)/2])
		}
		fmt.Fprintf(&sb, row, v.what, ms(med), ms(p90), ms(p99), dMed, dP99, paired, decide)
	}
	nri, warm, cold := vs[1], vs[2], vs[3]
	delta := Quantile(Sorted(warm.lat), 0.5) - Quantile(plain, 0.5)
	verdict := "ok"
	if delta > time.Millisecond {
		verdict = "MISSED"
	}
	fmt.Fprintf(&sb, "DESIGN §7 target, warm create ≤ +1 ms median vs without Tollgate: %s (paired %s): %s\n",
		deltaMS(delta), deltaMS(pairedMedian(warm.lat, vs[0].lat)), verdict)
	fmt.Fprintf(&sb, "Tollgate beyond a no-op NRI plugin (paired median): warm %s, cold %s\n",
		deltaMS(pairedMedian(warm.lat, nri.lat)), deltaMS(pairedMedian(cold.lat, nri.lat)))
	sb.WriteString("paired Δ: median over rounds of (this variant's create − plain's create in the same round).\n")
	sb.WriteString(`decide: median latency_ms of the hook decisions in tollgated's audit log.`)
	return sb.String()
}

// benchMachine describes the machine the numbers come from.
func benchMachine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				if _, v, ok := strings.Cut(l, ":"); ok {
					cpu = strings.TrimSpace(v)
				}
				break
			}
		}
	}
	load := "?"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return fmt.Sprintf("%s, %d CPUs, load average %s, %s", cpu, runtime.NumCPU(), load, time.Now().UTC().Format(time.RFC3339))
}
