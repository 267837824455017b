//go:build k8s

package k8s

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// failClosedBeforeTollgate (item 1): with the shipped drop-in and no tollgated, even a
// signed image's container is refused, and the pod's events say why.
func (s *suite) failClosedBeforeTollgate(t *testing.T) {
	s.mustPod(t, shopNS, "early", s.signed.Ref)
	t.Logf("event: %s", s.waitEvent(t, shopNS, "early", notPresent))
	s.waitBlocked(t, shopNS, "early", notPresent)
}

// kustomizeInstall (item 2): the base, through a user's overlay, installs as documented
// with the image `make image` built, and the pod's port answers /readyz, /healthz, /metrics.
func (s *suite) kustomizeInstall(t *testing.T) {
	out := s.n.must(t, "apply", "-k", s.overlay)
	t.Logf("kubectl apply -k:\n%s", out)
	s.rolledOut(t, "daemonset/tollgate")
	p := s.tollgatePod(t)
	if img := p.Spec.Containers[0].Image; img != s.image {
		t.Errorf("the DaemonSet runs %s; `make image` built %s", img, s.image)
	}
	for _, path := range []string{"/readyz", "/healthz", "/metrics"} {
		code, body, err := get(p.Status.PodIP, path)
		if err != nil || code != 200 {
			t.Errorf("GET %s:9090%s: %d %v\n%.300s", p.Status.PodIP, path, code, err, body)
		}
	}
}

// rolledOut waits for `kubectl rollout status` of a workload in Tollgate's namespace.
func (s *suite) rolledOut(t *testing.T, what string) {
	t.Helper()
	if _, err := s.n.kubectl("-n", tgNS, "rollout", "status", what, "--timeout=180s"); err != nil {
		out, _ := s.n.kubectl("-n", tgNS, "describe", "pods")
		t.Fatalf("%v\n%s", err, out)
	}
}

// podsStartOnceReady (item 1): the pod refused before Tollgate ran starts by itself.
func (s *suite) podsStartOnceReady(t *testing.T) {
	s.waitRunning(t, shopNS, "early", 120*time.Second)
}

// signedAndUnsigned (item 3): a signed pod runs, an unsigned one shows CreateContainerError
// with Tollgate's message in its status, events and `kubectl describe`.
func (s *suite) signedAndUnsigned(t *testing.T) {
	s.mustPod(t, shopNS, "signed", s.signed.Ref)
	s.mustPod(t, shopNS, "unsigned", s.unsigned.Ref)
	s.waitRunning(t, shopNS, "signed", 90*time.Second)
	msg := s.waitBlocked(t, shopNS, "unsigned", denied, `policy "app"`)
	t.Logf("unsigned: %s", msg)
	s.waitEvent(t, shopNS, "unsigned", denied, s.unsigned.Repository)
	desc := s.n.must(t, "-n", shopNS, "describe", "pod", "unsigned")
	if err := containsAll(desc, "CreateContainerError", denied); err != nil {
		t.Errorf("kubectl describe: %v", err)
	}
}

// staticPod (item 3): a static pod with an unsigned image is blocked; its mirror pod says why.
func (s *suite) staticPod(t *testing.T) {
	manifest := "/etc/kubernetes/manifests/static-unsigned.yaml"
	writeFile(t, manifest, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: static-unsigned
  namespace: %s
spec:
  containers:
    - name: app
      image: %s
      imagePullPolicy: IfNotPresent
`, shopNS, s.static.Ref))
	defer os.Remove(manifest)
	mirror := "static-unsigned-" + nodeName
	if err := waitFor(60*time.Second, func() error {
		_, err := s.getPod(shopNS, mirror)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	p, _ := s.getPod(shopNS, mirror)
	if _, ok := p.Annotations["kubernetes.io/config.mirror"]; !ok {
		t.Errorf("%s is not a mirror pod: %v", mirror, p.Annotations)
	}
	t.Logf("mirror pod: %s", s.waitBlocked(t, shopNS, mirror, denied, s.static.Repository))
}

// metricsScraped (item 8): discover the targets the way Prometheus' Kubernetes service
// discovery does (the Service's EndpointSlices), and scrape each.
func (s *suite) metricsScraped(t *testing.T) {
	s.n.must(t, "-n", tgNS, "get", "service", "tollgate-metrics")
	out := s.n.must(t, "-n", tgNS, "get", "endpointslices", "-l", "kubernetes.io/service-name=tollgate-metrics", "-o", "json")
	var list discoveryv1.EndpointSliceList
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, sl := range list.Items {
		for _, ep := range sl.Endpoints {
			if ep.Conditions.Ready != nil && *ep.Conditions.Ready {
				for _, port := range sl.Ports {
					if port.Port != nil && *port.Port == 9090 {
						targets = append(targets, ep.Addresses...)
					}
				}
			}
		}
	}
	if len(targets) != 1 {
		t.Fatalf("want one ready metrics endpoint on port 9090 (one node), got %v", targets)
	}
	code, body, err := get(targets[0], "/metrics")
	if err != nil || code != 200 {
		t.Fatalf("scrape %s: %d %v", targets[0], code, err)
	}
	for _, series := range []string{"tollgate_decisions_total{", "tollgate_nri_connected 1", "intoto_missing_attestations_total"} {
		if !strings.Contains(body, "\n"+series) {
			t.Errorf("scrape of %s has no %s series", targets[0], series)
		}
	}
	// One version everywhere: tollgated reports the tag its image carries.
	version := s.image[strings.LastIndex(s.image, ":")+1:]
	if !strings.Contains(body, `version="`+version+`"`) {
		t.Errorf("tollgate_build_info does not report version %s (the image's tag)", version)
	}
}

// configMapAudit (item 4): the policy ConfigMap switched to audit reaches the node through
// the kubelet's ..data swap; the refused pod starts without restarting tollgated.
func (s *suite) configMapAudit(t *testing.T) {
	before := s.tollgatePod(t)
	s.writeOverlay(t, "audit", false)
	s.n.must(t, "apply", "-k", s.overlay)
	s.waitRunning(t, shopNS, "unsigned", 120*time.Second)
	after := s.tollgatePod(t)
	if after.UID != before.UID || restarts(after) != restarts(before) {
		t.Errorf("tollgated was replaced or restarted (uid %s→%s, restarts %d→%d); the change should arrive live",
			before.UID, after.UID, restarts(before), restarts(after))
	}
	// Back to enforce for what follows; a new unsigned pod is refused again.
	s.writeOverlay(t, "enforce", false)
	s.n.must(t, "apply", "-k", s.overlay)
	if err := waitFor(90*time.Second, func() error {
		_, _ = s.n.kubectl("-n", shopNS, "delete", "pod", "unsigned-again", "--wait=true", "--ignore-not-found")
		if err := s.pod(t, shopNS, "unsigned-again", s.unsigned.Ref); err != nil {
			return err
		}
		return waitFor(20*time.Second, func() error {
			p, err := s.getPod(shopNS, "unsigned-again")
			if err != nil {
				return err
			}
			for _, c := range p.Status.ContainerStatuses {
				if c.State.Waiting != nil && c.State.Waiting.Reason == "CreateContainerError" {
					return nil
				}
			}
			return fmt.Errorf("not refused yet")
		})
	}); err != nil {
		t.Fatalf("enforce mode did not come back: %v", err)
	}
}

func restarts(p *corev1.Pod) int32 {
	var n int32
	for _, c := range p.Status.ContainerStatuses {
		n += c.RestartCount
	}
	return n
}
