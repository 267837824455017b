//go:build k8s

package k8s

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"tollgate.dev/tollgate/test/e2e"
	"tollgate.dev/tollgate/test/tools/testimage"
)

const (
	tgNS       = "tollgate-system"
	shopNS     = "shop"
	builderID  = "https://ci.k8s.tollgate.dev/builder"
	notPresent = `required plugin "tollgate" not present`
	denied     = "tollgate: denied"
)

// suite is what the scenarios share: the node, the evidence pipeline's keys, the images in
// the registry, and the kustomize overlay a user would keep beside the shipped base.
type suite struct {
	n       *node
	cli     string
	keys    string // owner of ci.key / ci.pub
	overlay string // kustomization over deploy/kustomize/base
	image   string // the Tollgate image `make image` built, as the manifests name it

	signed, unsigned, static *testimage.Pushed
}

// TestNode proves the DaemonSet rollout on a real one-node Kubernetes (issue 14). The
// scenarios share one node and run in order: each leaves the cluster as the next expects.
func TestNode(t *testing.T) {
	start := time.Now()
	n := startNode(t)
	s := newSuite(t, n)
	for _, sc := range []struct {
		name string
		run  func(*testing.T)
		must bool // later scenarios cannot run without it
	}{
		{"1-fail-closed-before-tollgate", s.failClosedBeforeTollgate, false},
		{"2-kustomize-install", s.kustomizeInstall, true},
		{"1-pods-start-once-ready", s.podsStartOnceReady, false},
		{"3-signed-runs-unsigned-blocked", s.signedAndUnsigned, false},
		{"3-static-pod-blocked", s.staticPod, false},
		{"3-fresh-signed-first-try", s.freshSignedFirstTry, false},
		{"8-metrics-scraped", s.metricsScraped, false},
		{"4-configmap-audit-mode", s.configMapAudit, false},
		{"4-broken-policy-keeps-last-good", s.brokenPolicy, false},
		{"5-rolling-update", s.rollingUpdate, false},
		{"6-admission-policy", s.admissionPolicy, false},
		{"6-webhook-gen-certs", s.webhookGenCerts, false},
		{"7-apply-twice-no-op", s.applyTwice, false},
		{"2-helm-install", s.helmInstall, false},
	} {
		t0 := time.Now()
		ok := t.Run(sc.name, sc.run)
		t.Logf("k8s: scenario %s: ok=%v in %s", sc.name, ok, time.Since(t0).Round(time.Millisecond))
		if !ok && sc.must {
			t.Fatalf("k8s: %s failed; the scenarios after it need it", sc.name)
		}
	}
	t.Logf("k8s: TestNode done in %s", time.Since(start).Round(time.Millisecond))
}

// newSuite makes the CI side: a provenance key, a signed and two unsigned images, the
// overlay with the app's ImagePolicy and the key, and the namespace the app runs in.
func newSuite(t *testing.T, n *node) *suite {
	t.Helper()
	s := &suite{n: n, cli: e2e.BuildCLI(t), keys: filepath.Join(n.dir, "keys"), overlay: filepath.Join(n.dir, "overlay")}
	for _, d := range []string{s.keys, s.overlay} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s.tollgate(t, "keygen", filepath.Join(s.keys, "ci"))
	var err error
	push := func(tag, variant string) *testimage.Pushed {
		img, err := n.push("k8s/app:"+tag, testimage.Spec{Program: testimage.Sleeper, Variant: variant})
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	s.signed, s.unsigned, s.static = push("signed", "signed"), push("unsigned", "unsigned"), push("static", "static")
	s.sign(t, s.signed.DigestRef(), "provenance")
	if s.image, err = importTollgateImage(n); err != nil {
		t.Fatal(err)
	}
	s.writeOverlay(t, "enforce", false)
	n.must(t, "create", "namespace", shopNS)
	if err := waitFor(60*time.Second, func() error {
		_, err := n.kubectl("-n", shopNS, "get", "serviceaccount", "default")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return s
}

// sign attaches SLSA provenance for ref, signed by the CI key, as the pipeline does; the
// statement is kept as <keys>/<name>.json.
func (s *suite) sign(t *testing.T, ref, name string) {
	t.Helper()
	prov := filepath.Join(s.keys, name+".json")
	s.tollgate(t, "attest", "--image", ref, "--predicate-type", "slsa-v1",
		"--key", filepath.Join(s.keys, "ci"), "--builder-id", builderID,
		"--source-uri", "git+https://git.k8s.tollgate.dev/app@refs/heads/main", "--out", prov)
	s.tollgate(t, "attach", "--image", ref, "--attestation", prov, "--insecure-registry", s.n.registry.Host)
}

func (s *suite) tollgate(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(s.cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("tollgate %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// appPolicy is the ImagePolicy for the test app's repository: SLSA provenance by ci.pub.
func (s *suite) appPolicy(mode string) string {
	return fmt.Sprintf(`apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: app
spec:
  images: ["%s/k8s/app"]
  mode: %s
  attestations:
    - name: provenance
      predicateType: slsa-v1
      keys: [ci.pub]
      conditions:
        - provenance.builderId == "%s"
`, s.n.registry.Host, mode, builderID)
}

// writeOverlay writes the kustomization a user keeps over the shipped base: the app's
// policy and key merged into the base's ConfigMaps, and the registry's plain-HTTP setting
// through the base's documented knob. broken adds a policy file that does not parse.
func (s *suite) writeOverlay(t *testing.T, mode string, broken bool) {
	t.Helper()
	base, err := filepath.Rel(s.overlay, filepath.Join(s.n.repo, "deploy", "kustomize", "base"))
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"app.yaml"}
	writeFile(t, filepath.Join(s.overlay, "app.yaml"), s.appPolicy(mode))
	if broken {
		files = append(files, "broken.yaml")
		writeFile(t, filepath.Join(s.overlay, "broken.yaml"), "apiVersion: tollgate.dev/v1alpha1\nkind: ImagePolicy\nspec: {nonsense: 1}\n")
	}
	copyTo(t, filepath.Join(s.keys, "ci.pub"), filepath.Join(s.overlay, "ci.pub"))
	writeFile(t, filepath.Join(s.overlay, "tollgated.yaml"), fmt.Sprintf("insecure-registry: [%q]\n", s.n.registry.Host))
	writeFile(t, filepath.Join(s.overlay, "kustomization.yaml"), fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - %s
configMapGenerator:
  - name: tollgate-policies
    namespace: tollgate-system
    behavior: merge
    files: [%s]
  - name: tollgate-keys
    namespace: tollgate-system
    behavior: merge
    files: [ci.pub]
  - name: tollgate-config
    namespace: tollgate-system
    behavior: replace
    files: [tollgated.yaml]
`, base, strings.Join(files, ", ")))
}

// importTollgateImage imports out/image (from `make image`) into containerd's CRI namespace
// and returns the name it carries, which the shipped manifests must name too.
func importTollgateImage(n *node) (string, error) {
	dir := filepath.Join(n.repo, "out", "image")
	idx, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return "", fmt.Errorf("no Tollgate image (run `make image`): %w", err)
	}
	var index struct {
		Manifests []struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(idx, &index); err != nil || len(index.Manifests) != 1 {
		return "", fmt.Errorf("out/image/index.json: want one manifest (%v)", err)
	}
	ref := index.Manifests[0].Annotations["org.opencontainers.image.ref.name"]
	archive := filepath.Join(n.dir, "tollgate-image.tar")
	if err := tarDir(dir, archive); err != nil {
		return "", err
	}
	if _, err := n.ctr("images", "import", archive); err != nil {
		return "", err
	}
	out, err := n.ctr("images", "ls", "-q")
	if err != nil {
		return "", err
	}
	if !strings.Contains(out, ref) {
		return "", fmt.Errorf("after the import containerd has no image %s:\n%s", ref, out)
	}
	return ref, nil
}

// tarDir writes dir's files into an uncompressed tar, as `ctr images import` reads an OCI
// layout.
func tarDir(dir, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// pod applies a Pod with one container running image in ns.
func (s *suite) pod(t *testing.T, ns, name, image string, annotations ...string) error {
	t.Helper()
	_, err := s.n.kubectlIn([]byte(podManifest(ns, name, image, annotations...)), "apply", "-f", "-")
	return err
}

// podManifest is a Pod with one container running image in ns, with annotations (key,
// value, …).
func podManifest(ns, name, image string, annotations ...string) string {
	ann := ""
	if len(annotations) > 0 {
		ann = "\n  annotations:\n"
		for i := 0; i+1 < len(annotations); i += 2 {
			ann += fmt.Sprintf("    %s: %q\n", annotations[i], annotations[i+1])
		}
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s%s
spec:
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  containers:
    - name: app
      image: %s
      imagePullPolicy: IfNotPresent
`, name, ns, strings.TrimRight(ann, "\n"), image)
}

func (s *suite) mustPod(t *testing.T, ns, name, image string) {
	t.Helper()
	if err := s.pod(t, ns, name, image); err != nil {
		t.Fatal(err)
	}
}

func (s *suite) getPod(ns, name string) (*corev1.Pod, error) {
	out, err := s.n.kubectl("-n", ns, "get", "pod", name, "-o", "json")
	if err != nil {
		return nil, err
	}
	var p corev1.Pod
	return &p, json.Unmarshal([]byte(out), &p)
}

// waitRunning waits until every container of the pod runs.
func (s *suite) waitRunning(t *testing.T, ns, name string, limit time.Duration) {
	t.Helper()
	if err := waitFor(limit, func() error {
		p, err := s.getPod(ns, name)
		if err != nil {
			return err
		}
		if len(p.Status.ContainerStatuses) == 0 {
			return fmt.Errorf("pod %s/%s: no container status yet (phase %s)", ns, name, p.Status.Phase)
		}
		for _, c := range p.Status.ContainerStatuses {
			if c.State.Running == nil {
				return fmt.Errorf("pod %s/%s container %s not running: %+v", ns, name, c.Name, c.State)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// waitBlocked waits until the pod's container waits with CreateContainerError and a message
// holding every want, and returns that message.
func (s *suite) waitBlocked(t *testing.T, ns, name string, want ...string) string {
	t.Helper()
	var msg string
	if err := waitFor(90*time.Second, func() error {
		p, err := s.getPod(ns, name)
		if err != nil {
			return err
		}
		for _, c := range p.Status.ContainerStatuses {
			if w := c.State.Waiting; w != nil && w.Reason == "CreateContainerError" {
				msg = w.Message
				return containsAll(msg, want...)
			}
			if c.State.Running != nil {
				return errStop(fmt.Sprintf("pod %s/%s runs; it should have been refused", ns, name))
			}
		}
		return fmt.Errorf("pod %s/%s: no CreateContainerError yet: %+v", ns, name, p.Status.ContainerStatuses)
	}); err != nil {
		t.Fatal(err)
	}
	return msg
}

// waitEvent waits for an event about the object whose message holds every want.
func (s *suite) waitEvent(t *testing.T, ns, name string, want ...string) string {
	t.Helper()
	var found string
	if err := waitFor(90*time.Second, func() error {
		out, err := s.n.kubectl("-n", ns, "get", "events", "--field-selector", "involvedObject.name="+name, "-o", "json")
		if err != nil {
			return err
		}
		var list corev1.EventList
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			return err
		}
		var msgs []string
		for _, e := range list.Items {
			if containsAll(e.Message, want...) == nil {
				found = e.Reason + ": " + e.Message
				return nil
			}
			msgs = append(msgs, e.Reason+": "+e.Message)
		}
		return fmt.Errorf("no event for %s/%s says %q; events:\n%s", ns, name, want, strings.Join(msgs, "\n"))
	}); err != nil {
		t.Fatal(err)
	}
	return found
}

func containsAll(s string, want ...string) error {
	for _, w := range want {
		if !strings.Contains(s, w) {
			return fmt.Errorf("%q does not say %q", s, w)
		}
	}
	return nil
}

// tollgatePod returns the DaemonSet's pod on the node.
func (s *suite) tollgatePod(t *testing.T) *corev1.Pod {
	t.Helper()
	p, err := s.findTollgatePod()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// findTollgatePod returns the DaemonSet's pod that is not being deleted, if there is one.
func (s *suite) findTollgatePod() (*corev1.Pod, error) {
	out, err := s.n.kubectl("-n", tgNS, "get", "pods", "-l", "app.kubernetes.io/component=node-agent", "-o", "json")
	if err != nil {
		return nil, err
	}
	var list corev1.PodList
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, err
	}
	for i := range list.Items {
		if list.Items[i].DeletionTimestamp == nil {
			return &list.Items[i], nil
		}
	}
	return nil, fmt.Errorf("no tollgate pod in %s", tgNS)
}

// get fetches http://host:9090/path from the DaemonSet's pod port, as a probe would.
func get(host, path string) (int, string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + host + ":9090" + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, string(b), err
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyTo(t *testing.T, src, dst string) {
	t.Helper()
	if err := copyFile(src, dst, 0o644); err != nil {
		t.Fatal(err)
	}
}
