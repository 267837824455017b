//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"tollgate.dev/tollgate/daemon/policytest"
	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/test/tools/testimage"
)

// TestBenchMemory measures the resident memory of the real tollgated (issue 12, item 8;
// DESIGN §7: at most 40 MiB with 1,000 images on the node and 10,000 decisions). It is a
// benchmark: it fails only when something does not work, and prints a table of the
// process's memory at each phase:
//
//   - containerd holds TOLLGATE_BENCH_MEMORY_IMAGES images (default 1,000): a few real
//     images pulled through CRI, the rest written into its content and image stores
//     (ImportImages). Every second image is signed (a Statement in the node evidence
//     directory); the others have none, so their pre-verification asks the registry too;
//   - tollgated starts against it, as test/e2e starts it, and pre-verifies every image;
//   - TOLLGATE_BENCH_MEMORY_DECISIONS decisions (default 10,000) are CRI CreateContainer
//     calls of the real images through NRI, each container removed after its create;
//   - the policy directory is changed several times in a row (a reload storm): each
//     reload pre-verifies every image on the node again.
//
// Memory is read from /proc (VmRSS, VmHWM, anonymous and file-backed RSS) and from
// tollgated's /metrics (the Go runtime's figures); containerd, measured in the same run,
// is the peer. TOLLGATE_BENCH_MEMORY_PROFILE=DIR keeps a heap profile of tollgated, taken
// at the end (SIGUSR1), in DIR, for `go tool pprof`.
func TestBenchMemory(t *testing.T) {
	if os.Getenv("TOLLGATE_BENCH_E2E") != "1" {
		t.Skip("a benchmark: set TOLLGATE_BENCH_E2E=1 (make bench-e2e)")
	}
	m := &memBench{
		images:    envInt(t, "TOLLGATE_BENCH_MEMORY_IMAGES", 1000),
		decisions: envInt(t, "TOLLGATE_BENCH_MEMORY_DECISIONS", 10000),
		reloads:   5,
		real:      8,
		daemon:    BuildBinary(t, "./cmd/tollgated"),
	}
	m.setup(t)
	m.sample(t, "containerd with the images, before tollgated")
	m.startTollgated(t)
	m.sample(t, "tollgated registered (pre-verification running)")
	m.waitPreverified(t, m.images)
	m.sample(t, fmt.Sprintf("%d images pre-verified", m.images))
	m.decide(t)
	m.reloadStorm(t)
	time.Sleep(5 * time.Second)
	m.sample(t, "idle 5 s later")
	if dir := os.Getenv("TOLLGATE_BENCH_MEMORY_PROFILE"); dir != "" {
		m.heapProfile(t, dir)
	}
	t.Logf("memory of the real tollgated, %d images on the node, %d CRI creates; %s\n%s",
		m.images, m.decisions, benchMachine(), m.table())
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		t.Fatalf("%s=%q: want a positive number", name, s)
	}
	return v
}

// memBench is the scenario's state and its samples.
type memBench struct {
	images, decisions, reloads, real int
	daemon                           string

	env      *Env
	ci       *keys.Signer
	policy   string // the policy file, rewritten for reloads
	evidence string
	listen   string
	tg       *Process
	refs     []string // the real images, which containers are created from
	pod      *Pod
	cri      *benchCRI
	mu       sync.Mutex // the create workers sample concurrently
	rows     []memRow
}

// memRow is one sample: tollgated's and containerd's memory, and tollgated's own figures.
type memRow struct {
	phase     string
	tg, ctrd  MemSample
	metrics   map[string]float64
	tgRunning bool
}

func (m *memBench) setup(t *testing.T) {
	t.Helper()
	m.env = Start(t, WithRequiredPlugin())
	var err error
	if m.ci, err = keys.Generate("ecdsa", 0); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(m.env.Dir, "bench")
	polDir := filepath.Join(root, "policy")
	m.evidence = filepath.Join(root, "evidence")
	pub, err := m.ci.MarshalPublic()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(polDir, "keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(polDir, "keys", "ci.pub"), string(pub))
	m.policy = filepath.Join(polDir, "bench.yaml")
	m.writePolicy(t, 0)
	for i := range m.real {
		img, err := m.env.PushImage(fmt.Sprintf("bench/real-%d:1", i), testimage.Spec{Program: testimage.Sleeper, Variant: fmt.Sprintf("mem-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		m.sign(t, img.Repository, img.ManifestDigest)
		m.env.MustPull(t, img.Ref)
		m.refs = append(m.refs, img.Ref)
	}
	names := make([]string, m.images-m.real)
	for i := range names {
		names[i] = m.env.Registry.Ref(fmt.Sprintf("bench/many-%d:1", i))
	}
	start := time.Now()
	imported, err := m.env.ImportImages(context.Background(), names)
	if err != nil {
		t.Fatal(err)
	}
	for i, img := range imported {
		if i%2 == 0 {
			m.sign(t, strings.TrimSuffix(img.Name, ":1"), img.ManifestDigest)
		}
	}
	t.Logf("%d images imported into containerd and half of them signed in %s", len(imported), time.Since(start).Round(time.Millisecond))
}

// sign puts a Statement about repo@digest, signed by the CI key, into the node evidence
// directory.
func (m *memBench) sign(t *testing.T, repo, digest string) {
	t.Helper()
	dir := filepath.Join(m.evidence, "sha256", strings.TrimPrefix(digest, "sha256:"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "statement.json"), string(policytest.SignedStatement(t, m.ci, repo, digest)))
}

// writePolicy writes the bench policy; gen differs on each reload, so the file changes.
func (m *memBench) writePolicy(t *testing.T, gen int) {
	t.Helper()
	writeFile(t, m.policy, fmt.Sprintf(`# reload %[3]d
apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: bench
spec:
  images: ["%[1]s/bench/*"]
  attestations:
    - name: provenance
      predicateType: %[2]s
      keys: [keys/ci.pub]
---
apiVersion: tollgate.dev/v1alpha1
kind: NodeDefaults
metadata:
  name: node
spec:
  exemptions:
    repositories: ["%[1]s/e2e/pause"]
`, m.env.Registry.Host, policytest.Predicate, gen))
}

func (m *memBench) startTollgated(t *testing.T) {
	t.Helper()
	root := filepath.Join(m.env.Dir, "bench")
	m.listen = benchFreeAddr(t)
	args := []string{
		"--nri-socket", m.env.NRISocket, "--containerd-socket", m.env.Socket, "--containerd-namespace", CRINamespace,
		"--policy-dir", filepath.Join(root, "policy"), "--evidence-dir", m.evidence, "--cache-dir", filepath.Join(root, "cache"),
		"--audit-log", filepath.Join(root, "audit.jsonl"), "--listen", m.listen, "--node-name", "bench-memory",
		"--insecure-registry", m.env.Registry.Host,
	}
	var err error
	if m.tg, err = m.env.StartNRIPlugin("tollgated", m.daemon, args...); err != nil {
		t.Fatal(err)
	}
	benchWaitReady(t, m.listen)
	m.pod = m.env.RunPod(t, "memory")
	if m.cri, err = dialBenchCRI(m.env.Socket); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.cri.Close() })
}

// preverified is how many pre-verifications (and re-checks) tollgated has finished.
func (m *memBench) preverified(t *testing.T) float64 {
	mt, err := ScrapeMetrics("http://" + m.listen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return mt[`tollgate_decision_duration_seconds_count{path="preverify"}`]
}

// waitPreverified waits until n more pre-verifications have finished than at the start,
// and then until the count stops moving.
func (m *memBench) waitPreverified(t *testing.T, n int) {
	t.Helper()
	start := time.Now()
	benchWait(t, 10*time.Minute, fmt.Sprintf("%d pre-verifications", n), func() bool {
		return m.preverified(t) >= float64(n)
	})
	last := m.preverified(t)
	for {
		time.Sleep(time.Second)
		now := m.preverified(t)
		if now == last {
			break
		}
		last = now
	}
	t.Logf("%.0f pre-verifications and re-checks done, %s after this wait began", last, time.Since(start).Round(time.Millisecond))
}

// decide runs m.decisions CRI creates of the real images, two at a time, each container
// removed after its create, and samples memory every fifth of the way.
func (m *memBench) decide(t *testing.T) {
	t.Helper()
	const workers = 2
	var next atomic.Int64
	var failed atomic.Int64
	step := int64(max(m.decisions/5, 1))
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			ctx := context.Background()
			for {
				i := next.Add(1) - 1
				if i >= int64(m.decisions) {
					return
				}
				if err := m.create(ctx, i); err != nil {
					if failed.Add(1) <= 3 {
						t.Errorf("worker %d: create %d: %v", w, i, err)
					}
				}
				if (i+1)%step == 0 {
					m.sample(t, fmt.Sprintf("%d creates", i+1))
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	t.Logf("%d CRI creates (and removes) in %s: %.0f creates/s; %d failed", m.decisions, took.Round(time.Millisecond),
		float64(m.decisions)/took.Seconds(), failed.Load())
}

func (m *memBench) create(ctx context.Context, i int64) error {
	req, err := createRequest(m.pod, fmt.Sprintf("c%d", i), m.refs[i%int64(len(m.refs))], "1h")
	if err != nil {
		return err
	}
	id, _, err := m.cri.CreateContainer(ctx, req)
	if err != nil {
		return fmt.Errorf("%s", grpcMessage(err))
	}
	return m.cri.RemoveContainer(ctx, id)
}

// reloadStorm changes the policy directory m.reloads times, one second apart, and waits
// for the re-checks of every image that each reload starts.
func (m *memBench) reloadStorm(t *testing.T) {
	t.Helper()
	before := m.preverified(t)
	for r := 1; r <= m.reloads; r++ {
		m.writePolicy(t, r)
		time.Sleep(time.Second)
		m.sample(t, fmt.Sprintf("reload %d of %d", r, m.reloads))
	}
	benchWait(t, 10*time.Minute, "the re-checks after the reloads", func() bool {
		return m.preverified(t) >= before+float64(m.images)
	})
	m.waitPreverified(t, 0)
	m.sample(t, fmt.Sprintf("after %d reloads and their re-checks", m.reloads))
}

// sample records tollgated's and containerd's memory now.
func (m *memBench) sample(t *testing.T, phase string) {
	row := memRow{phase: phase}
	var err error
	if m.env.ctrd != nil {
		if row.ctrd, err = ReadMem(m.env.ctrd.Process.Pid); err != nil {
			t.Errorf("containerd memory: %v", err)
		}
	}
	if m.tg != nil {
		row.tgRunning = true
		if row.tg, err = ReadMem(m.tg.Cmd.Process.Pid); err != nil {
			t.Errorf("tollgated memory: %v", err)
		}
		if row.metrics, err = ScrapeMetrics("http://" + m.listen + "/metrics"); err != nil {
			t.Errorf("tollgated metrics: %v", err)
		}
	}
	m.mu.Lock()
	m.rows = append(m.rows, row)
	m.mu.Unlock()
}

// table formats the samples: tollgated's RSS (peak, anonymous and file-backed parts), the
// Go heap in use and the runtime's total, goroutines, decisions, and containerd's RSS.
func (m *memBench) table() string {
	var sb strings.Builder
	row := "%-50s %7s %7s %7s %7s %8s %7s %6s %10s %8s %8s\n"
	fmt.Fprintf(&sb, row, "phase", "RSS", "peak", "anon", "file", "heap-use", "go-sys", "gorout", "decisions", "ctrd-RSS", "tg/ctrd")
	for _, r := range m.rows {
		if !r.tgRunning {
			fmt.Fprintf(&sb, row, r.phase, "—", "—", "—", "—", "—", "—", "—", "—", MiB(float64(r.ctrd.RSS)), "—")
			continue
		}
		mt := r.metrics
		fmt.Fprintf(&sb, row, r.phase, MiB(float64(r.tg.RSS)), MiB(float64(r.tg.HWM)), MiB(float64(r.tg.Anon)),
			MiB(float64(r.tg.File)), MiB(mt["go_memstats_heap_inuse_bytes"]), MiB(mt["go_memstats_sys_bytes"]),
			fmt.Sprint(mt["go_goroutines"]), fmt.Sprint(SumMetric(mt, "tollgate_decisions_total")),
			MiB(float64(r.ctrd.RSS)), fmt.Sprintf("%.2f", float64(r.tg.RSS)/float64(r.ctrd.RSS)))
	}
	// The kernel updates VmHWM lazily (when pages are unmapped), so a sample's VmRSS can
	// exceed a later VmHWM: the peak is the largest of both over all samples.
	var peak int64
	for _, r := range m.rows {
		peak = max(peak, r.tg.RSS, r.tg.HWM)
	}
	verdict := "met"
	if peak > 40<<20 {
		verdict = "MISSED"
	}
	fmt.Fprintf(&sb, "MiB. DESIGN §7 target, tollgated RSS ≤ 40 MiB with 1,000 images and 10,000 decisions (this run: %d and %d): peak %s MiB: %s\n",
		m.images, m.decisions, MiB(float64(peak)), verdict)
	sb.WriteString("RSS/peak: VmRSS/VmHWM; anon/file: RssAnon/RssFile (/proc/PID/status); heap-use, go-sys: go_memstats_heap_inuse_bytes, go_memstats_sys_bytes; decisions: tollgate_decisions_total.")
	return sb.String()
}

// heapProfile asks tollgated for a heap profile (SIGUSR1) and copies it into dir.
func (m *memBench) heapProfile(t *testing.T, dir string) {
	t.Helper()
	cache := filepath.Join(m.env.Dir, "bench", "cache")
	if err := m.tg.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	var found []string
	benchWait(t, 30*time.Second, "tollgated's heap profile", func() bool {
		found, _ = filepath.Glob(filepath.Join(cache, "tollgated-heap-*.pb.gz"))
		return len(found) > 0
	})
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(dir, filepath.Base(found[0]))
	copyFile(t, found[0], to)
	t.Logf("heap profile: go tool pprof -sample_index=inuse_space %s %s", m.daemon, to)
}
