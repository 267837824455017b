//go:build k8s

package k8s

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"tollgate.dev/tollgate/test/e2e"
)

// brokenPolicy (item 4): a policy file that does not parse keeps the last good set in force
// and shows in readiness (the pod goes NotReady, /readyz says why); fixed, it recovers.
func (s *suite) brokenPolicy(t *testing.T) {
	s.writeOverlay(t, "enforce", true)
	s.n.must(t, "apply", "-k", s.overlay)
	ip := s.tollgatePod(t).Status.PodIP
	var body string
	if err := waitFor(90*time.Second, func() error {
		code, b, err := get(ip, "/readyz")
		if err != nil {
			return err
		}
		if body = b; code != 503 {
			return fmt.Errorf("/readyz %d, want 503", code)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := containsAll(body, "broken.yaml", "stays in force"); err != nil {
		t.Errorf("/readyz: %v", err)
	}
	if err := waitFor(60*time.Second, func() error {
		if p, err := s.findTollgatePod(); err != nil || ready(p) {
			return fmt.Errorf("the tollgate pod is still Ready")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	// The last good set (enforce) still decides.
	s.mustPod(t, shopNS, "unsigned-broken", s.unsigned.Ref)
	s.waitBlocked(t, shopNS, "unsigned-broken", denied)

	s.writeOverlay(t, "enforce", false)
	s.n.must(t, "apply", "-k", s.overlay)
	if err := waitFor(90*time.Second, func() error {
		if p, err := s.findTollgatePod(); err != nil || !ready(p) {
			return fmt.Errorf("the tollgate pod is not Ready again")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// rollingUpdate (item 5): while the DaemonSet's new pod cannot start, the node stays fail-
// closed; rolled back, it recovers and the refused pod starts by itself. A plain restart
// rolls through as well.
func (s *suite) rollingUpdate(t *testing.T) {
	s.n.must(t, "-n", tgNS, "set", "image", "daemonset/tollgate", "tollgated="+s.image+"-missing")
	if err := waitFor(90*time.Second, func() error {
		p, err := s.findTollgatePod()
		if err != nil {
			return err
		}
		if p.Spec.Containers[0].Image == s.image {
			return fmt.Errorf("the old pod is still there")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s.mustPod(t, shopNS, "during-update", s.signed.Ref)
	s.waitEvent(t, shopNS, "during-update", notPresent)
	s.n.must(t, "-n", tgNS, "rollout", "undo", "daemonset/tollgate")
	s.rolledOut(t, "daemonset/tollgate")
	s.waitRunning(t, shopNS, "during-update", 120*time.Second)

	s.n.must(t, "-n", tgNS, "rollout", "restart", "daemonset/tollgate")
	s.rolledOut(t, "daemonset/tollgate")
	s.mustPod(t, shopNS, "after-restart", s.signed.Ref)
	s.waitRunning(t, shopNS, "after-restart", 120*time.Second)
}

// admissionPolicy (item 6): the ValidatingAdmissionPolicy refuses the toleration annotation
// outside Tollgate's namespaces and lets Tollgate's namespace use it.
func (s *suite) admissionPolicy(t *testing.T) {
	err := s.pod(t, shopNS, "sneaky", s.unsigned.Ref, "tollgate.dev/tolerate-missing-plugin", "true")
	if err == nil || !strings.Contains(err.Error(), "tollgate.dev/tolerate-missing-plugin") {
		t.Errorf("a pod in %s with the toleration annotation: %v, want a refusal naming the annotation", shopNS, err)
	}
	for _, key := range []string{"tollgate.dev/tolerate-missing-plugin/pod", "tollgate.dev/tolerate-missing-plugin/container.app"} {
		if err := s.pod(t, shopNS, "sneaky", s.unsigned.Ref, key, "true"); err == nil {
			t.Errorf("a pod in %s with %s was admitted", shopNS, key)
		}
	}
	if _, err := s.n.kubectlIn([]byte(fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: tolerated
  namespace: %s
  annotations: {tollgate.dev/tolerate-missing-plugin: "true"}
spec:
  containers: [{name: app, image: %s}]
`, tgNS, s.signed.Ref)), "apply", "--dry-run=server", "-f", "-"); err != nil {
		t.Errorf("the annotation in %s was refused: %v", tgNS, err)
	}
}

// webhookGenCerts (item 6): the webhook from deploy/webhook/core with its certificate from
// gen-certs.sh denies an unsigned pod in an opted-in namespace with the node's message.
func (s *suite) webhookGenCerts(t *testing.T) {
	cmd := exec.Command("bash", filepath.Join(s.n.repo, "deploy", "webhook", "gen-certs.sh"), "--apply", filepath.Join(s.n.dir, "webhook-certs"))
	cmd.Env = append(os.Environ(), "KUBECONFIG="+s.n.kubeconfig, "PATH="+s.n.bins.kubernetes+":"+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen-certs.sh --apply: %v\n%s", err, out)
	}
	s.rolledOut(t, "deployment/tollgate-webhook")
	s.webhookDenies(t, "webhook-kustomize")
}

// webhookDenies labels the app namespace in and checks the webhook's answer for an unsigned
// pod: denied at apply, with the message the node gives.
func (s *suite) webhookDenies(t *testing.T, name string) {
	t.Helper()
	s.n.must(t, "label", "--overwrite", "namespace", shopNS, "tollgate.dev/admission=enabled")
	defer s.n.kubectl("label", "namespace", shopNS, "tollgate.dev/admission-")
	var err error
	if werr := waitFor(60*time.Second, func() error {
		err = s.pod(t, shopNS, name, s.unsigned.Ref)
		if err == nil {
			_, _ = s.n.kubectl("-n", shopNS, "delete", "pod", name, "--wait=false")
			return fmt.Errorf("the unsigned pod was admitted")
		}
		return nil
	}); werr != nil {
		t.Fatal(werr)
	}
	if e := containsAll(err.Error(), "denied the request", `policy "app"`, "no in-toto evidence"); e != nil {
		t.Errorf("webhook: %v", e)
	}
	if err := s.pod(t, shopNS, name+"-signed", s.signed.Ref); err != nil {
		t.Errorf("the webhook refused a signed pod: %v", err)
	}
}

// applyTwice (item 7): a second `kubectl apply` of every shipped object writes nothing (no
// object's resourceVersion moves) and kubectl says `unchanged`. The one exception to the
// wording is the PodDisruptionBudget: its selector's patch strategy is "replace", so
// kubectl's patch is never empty and it prints `configured` although the server writes
// nothing.
func (s *suite) applyTwice(t *testing.T) {
	for _, dir := range []string{s.overlay, filepath.Join(s.n.repo, "deploy", "webhook", "core")} {
		before := s.versions(t, dir)
		out := s.n.must(t, "apply", "-k", dir)
		for _, line := range strings.Split(out, "\n") {
			if !strings.HasSuffix(line, " unchanged") && !strings.HasPrefix(line, "poddisruptionbudget.policy/") {
				t.Errorf("kubectl apply -k %s: %q", dir, line)
			}
		}
		if after := s.versions(t, dir); !reflect.DeepEqual(before, after) {
			t.Errorf("kubectl apply -k %s wrote objects again:\nbefore %v\nafter  %v", dir, before, after)
		}
	}
}

// versions maps each object of a kustomization to its resourceVersion.
func (s *suite) versions(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := s.n.must(t, "get", "-k", dir, "-o", `jsonpath={range .items[*]}{.kind}/{.metadata.name} {.metadata.resourceVersion}{"\n"}{end}`)
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, " "); ok {
			m[k] = v
		}
	}
	if len(m) < 5 {
		t.Fatalf("kubectl get -k %s found only %v", dir, m)
	}
	return m
}

// helmInstall (item 2, 6): the chart installs as documented (after the kustomize objects are
// gone), its DaemonSet gates the node, and its webhook, with a certificate brought in a
// Secret and caBundle, denies an unsigned pod.
func (s *suite) helmInstall(t *testing.T) {
	helm, err := e2e.FindTool("helm")
	if err != nil {
		e2e.Unavailable(t, "%v", err)
	}
	_, _ = s.n.kubectl("delete", "-k", filepath.Join(s.n.repo, "deploy", "webhook", "core"), "--ignore-not-found", "--wait=true", "--timeout=120s")
	if out, err := s.n.kubectl("delete", "-k", s.overlay, "--ignore-not-found", "--wait=true", "--timeout=180s"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	certs := filepath.Join(s.n.dir, "webhook-certs")
	ca, err := os.ReadFile(filepath.Join(certs, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(helm, "install", "tollgate", filepath.Join(s.n.repo, "deploy", "helm", "tollgate"),
		"--set", "insecureRegistries={"+s.n.registry.Host+"}",
		"--set-file", `policies.app\.yaml=`+filepath.Join(s.overlay, "app.yaml"),
		"--set-file", `keys.ci\.pub=`+filepath.Join(s.keys, "ci.pub"),
		"--set", "webhook.enabled=true", "--set", "webhook.certManager.enabled=false",
		"--set", "webhook.tls.caBundle="+base64.StdEncoding.EncodeToString(ca))
	cmd.Env = append(os.Environ(), "KUBECONFIG="+s.n.kubeconfig, "HELM_CACHE_HOME="+filepath.Join(s.n.dir, "helm"),
		"HELM_CONFIG_HOME="+filepath.Join(s.n.dir, "helm"), "HELM_DATA_HOME="+filepath.Join(s.n.dir, "helm"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	s.n.must(t, "-n", tgNS, "create", "secret", "tls", "tollgate-webhook-tls",
		"--cert", filepath.Join(certs, "tls.crt"), "--key", filepath.Join(certs, "tls.key"))
	s.rolledOut(t, "daemonset/tollgate")
	p := s.tollgatePod(t)
	if img := p.Spec.Containers[0].Image; img != s.image {
		t.Errorf("the chart's DaemonSet runs %s; `make image` built %s", img, s.image)
	}
	for _, path := range []string{"/readyz", "/healthz", "/metrics"} {
		if code, _, err := get(p.Status.PodIP, path); err != nil || code != 200 {
			t.Errorf("GET %s:9090%s: %d %v", p.Status.PodIP, path, code, err)
		}
	}
	s.mustPod(t, shopNS, "helm-signed", s.signed.Ref)
	s.waitRunning(t, shopNS, "helm-signed", 120*time.Second)
	s.mustPod(t, shopNS, "helm-unsigned", s.unsigned.Ref)
	s.waitBlocked(t, shopNS, "helm-unsigned", denied, `policy "app"`)
	s.rolledOut(t, "deployment/tollgate-webhook")
	s.webhookDenies(t, "webhook-helm")
}
