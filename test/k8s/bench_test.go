//go:build k8s

package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"tollgate.dev/tollgate/test/e2e"
	"tollgate.dev/tollgate/test/tools/testimage"
)

// TestBenchPodStart measures a signed pod's start time on the real node with and without
// Tollgate (issue 16's Kubernetes target: at most 1 s above the same pod with no plugin).
// A benchmark, not a speed test: it fails only when something does not work (a pod that does
// not start, a refused first create); the 1 s bound is reported as a target, met or missed.
// TOLLGATE_BENCH_K8S=1 runs it (make bench-k8s); TOLLGATE_BENCH_K8S_TRIES sets the tries per
// side (default 5).
//
// One node serves both sides, so the kubelet, containerd, registry and images are the same:
//
//	plain     the node before Tollgate: containerd with NRI on and no plugin required or
//	          connected (the shipped drop-in not yet in place), so no NRI validation happens
//	tollgate  the same node after the operator's steps: the drop-in in place (containerd
//	          restarted), the DaemonSet installed with the app's policy, enforcing
//
// Every try pulls an image the node has never had: its own tag and config (so its own
// manifest and config digests, and its own evidence; the sleeper layer is shared, so the
// pull fetches two small blobs), signed by the suite's CI key the same way on both sides.
// Tollgate's pre-verification starts with the pull and the first create waits for it.
//
// The figure is podStartE2EDuration as the kubelet defines it (its pod startup SLI): from
// the pod's creation to its Running status, every container started, seen on a watch of the
// API server. The benchmark measures it itself: a `kubectl get --watch` starts before
// `kubectl apply`, and the figure runs from just before the apply (this process's clock)
// to the watch event that first shows every container running. It is not read from the
// kubelet: the kubelet logs its "Observed pod startup duration" (and observes
// kubelet_pod_start_duration_seconds) only when a watch event reaches it after its own
// status write, and takes that event's time as the end; on this quiet one-pod node that
// event is often the next change to the pod (here its deletion), or none. Its start is
// creationTimestamp, whole seconds. Both sides carry the same kubectl start-up and the
// kubelet's 1 s relist (generic PLEG); a random pause before each try spreads the tries
// over the relist's phase.
func TestBenchPodStart(t *testing.T) {
	if os.Getenv("TOLLGATE_BENCH_K8S") != "1" {
		t.Skip("a benchmark: set TOLLGATE_BENCH_K8S=1 (make bench-k8s)")
	}
	tries := 5
	if v := os.Getenv("TOLLGATE_BENCH_K8S_TRIES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("TOLLGATE_BENCH_K8S_TRIES=%q: want a positive number", v)
		}
		tries = n
	}
	n := startNodeWith(t, false)
	s := newSuite(t, n)

	plain := s.podStarts(t, "plain", tries)
	t0 := time.Now()
	if err := n.requireTollgate(); err != nil {
		t.Fatalf("putting the drop-in in place: %v", err)
	}
	n.must(t, "apply", "-k", s.overlay)
	s.rolledOut(t, "daemonset/tollgate")
	t.Logf("k8s bench: Tollgate enabled on the node (drop-in, containerd restart, DaemonSet) in %s",
		time.Since(t0).Round(time.Millisecond))
	tollgate := s.podStarts(t, "tollgate", tries)

	t.Log("k8s bench: signed pod start, fresh image per try, " + strconv.Itoa(tries) + " tries per side\n" +
		startTable(plain, tollgate))
	for _, sts := range [][]podStart{plain, tollgate} {
		if r := refused(sts); r > 0 {
			t.Errorf("k8s bench: %d of %d signed pods were refused at least once (see above); a signed image's first create must not be refused", r, len(sts))
		}
	}
	s.reportDecisions(t, tries)
	// Tollgate was in the path: a fresh unsigned image is refused on the same node.
	s.mustPod(t, shopNS, "bench-unsigned", s.unsigned.Ref)
	t.Logf("k8s bench: enforcing: %s", s.waitBlocked(t, shopNS, "bench-unsigned", denied))
	d := e2e.Quantile(e2e.Sorted(e2eOf(tollgate)), 0.5) - e2e.Quantile(e2e.Sorted(e2eOf(plain)), 0.5)
	verdict := "met"
	if d > time.Second {
		verdict = "MISSED"
	}
	t.Logf("k8s bench: target (issue 16) podStartE2EDuration p50 at most no-plugin + 1 s: %s (%+.3f s)", verdict, d.Seconds())
}

// freshSignedFirstTry (issue 16, one try of TestBenchPodStart's Tollgate side): a signed
// image the node has never pulled starts without one refused create, so without the
// kubelet's back-off.
func (s *suite) freshSignedFirstTry(t *testing.T) {
	st := s.podStarts(t, "fresh", 1)[0]
	if len(st.refusals) > 0 {
		t.Errorf("the first create of a freshly pulled signed image was refused: %q", st.refusals)
	}
}

// reportDecisions reads Tollgate's own account of the tries from its /metrics: every create
// verified (at least tries of them), none answered "evidence pending", and the hook's mean
// time, which holds the wait for each image's pre-verification.
func (s *suite) reportDecisions(t *testing.T, tries int) {
	t.Helper()
	p := s.tollgatePod(t)
	code, body, err := get(p.Status.PodIP, "/metrics")
	if err != nil || code != 200 {
		t.Fatalf("GET %s:9090/metrics: %d %v", p.Status.PodIP, code, err)
	}
	value := func(series string) float64 {
		for _, line := range strings.Split(body, "\n") {
			if rest, ok := strings.CutPrefix(line, series+" "); ok {
				v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
				return v
			}
		}
		return 0
	}
	verified := value(`tollgate_decisions_total{mode="enforce",reason="none",result="verified"}`)
	pending := value(`tollgate_decisions_total{mode="enforce",reason="evidence_pending",result="denied"}`)
	hookSum, hookCount := value(`tollgate_decision_duration_seconds_sum{path="hook"}`), value(`tollgate_decision_duration_seconds_count{path="hook"}`)
	mean := 0.0
	if hookCount > 0 {
		mean = hookSum / hookCount * 1000
	}
	t.Logf("k8s bench: Tollgate's metrics: %v verified, %v evidence pending; hook decisions %v, mean %.1f ms (with the wait for pre-verification)",
		verified, pending, hookCount, mean)
	if verified < float64(tries) {
		t.Errorf("Tollgate verified %v creates; want at least the %d tries", verified, tries)
	}
	if pending > 0 {
		t.Errorf("Tollgate answered %v creates \"evidence pending\"; the hook should have waited for the pre-verification", pending)
	}
}

// podStart is one try: the pod's start time and the events that say its containers were
// refused.
type podStart struct {
	name     string
	e2e      time.Duration // just before kubectl apply to Running seen on a watch
	refusals []string      // the kubelet's Failed (CreateContainerError) and BackOff events
}

// podStarts runs tries pods on side, one after another, each with an image pushed and signed
// for it, and returns their figures. Each pod is deleted before the next starts.
func (s *suite) podStarts(t *testing.T, side string, tries int) []podStart {
	t.Helper()
	var out []podStart
	for i := range tries {
		name := fmt.Sprintf("bench-%s-%d", side, i)
		img, err := s.n.push("k8s/app:"+name, testimage.Spec{Program: testimage.Sleeper, Variant: name})
		if err != nil {
			t.Fatal(err)
		}
		s.sign(t, img.DigestRef(), name)
		// The kubelet notices a started container at its next relist (every second); a random
		// pause before each try keeps the tries from locking onto one phase of it, where a
		// few milliseconds more would cost one side a whole second every time.
		time.Sleep(rand.N(time.Second))
		st := podStart{name: name}
		if st.e2e, err = s.timedStart(shopNS, name, img.Ref); err != nil {
			t.Fatal(err)
		}
		if st.refusals, err = s.refusals(shopNS, name); err != nil {
			t.Fatal(err)
		}
		t.Logf("k8s bench: %s: start %s, refusals %d %q", name, st.e2e.Round(time.Millisecond), len(st.refusals), st.refusals)
		out = append(out, st)
		s.n.must(t, "-n", shopNS, "delete", "pod", name, "--wait=true", "--timeout=60s")
	}
	return out
}

// timedStart applies a pod running image and returns the time from just before the apply to
// the first watch event that shows every container running (at most 120 s).
func (s *suite) timedStart(ns, name, image string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	watch := exec.CommandContext(ctx, s.n.bins.path("kubectl"), "--kubeconfig", s.n.kubeconfig, "-n", ns,
		"get", "pods", "--field-selector", "metadata.name="+name, "--watch", "-o", "json")
	stdout, err := watch.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := watch.Start(); err != nil {
		return 0, err
	}
	defer func() { cancel(); _ = watch.Wait() }()
	start := time.Now()
	if _, err := s.n.kubectlIn([]byte(podManifest(ns, name, image)), "apply", "-f", "-"); err != nil {
		return 0, err
	}
	dec := json.NewDecoder(stdout)
	for {
		var p corev1.Pod
		if err := dec.Decode(&p); err != nil {
			return 0, fmt.Errorf("watching pod %s/%s until it runs: %w", ns, name, err)
		}
		if p.Name == name && running(&p) {
			return time.Since(start), nil
		}
	}
}

// running says whether every container of the pod has started and runs (the kubelet's
// startup SLI condition).
func running(p *corev1.Pod) bool {
	if len(p.Status.ContainerStatuses) < len(p.Spec.Containers) {
		return false
	}
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Running == nil || c.State.Running.StartedAt.IsZero() {
			return false
		}
	}
	return true
}

// refusals lists the events that say the pod's container was refused: the kubelet records a
// failed create (the container waits in CreateContainerError) as a Warning "Failed" and the
// wait before its next try as "BackOff". Other warnings (this node has no cluster DNS) are
// not refusals.
func (s *suite) refusals(ns, name string) ([]string, error) {
	out, err := s.n.kubectl("-n", ns, "get", "events", "--field-selector", "involvedObject.name="+name+",type=Warning", "-o", "json")
	if err != nil {
		return nil, err
	}
	var list corev1.EventList
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, err
	}
	var r []string
	for _, e := range list.Items {
		if e.Reason == "Failed" || e.Reason == "BackOff" {
			r = append(r, e.Reason+": "+e.Message)
		}
	}
	return r, nil
}

// refused counts the pods whose container was refused at least once.
func refused(sts []podStart) int {
	n := 0
	for _, st := range sts {
		if len(st.refusals) > 0 {
			n++
		}
	}
	return n
}

func e2eOf(sts []podStart) []time.Duration {
	d := make([]time.Duration, len(sts))
	for i, st := range sts {
		d[i] = st.e2e
	}
	return d
}

// startTable formats p50 and max of both sides and their differences.
func startTable(plain, tollgate []podStart) string {
	sec := func(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }
	var sb strings.Builder
	row := "%-34s %10s %10s %10s\n"
	fmt.Fprintf(&sb, row, "side", "p50", "max", "refused")
	side := func(what string, sts []podStart) (time.Duration, time.Duration) {
		e := e2e.Sorted(e2eOf(sts))
		fmt.Fprintf(&sb, row, what, sec(e2e.Quantile(e, 0.5)), sec(e2e.Quantile(e, 1)), fmt.Sprintf("%d of %d", refused(sts), len(sts)))
		return e2e.Quantile(e, 0.5), e2e.Quantile(e, 1)
	}
	p50, pmax := side("no plugin (node before Tollgate)", plain)
	t50, tmax := side("Tollgate enforcing", tollgate)
	fmt.Fprintf(&sb, "difference: p50 %+.3f s, max %+.3f s\n", (t50 - p50).Seconds(), (tmax - pmax).Seconds())
	return sb.String()
}
