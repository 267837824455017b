package deploy

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"tollgate.dev/tollgate/daemon/admission"

	"tollgate.dev/tollgate/test/toolcheck"
)

// The Helm chart's form of the admission webhook (values webhook.*): nothing by default;
// with webhook.enabled, the objects deploy/webhook renders, in either TLS option.

const webhookComponent = "admission-webhook"

// webhookKinds are the kinds only the webhook renders.
var webhookKinds = map[string]bool{
	"Deployment": true, "PodDisruptionBudget": true, "ValidatingWebhookConfiguration": true,
	"Issuer": true, "Certificate": true,
}

// renderHelmWebhook renders the chart and decodes it strictly, with the webhook's kinds known.
func renderHelmWebhook(t *testing.T, set ...string) *rendering {
	t.Helper()
	return decodeWith(t, fmt.Sprintf("helm %v", set), helmTemplate(t, set...), newWebhookObject)
}

// helmFails runs `helm template` with set, requires it to fail, and returns its stderr.
func helmFails(t *testing.T, set ...string) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(toolcheck.Require(t, "helm"), helmArgs(t, set...)...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil {
		t.Fatalf("helm %v rendered; want a refusal", set)
	}
	return stderr.String()
}

// webhookPart and nodePart split a rendering by the component label deploy/webhook puts on
// every webhook object.
func (r *rendering) webhookPart() *rendering { return r.filter("webhook", true) }
func (r *rendering) nodePart() *rendering    { return r.filter("node", false) }

func (r *rendering) filter(part string, webhook bool) *rendering {
	out := &rendering{name: r.name + " (" + part + ")", objects: map[objectKey]any{}}
	for k, o := range r.objects {
		if isWebhook := o.(metav1.Object).GetLabels()["app.kubernetes.io/component"] == webhookComponent; isWebhook == webhook {
			out.objects[k] = o
		}
	}
	return out
}

// helmSecretMode: the webhook without cert-manager, its CA given as caBundle (base64, as
// docs/admission.md passes gen-certs.sh's ca.crt), plus more.
func helmSecretMode(ca caBundle, more ...string) []string {
	return append([]string{"webhook.enabled=true", "webhook.certManager.enabled=false", ca.set()}, more...)
}

// caBundle is a CA certificate in PEM, as gen-certs.sh's ca.crt.
type caBundle []byte

func (c caBundle) set() string {
	return "webhook.tls.caBundle=" + base64.StdEncoding.EncodeToString(c)
}

// testCABundle makes a self-signed CA certificate like gen-certs.sh's, without openssl.
func testCABundle(t *testing.T) caBundle {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tollgate-webhook-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestHelmWebhookOff: with webhook.enabled=false (the default) nothing of the webhook
// renders, whatever its other values say.
func TestHelmWebhookOff(t *testing.T) {
	def := renderHelm(t) // decodes the node's kinds only: a webhook object would fail it
	for _, c := range []struct {
		name string
		set  []string
	}{
		{"default", nil},
		{"enabled=false", []string{"webhook.enabled=false"}},
		{"enabled=false, other webhook values set", []string{"webhook.enabled=false", "webhook.certManager.enabled=false",
			"webhook.tls.caBundle=Zm9v", "webhook.replicas=3", "webhook.failurePolicy=Fail", "webhook.objectSelector.matchLabels.a=b"}},
		{"enabled=false, monitoring on", []string{"webhook.enabled=false", "monitoring.enabled=true"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := renderHelmWebhook(t, c.set...)
			if w := r.webhookPart(); len(w.objects) != 0 {
				t.Errorf("webhook objects rendered: %v", w.keys())
			}
			for key := range r.objects {
				if webhookKinds[key.Kind] || strings.Contains(key.Name, "webhook") {
					t.Errorf("%s rendered with the webhook off", key)
				}
			}
			if slices.Contains(c.set, "monitoring.enabled=true") {
				return
			}
			if k, d := r.keys(), def.keys(); !reflect.DeepEqual(k, d) {
				t.Errorf("object set differs from the defaults:\nhave %v\nwant %v", k, d)
			}
		})
	}
}

// TestKustomizeAndHelmAgreeWebhook: with webhook.enabled, Helm renders deploy/webhook's
// objects (compared as TestKustomizeAndHelmAgree compares the node's), and the node's
// objects stay as they were.
func TestKustomizeAndHelmAgreeWebhook(t *testing.T) {
	ca := testCABundle(t)
	// What gen-certs.sh --apply leaves in the cluster: deploy/webhook/core, with caBundle of
	// webhooks[0] set to ca.crt.
	core := renderWebhook(t, "core")
	get[*admissionv1.ValidatingWebhookConfiguration](t, core, "ValidatingWebhookConfiguration", "", webhookName).
		Webhooks[0].ClientConfig.CABundle = ca
	node := renderHelm(t)
	for _, c := range []struct {
		name string
		k    *rendering
		set  []string
	}{
		{"cert-manager", renderWebhook(t, "."), []string{"webhook.enabled=true"}},
		{"existing-secret", core, helmSecretMode(ca)},
	} {
		t.Run(c.name, func(t *testing.T) {
			full := renderHelmWebhook(t, c.set...)
			h := full.webhookPart()
			if k, hk := c.k.keys(), h.keys(); !reflect.DeepEqual(k, hk) {
				t.Fatalf("webhook object sets differ:\nkustomize %v\nhelm      %v", k, hk)
			}
			for key, kobj := range c.k.objects {
				compareObjects(t, key, kobj, h.objects[key])
			}
			hn := full.nodePart()
			if k, hk := node.keys(), hn.keys(); !reflect.DeepEqual(k, hk) {
				t.Fatalf("the webhook changes the node's objects:\nwithout %v\nwith    %v", k, hk)
			}
			for key, obj := range node.objects {
				compareObjects(t, key, obj, hn.objects[key])
			}
		})
	}
}

// TestHelmWebhookTLS: the Secret name and the CA reach the pod, the Certificate and the
// ValidatingWebhookConfiguration, in each TLS option and namespace.
func TestHelmWebhookTLS(t *testing.T) {
	ca := testCABundle(t)
	for _, c := range []struct {
		name      string
		set       []string
		namespace string
		secret    string
		ca        caBundle // nil: cert-manager
		genCerts  bool     // the CA (and a serving certificate) from gen-certs.sh
	}{
		{"cert-manager", []string{"webhook.enabled=true"}, ns, webhookSecret, nil, false},
		{"cert-manager, own Secret name and namespace",
			[]string{"webhook.enabled=true", "webhook.tls.secretName=gate-tls", "namespace.name=gate"}, "gate", "gate-tls", nil, false},
		{"existing Secret", helmSecretMode(ca, "webhook.tls.secretName=my-tls"), ns, "my-tls", ca, false},
		{"existing Secret, default name", helmSecretMode(ca), ns, webhookSecret, ca, false},
		{"gen-certs.sh, other namespace", []string{"namespace.name=gate"}, "gate", webhookSecret, nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var servingCert []byte
			if c.genCerts {
				toolcheck.Require(t, "openssl")
				out := filepath.Join(t.TempDir(), "certs")
				run(t, "bash", filepath.Join(repoRoot(t), "deploy", "webhook", "gen-certs.sh"), "--namespace", c.namespace, out)
				var err error
				if c.ca, err = os.ReadFile(filepath.Join(out, "ca.crt")); err != nil {
					t.Fatal(err)
				}
				if servingCert, err = os.ReadFile(filepath.Join(out, "tls.crt")); err != nil {
					t.Fatal(err)
				}
				c.set = append(helmSecretMode(c.ca), c.set...)
			}
			r := renderHelmWebhook(t, c.set...)
			dep := get[*appsv1.Deployment](t, r, "Deployment", c.namespace, webhookName)
			var mounted string
			for _, v := range dep.Spec.Template.Spec.Volumes {
				if v.Name == "tls" && v.Secret != nil {
					mounted = v.Secret.SecretName
				}
			}
			if mounted != c.secret {
				t.Errorf("pod mounts Secret %q, want %q", mounted, c.secret)
			}
			vwc := get[*admissionv1.ValidatingWebhookConfiguration](t, r, "ValidatingWebhookConfiguration", "", webhookName)
			w := vwc.Webhooks[0]
			if s := w.ClientConfig.Service; s == nil || s.Namespace != c.namespace {
				t.Errorf("clientConfig.service %+v: want namespace %s", s, c.namespace)
			}
			if !bytes.Equal(w.ClientConfig.CABundle, c.ca) {
				t.Errorf("caBundle %q, want %q", w.ClientConfig.CABundle, c.ca)
			}
			if excl := w.NamespaceSelector.MatchExpressions; len(excl) == 0 || !slices.Contains(excl[0].Values, c.namespace) {
				t.Errorf("namespaceSelector %+v does not exclude %s", w.NamespaceSelector, c.namespace)
			}
			inject, hasInject := vwc.Annotations[injectCAAnnot]
			certManager := c.ca == nil
			if hasInject != certManager {
				t.Errorf("annotation %s present=%v, want %v", injectCAAnnot, hasInject, certManager)
			}
			if !certManager {
				for key := range r.objects {
					if key.Kind == "Issuer" || key.Kind == "Certificate" {
						t.Errorf("%s rendered without cert-manager", key)
					}
				}
				if servingCert != nil {
					verifyServingFor(t, w.ClientConfig.CABundle, servingCert, w.ClientConfig.Service.Name+"."+c.namespace+".svc")
				}
				return
			}
			if want := c.namespace + "/" + webhookName; inject != want {
				t.Errorf("annotation %s=%q, want %q", injectCAAnnot, inject, want)
			}
			cert := get[*cmCertificate](t, r, "Certificate", c.namespace, webhookName)
			if cert.Spec.SecretName != c.secret {
				t.Errorf("Certificate writes Secret %q, want %q (the one the pod mounts)", cert.Spec.SecretName, c.secret)
			}
			if host := webhookName + "." + c.namespace + ".svc"; !slices.Contains(cert.Spec.DNSNames, host) {
				t.Errorf("dnsNames %v lack %s", cert.Spec.DNSNames, host)
			}
		})
	}
}

// verifyServingFor checks that certPEM is a serving certificate for host under caPEM.
func verifyServingFor(t *testing.T, caPEM, certPEM []byte, host string) {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("caBundle holds no PEM certificate: %q", caPEM)
	}
	blk, _ := pem.Decode(certPEM)
	if blk == nil {
		t.Fatal("tls.crt holds no PEM block")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("tls.crt under the rendered caBundle, for %s: %v", host, err)
	}
}

// webhookPod returns the webhook's Deployment, its container, and the configuration
// `tollgated webhook` reads from its arguments.
func webhookPod(t *testing.T, r *rendering) (*appsv1.Deployment, corev1.Container, admission.Config) {
	t.Helper()
	dep := get[*appsv1.Deployment](t, r, "Deployment", ns, webhookName)
	c := dep.Spec.Template.Spec.Containers[0]
	cfg, err := admission.ParseArgs("tollgated webhook", withConfigFile(t, r, c.Args[1:]))
	if err != nil {
		t.Fatalf("tollgated webhook rejects the arguments %v: %v", c.Args, err)
	}
	return dep, c, cfg
}

func webhookEntry(t *testing.T, r *rendering) admissionv1.ValidatingWebhook {
	t.Helper()
	return get[*admissionv1.ValidatingWebhookConfiguration](t, r, "ValidatingWebhookConfiguration", "", webhookName).Webhooks[0]
}

// TestHelmWebhookValues: each webhook value changes what it says.
func TestHelmWebhookValues(t *testing.T) {
	for _, c := range []struct {
		name  string
		set   []string
		check func(t *testing.T, r *rendering)
	}{
		{"replicas", []string{"webhook.replicas=3"}, func(t *testing.T, r *rendering) {
			dep, _, _ := webhookPod(t, r)
			if *dep.Spec.Replicas != 3 {
				t.Errorf("replicas %d, want 3", *dep.Spec.Replicas)
			}
			get[*policyv1.PodDisruptionBudget](t, r, "PodDisruptionBudget", ns, webhookName)
		}},
		{"one replica: no PDB to block drains", []string{"webhook.replicas=1"}, func(t *testing.T, r *rendering) {
			if _, ok := r.objects[objectKey{"PodDisruptionBudget", ns, webhookName}]; ok {
				t.Error("PodDisruptionBudget minAvailable 1 rendered for a single replica")
			}
		}},
		{"image follows the chart's", []string{"image.repository=registry.local/tollgate", "image.tag=v9", "image.pullPolicy=Always"},
			func(t *testing.T, r *rendering) {
				_, c, _ := webhookPod(t, r)
				if c.Image != "registry.local/tollgate:v9" || c.ImagePullPolicy != corev1.PullAlways {
					t.Errorf("image %s %s, want the chart's registry.local/tollgate:v9 Always", c.Image, c.ImagePullPolicy)
				}
			}},
		{"image of its own", []string{"webhook.image.repository=registry.local/wh", "webhook.image.tag=v3", "webhook.image.pullPolicy=Never"},
			func(t *testing.T, r *rendering) {
				_, c, _ := webhookPod(t, r)
				if c.Image != "registry.local/wh:v3" || c.ImagePullPolicy != corev1.PullNever {
					t.Errorf("image %s %s, want registry.local/wh:v3 Never", c.Image, c.ImagePullPolicy)
				}
				ds := get[*appsv1.DaemonSet](t, r, "DaemonSet", ns, "tollgate")
				if img := ds.Spec.Template.Spec.Containers[0].Image; img != "ghcr.io/tollgate-dev/tollgate:v0.1.0" {
					t.Errorf("webhook.image changed the DaemonSet's image to %s", img)
				}
			}},
		{"failurePolicy Fail", []string{"webhook.failurePolicy=Fail"}, func(t *testing.T, r *rendering) {
			if w := webhookEntry(t, r); *w.FailurePolicy != admissionv1.Fail {
				t.Errorf("failurePolicy %s, want Fail", *w.FailurePolicy)
			}
		}},
		{"timeoutSeconds 5: tollgated answers within 3s", []string{"webhook.timeoutSeconds=5"}, func(t *testing.T, r *rendering) {
			_, _, cfg := webhookPod(t, r)
			if w := webhookEntry(t, r); *w.TimeoutSeconds != 5 || cfg.Timeout.D() != 3*time.Second {
				t.Errorf("timeoutSeconds %d --timeout=%s, want 5 and 3s", *w.TimeoutSeconds, cfg.Timeout)
			}
		}},
		{"timeoutSeconds 30: --timeout stays 8s", []string{"webhook.timeoutSeconds=30"}, func(t *testing.T, r *rendering) {
			if _, _, cfg := webhookPod(t, r); cfg.Timeout.D() != 8*time.Second {
				t.Errorf("--timeout=%s, want 8s (tollgated refuses 10s or more)", cfg.Timeout)
			}
		}},
		{"flags", []string{"webhook.failOpen=false", "webhook.platform=linux/arm64", "webhook.logLevel=debug",
			"webhook.extraArgs={--deny-ttl=1m}", "insecureRegistries={registry.local:5000}"}, func(t *testing.T, r *rendering) {
			_, _, cfg := webhookPod(t, r)
			if cfg.FailOpen || cfg.Platform != "linux/arm64" || cfg.LogLevel != "debug" || cfg.DenyTTL.D() != time.Minute ||
				!slices.Equal(cfg.InsecureRegistries, []string{"registry.local:5000"}) {
				t.Errorf("config %+v", cfg)
			}
		}},
		{"namespaceSelector: the exclusions stay", []string{
			`webhook.namespaceSelector.matchLabels.tollgate\.dev/admission=null`,
			"webhook.namespaceSelector.matchExpressions[0].key=env",
			"webhook.namespaceSelector.matchExpressions[0].operator=In",
			"webhook.namespaceSelector.matchExpressions[0].values={prod}",
		}, func(t *testing.T, r *rendering) {
			sel, err := metav1.LabelSelectorAsSelector(webhookEntry(t, r).NamespaceSelector)
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range map[string]bool{"shop": true, ns: false, "kube-system": false} {
				if got := sel.Matches(labels.Set{"kubernetes.io/metadata.name": name, "env": "prod"}); got != want {
					t.Errorf("namespace %s with env=prod: selected=%v, want %v", name, got, want)
				}
			}
			if sel.Matches(labels.Set{"kubernetes.io/metadata.name": "shop", optInLabel: "enabled"}) {
				t.Error("the default opt-in label still selects")
			}
		}},
		{"objectSelector", []string{`webhook.objectSelector.matchLabels.tollgate\.dev/check=yes`}, func(t *testing.T, r *rendering) {
			if s := webhookEntry(t, r).ObjectSelector; s == nil || s.MatchLabels["tollgate.dev/check"] != "yes" {
				t.Errorf("objectSelector %+v", s)
			}
		}},
		{"resources and GOMEMLIMIT", []string{"webhook.resources.limits.memory=512Mi", "webhook.resources.requests.cpu=100m", "webhook.goMemLimit=400MiB"},
			func(t *testing.T, r *rendering) {
				_, c, _ := webhookPod(t, r)
				if m := c.Resources.Limits[corev1.ResourceMemory]; m.Cmp(resource.MustParse("512Mi")) != 0 {
					t.Errorf("memory limit %v", m.String())
				}
				if cpu := c.Resources.Requests[corev1.ResourceCPU]; cpu.Cmp(resource.MustParse("100m")) != 0 {
					t.Errorf("cpu request %v", cpu.String())
				}
				if len(c.Env) != 1 || c.Env[0].Name != "GOMEMLIMIT" || c.Env[0].Value != "400MiB" {
					t.Errorf("env %+v", c.Env)
				}
			}},
		{"scheduling", []string{"webhook.nodeSelector.pool=system", "webhook.tolerations[0].key=dedicated", "webhook.tolerations[0].operator=Exists"},
			func(t *testing.T, r *rendering) {
				dep, _, _ := webhookPod(t, r)
				spec := dep.Spec.Template.Spec
				if spec.NodeSelector["pool"] != "system" || len(spec.Tolerations) != 1 || spec.Tolerations[0].Key != "dedicated" {
					t.Errorf("nodeSelector %v tolerations %+v", spec.NodeSelector, spec.Tolerations)
				}
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.check(t, renderHelmWebhook(t, append([]string{"webhook.enabled=true"}, c.set...)...))
		})
	}
}

// TestHelmWebhookRefuses: values that would render a webhook that cannot work stop the
// rendering with a message naming the value.
func TestHelmWebhookRefuses(t *testing.T) {
	ca := testCABundle(t)
	for _, c := range []struct {
		name string
		set  []string
		want string
	}{
		{"no caBundle without cert-manager", []string{"webhook.certManager.enabled=false"}, "webhook.tls.caBundle is required"},
		{"caBundle as PEM", []string{"webhook.certManager.enabled=false", "webhook.tls.caBundle=-----BEGIN CERTIFICATE-----"}, "base64-encoded"},
		{"caBundle with cert-manager", []string{ca.set()}, "cert-manager injects the CA"},
		{"no Secret name", []string{"webhook.tls.secretName="}, "webhook.tls.secretName"},
		{"failurePolicy", []string{"webhook.failurePolicy=Never"}, "want Ignore or Fail"},
		{"timeoutSeconds too short", []string{"webhook.timeoutSeconds=2"}, "want 3 to 30"},
		{"timeoutSeconds too long", []string{"webhook.timeoutSeconds=31"}, "want 3 to 30"},
		{"failOpen not a bool", []string{"webhook.failOpen=maybe"}, "webhook.failOpen"},
		{"misspelt namespaceSelector", []string{"webhook.namespaceSelector.matchLabel.a=b"}, "only matchLabels and matchExpressions"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if msg := helmFails(t, append([]string{"webhook.enabled=true"}, c.set...)...); !strings.Contains(msg, c.want) {
				t.Errorf("helm's error %q lacks %q", msg, c.want)
			}
		})
	}
}

// TestHelmLint: `helm lint --strict` passes with the webhook off and in each TLS option.
func TestHelmLint(t *testing.T) {
	bin := toolcheck.Require(t, "helm")
	chart := filepath.Join(repoRoot(t), "deploy", "helm", "tollgate")
	for _, c := range []struct {
		name string
		set  []string
	}{
		{"defaults", nil},
		{"monitoring", []string{"monitoring.enabled=true"}},
		{"webhook, cert-manager", []string{"webhook.enabled=true"}},
		{"webhook, existing Secret", helmSecretMode(testCABundle(t))},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"lint", "--strict", chart}
			for _, s := range c.set {
				args = append(args, "--set", s)
			}
			run(t, bin, args...)
		})
	}
}
