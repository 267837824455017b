package deploy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"tollgate.dev/tollgate/daemon/admission"

	"tollgate.dev/tollgate/test/toolcheck"
)

// The admission webhook's manifests (deploy/webhook): rendered with the real kustomize,
// decoded strictly, and checked against what the API server, cert-manager and
// `tollgated webhook` need.

const (
	webhookName   = "tollgate-webhook"
	webhookSecret = "tollgate-webhook-tls"
	optInLabel    = "tollgate.dev/admission"
	injectCAAnnot = "cert-manager.io/inject-ca-from"
)

// cert-manager.io/v1 objects, with only the fields Tollgate sets (strict decoding then
// catches a field we did not mean to set, or a misspelt one).
type cmIssuer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SelfSigned *struct{} `json:"selfSigned,omitempty"`
		CA         *struct {
			SecretName string `json:"secretName"`
		} `json:"ca,omitempty"`
	} `json:"spec"`
}

type cmCertificate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		IsCA        bool     `json:"isCA,omitempty"`
		CommonName  string   `json:"commonName,omitempty"`
		SecretName  string   `json:"secretName"`
		DNSNames    []string `json:"dnsNames,omitempty"`
		Duration    string   `json:"duration,omitempty"`
		RenewBefore string   `json:"renewBefore,omitempty"`
		PrivateKey  *struct {
			Algorithm      string `json:"algorithm"`
			Size           int    `json:"size"`
			RotationPolicy string `json:"rotationPolicy,omitempty"`
		} `json:"privateKey,omitempty"`
		Usages    []string `json:"usages,omitempty"`
		IssuerRef struct {
			Name  string `json:"name"`
			Kind  string `json:"kind"`
			Group string `json:"group"`
		} `json:"issuerRef"`
	} `json:"spec"`
}

func newWebhookObject(apiVersion, kind string) (any, bool) {
	switch apiVersion + " " + kind {
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, true
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	case "admissionregistration.k8s.io/v1 ValidatingWebhookConfiguration":
		return &admissionv1.ValidatingWebhookConfiguration{}, true
	case "cert-manager.io/v1 Issuer":
		return &cmIssuer{}, true
	case "cert-manager.io/v1 Certificate":
		return &cmCertificate{}, true
	}
	return newObject(apiVersion, kind)
}

// renderWebhook builds deploy/webhook/<dir> and decodes it like decodeAll, with the
// webhook's kinds added.
func renderWebhook(t *testing.T, dir string) *rendering {
	t.Helper()
	out := run(t, toolcheck.Require(t, "kustomize"), "build", filepath.Join(repoRoot(t), "deploy", "webhook", dir))
	return decodeWith(t, "kustomize webhook/"+dir, out, newWebhookObject)
}

// TestWebhookManifests checks each rendering of the webhook (kustomize's two forms, and the
// Helm chart's two TLS options; deploy/webhook_helm_test.go) on its own. base is the node
// rendering installed with it, whose policy ConfigMaps the webhook must share.
func TestWebhookManifests(t *testing.T) {
	kBase, hBase := renderKustomize(t, "base"), renderHelm(t)
	for _, c := range []struct {
		name        string
		r, base     *rendering
		certManager bool
	}{
		{"kustomize", renderWebhook(t, "."), kBase, true},
		{"kustomize-core", renderWebhook(t, "core"), kBase, false},
		{"helm", renderHelmWebhook(t, "webhook.enabled=true").webhookPart(), hBase, true},
		{"helm-existing-secret", renderHelmWebhook(t, helmSecretMode(testCABundle(t))...).webhookPart(), hBase, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, base := c.r, c.base
			for key := range r.objects {
				if key.Kind != "ValidatingWebhookConfiguration" && key.Namespace != ns {
					t.Errorf("%s: want namespace %s", key, ns)
				}
				if strings.Contains(key.Kind, "Role") {
					t.Errorf("%s: the webhook needs no RBAC", key)
				}
			}
			sa := get[*corev1.ServiceAccount](t, r, "ServiceAccount", ns, webhookName)
			if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
				t.Error("ServiceAccount must not automount a token: the webhook never calls the API server")
			}
			dep := get[*appsv1.Deployment](t, r, "Deployment", ns, webhookName)
			cfg := checkWebhookDeployment(t, base, dep)
			checkWebhookPDB(t, r, dep)
			svc := checkWebhookService(t, r, dep)
			checkWebhookConfiguration(t, r, svc, cfg, c.certManager)
			_, hasCert := r.objects[objectKey{"Certificate", ns, webhookName}]
			if hasCert != c.certManager {
				t.Errorf("Certificate rendered=%v, want %v", hasCert, c.certManager)
			}
			if c.certManager {
				checkCertificates(t, r, svc)
			}
		})
	}
}

// checkWebhookDeployment checks the pod and returns the configuration its arguments give
// `tollgated webhook` (parsed by the webhook's own flag parser).
func checkWebhookDeployment(t *testing.T, base *rendering, dep *appsv1.Deployment) admission.Config {
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", dep.Spec.Replicas)
	}
	sel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
	if err != nil || !sel.Matches(labels.Set(dep.Spec.Template.Labels)) {
		t.Fatalf("selector %v does not select the pod labels %v", dep.Spec.Selector, dep.Spec.Template.Labels)
	}
	if sel.Matches(labels.Set{"app.kubernetes.io/name": "tollgate", "app.kubernetes.io/component": "node-agent"}) {
		t.Error("the webhook's selector also selects the node agent's pods")
	}
	if ru := dep.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
		t.Errorf("strategy %+v: want maxUnavailable 0", dep.Spec.Strategy)
	}
	spec := dep.Spec.Template.Spec
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("pod must not mount a service account token")
	}
	if spec.HostNetwork {
		t.Error("the webhook needs no host network")
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("want one container, have %d", len(spec.Containers))
	}
	c := spec.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "webhook" || !slices.Equal(c.Command, []string{"/usr/local/bin/tollgated"}) {
		t.Fatalf("command %v args %v: want tollgated webhook ...", c.Command, c.Args)
	}
	cfg, err := admission.ParseArgs("tollgated webhook", withConfigFile(t, base, c.Args[1:]))
	if err != nil {
		t.Fatalf("tollgated webhook rejects the arguments: %v", err)
	}
	if !cfg.FailOpen || cfg.Timeout.D() >= admission.WebhookTimeout {
		t.Errorf("fail-open=%v timeout=%s: want fail-open and a deadline below %s", cfg.FailOpen, cfg.Timeout, admission.WebhookTimeout)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["webhook"] != 8443 || ports["metrics"] != 9091 || !strings.HasSuffix(cfg.Listen, ":8443") || !strings.HasSuffix(cfg.MetricsListen, ":9091") {
		t.Errorf("ports %v vs --listen=%s --metrics-listen=%s", ports, cfg.Listen, cfg.MetricsListen)
	}
	for path, p := range map[string]*corev1.Probe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port.String() != "metrics" || p.HTTPGet.Scheme == corev1.URISchemeHTTPS {
			t.Errorf("probe %s: %+v", path, p)
		}
	}
	sc, psc := c.SecurityContext, spec.SecurityContext
	switch {
	case sc == nil || psc == nil:
		t.Fatal("no securityContext")
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("readOnlyRootFilesystem must be true")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("allowPrivilegeEscalation must be false")
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}):
		t.Errorf("capabilities %+v: want drop ALL", sc.Capabilities)
	case psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0:
		t.Error("the webhook runs as a non-root user")
	}
	if c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
		t.Errorf("resources %+v: want a memory limit and a CPU request", c.Resources)
	}
	checkWebhookMounts(t, base, spec, c, cfg)
	return cfg
}

func checkWebhookMounts(t *testing.T, base *rendering, spec corev1.PodSpec, c corev1.Container, cfg admission.Config) {
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
	}
	tlsDir := filepath.Dir(cfg.TLSCertFile)
	if filepath.Dir(cfg.TLSKeyFile) != tlsDir {
		t.Errorf("certificate %s and key %s in different directories", cfg.TLSCertFile, cfg.TLSKeyFile)
	}
	m, ok := mounts[tlsDir]
	if !ok || !m.ReadOnly || m.SubPath != "" {
		t.Fatalf("%s: want a read-only mount of the whole Secret (a subPath never sees renewals): %+v", tlsDir, m)
	}
	if s := vols[m.Name].Secret; s == nil || s.SecretName != webhookSecret {
		t.Errorf("%s: want Secret %s, have %+v", tlsDir, webhookSecret, vols[m.Name])
	}
	pm, ok := mounts[cfg.PolicyDir]
	if !ok || !pm.ReadOnly {
		t.Fatalf("policy mount %s missing or writable", cfg.PolicyDir)
	}
	proj := vols[pm.Name].Projected
	if proj == nil || len(proj.Sources) != 3 {
		t.Fatalf("%s: want the node gate's three policy ConfigMaps, have %+v", cfg.PolicyDir, vols[pm.Name])
	}
	// The same ConfigMaps the DaemonSet mounts: one policy for both gates.
	ds := get[*appsv1.DaemonSet](t, base, "DaemonSet", ns, "tollgate")
	var dsSources []string
	for _, v := range ds.Spec.Template.Spec.Volumes {
		if v.Projected != nil {
			for _, s := range v.Projected.Sources {
				dsSources = append(dsSources, s.ConfigMap.Name)
			}
		}
	}
	for _, s := range proj.Sources {
		if s.ConfigMap == nil || !slices.Contains(dsSources, s.ConfigMap.Name) {
			t.Errorf("%s: source %+v is not one of the DaemonSet's policy ConfigMaps %v", cfg.PolicyDir, s, dsSources)
		}
	}
	cm, ok := mounts[cfg.CacheDir]
	if !ok || cm.ReadOnly || vols[cm.Name].EmptyDir == nil {
		t.Errorf("cache-dir %s: want a writable emptyDir, have %+v", cfg.CacheDir, cm)
	}
}

func checkWebhookPDB(t *testing.T, r *rendering, dep *appsv1.Deployment) {
	pdb := get[*policyv1.PodDisruptionBudget](t, r, "PodDisruptionBudget", ns, webhookName)
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 || pdb.Spec.MaxUnavailable != nil {
		t.Errorf("PDB %+v: want minAvailable 1", pdb.Spec)
	}
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil || !sel.Matches(labels.Set(dep.Spec.Template.Labels)) {
		t.Errorf("PDB selector %v does not select the webhook pods", pdb.Spec.Selector)
	}
}

func checkWebhookService(t *testing.T, r *rendering, dep *appsv1.Deployment) *corev1.Service {
	svc := get[*corev1.Service](t, r, "Service", ns, webhookName)
	if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(dep.Spec.Template.Labels)) {
		t.Errorf("Service selector %v does not select the webhook pods", svc.Spec.Selector)
	}
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		t.Error("the API server calls the webhook through a ClusterIP Service")
	}
	var https *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Name == "https" {
			https = &svc.Spec.Ports[i]
		}
	}
	if https == nil || https.Port != 443 || https.TargetPort.String() != "webhook" {
		t.Errorf("Service ports %+v: want https 443 → webhook", svc.Spec.Ports)
	}
	return svc
}

func checkWebhookConfiguration(t *testing.T, r *rendering, svc *corev1.Service, cfg admission.Config, certManager bool) {
	vwc := get[*admissionv1.ValidatingWebhookConfiguration](t, r, "ValidatingWebhookConfiguration", "", webhookName)
	if len(vwc.Webhooks) != 1 {
		t.Fatalf("want one webhook, have %d", len(vwc.Webhooks))
	}
	w := vwc.Webhooks[0]
	switch {
	case w.FailurePolicy == nil || *w.FailurePolicy != admissionv1.Ignore:
		t.Error("failurePolicy must be Ignore: the node gate is the guarantee, the webhook only early feedback")
	case w.SideEffects == nil || *w.SideEffects != admissionv1.SideEffectClassNone:
		t.Error("sideEffects must be None")
	case w.TimeoutSeconds == nil || *w.TimeoutSeconds != 10:
		t.Errorf("timeoutSeconds %v, want 10", w.TimeoutSeconds)
	case time.Duration(*w.TimeoutSeconds)*time.Second <= cfg.Timeout.D():
		t.Errorf("--timeout=%s is not below timeoutSeconds %d", cfg.Timeout, *w.TimeoutSeconds)
	case !slices.Equal(w.AdmissionReviewVersions, []string{"v1"}):
		t.Errorf("admissionReviewVersions %v, want [v1]", w.AdmissionReviewVersions)
	case w.MatchPolicy == nil || *w.MatchPolicy != admissionv1.Equivalent:
		t.Error("matchPolicy must be Equivalent, so other API versions arrive as v1")
	}
	s := w.ClientConfig.Service
	if s == nil || s.Name != svc.Name || s.Namespace != svc.Namespace || s.Path == nil || *s.Path != "/validate" ||
		s.Port == nil || *s.Port != 443 || w.ClientConfig.URL != nil {
		t.Errorf("clientConfig %+v: want service %s/%s:443 /validate", w.ClientConfig, svc.Namespace, svc.Name)
	}
	sel, err := metav1.LabelSelectorAsSelector(w.NamespaceSelector)
	if err != nil {
		t.Fatal(err)
	}
	nsLabels := func(name string, optIn bool) labels.Set {
		l := labels.Set{"kubernetes.io/metadata.name": name}
		if optIn {
			l[optInLabel] = "enabled"
		}
		return l
	}
	for name, want := range map[string]bool{"shop": true, "tollgate-system": false, "kube-system": false} {
		if got := sel.Matches(nsLabels(name, true)); got != want {
			t.Errorf("namespace %s with the opt-in label: selected=%v, want %v", name, got, want)
		}
	}
	if sel.Matches(nsLabels("shop", false)) {
		t.Error("a namespace without the opt-in label is selected")
	}
	covered := map[string]bool{}
	for _, rule := range w.Rules {
		if !slices.Contains(rule.Operations, admissionv1.Create) || !slices.Contains(rule.Operations, admissionv1.Update) {
			t.Errorf("rule %+v: want CREATE and UPDATE", rule)
		}
		for _, g := range rule.APIGroups {
			for _, res := range rule.Resources {
				covered[g+"/"+res] = true
			}
		}
	}
	for _, want := range []string{"/pods", "/pods/ephemeralcontainers", "apps/deployments", "apps/statefulsets",
		"apps/daemonsets", "apps/replicasets", "batch/jobs", "batch/cronjobs"} {
		if !covered[want] {
			t.Errorf("rules do not cover %s", want)
		}
	}
	inject, has := vwc.Annotations[injectCAAnnot]
	if has != certManager {
		t.Errorf("annotation %s present=%v, want %v", injectCAAnnot, has, certManager)
	}
	if certManager {
		nsName, name, _ := strings.Cut(inject, "/")
		get[*cmCertificate](t, r, "Certificate", nsName, name)
	}
}

// checkCertificates: the serving certificate names the Service and lands in the Secret the
// pod mounts; it is signed by a CA issuer whose CA comes from a self-signed issuer, so
// renewing the serving certificate leaves the injected caBundle unchanged.
func checkCertificates(t *testing.T, r *rendering, svc *corev1.Service) {
	cert := get[*cmCertificate](t, r, "Certificate", ns, webhookName)
	if cert.Spec.SecretName != webhookSecret || cert.Spec.IsCA {
		t.Errorf("serving Certificate %+v", cert.Spec)
	}
	host := svc.Name + "." + svc.Namespace + ".svc"
	if !slices.Contains(cert.Spec.DNSNames, host) {
		t.Errorf("dnsNames %v lack %s (the name the API server dials)", cert.Spec.DNSNames, host)
	}
	if !slices.Contains(cert.Spec.Usages, "server auth") {
		t.Errorf("usages %v lack server auth", cert.Spec.Usages)
	}
	if cert.Spec.IssuerRef.Kind != "Issuer" {
		t.Fatalf("issuerRef %+v", cert.Spec.IssuerRef)
	}
	caIssuer := get[*cmIssuer](t, r, "Issuer", ns, cert.Spec.IssuerRef.Name)
	if caIssuer.Spec.CA == nil {
		t.Fatalf("Issuer %s: want a CA issuer", caIssuer.Name)
	}
	var ca *cmCertificate
	for k, o := range r.objects {
		if c, ok := o.(*cmCertificate); ok && k.Kind == "Certificate" && c.Spec.SecretName == caIssuer.Spec.CA.SecretName {
			ca = c
		}
	}
	if ca == nil || !ca.Spec.IsCA {
		t.Fatalf("no CA Certificate writes Secret %s", caIssuer.Spec.CA.SecretName)
	}
	root := get[*cmIssuer](t, r, "Issuer", ns, ca.Spec.IssuerRef.Name)
	if root.Spec.SelfSigned == nil {
		t.Errorf("Issuer %s of the CA: want selfSigned", root.Name)
	}
}

// TestWebhookGenCerts runs gen-certs.sh (the openssl alternative to cert-manager) and
// checks what it writes: a CA, and a serving certificate for the Service signed by it.
func TestWebhookGenCerts(t *testing.T) {
	toolcheck.Require(t, "openssl")
	script := filepath.Join(repoRoot(t), "deploy", "webhook", "gen-certs.sh")
	out := filepath.Join(t.TempDir(), "certs")
	run(t, "bash", script, out)
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ca1, crt1 := read("ca.crt"), read("tls.crt")
	if _, err := tls.X509KeyPair(crt1, read("tls.key")); err != nil {
		t.Fatalf("tls.crt and tls.key do not pair: %v", err)
	}
	verifyServing(t, ca1, crt1)
	if fi, err := os.Stat(filepath.Join(out, "ca.key")); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("ca.key must be private: %v %v", fi.Mode(), err)
	}
	// Renewal keeps the CA (the caBundle) and issues a new serving certificate.
	run(t, "bash", script, out)
	if !bytes.Equal(read("ca.crt"), ca1) {
		t.Error("a second run replaced the CA")
	}
	if bytes.Equal(read("tls.crt"), crt1) {
		t.Error("a second run did not issue a new serving certificate")
	}
	verifyServing(t, ca1, read("tls.crt"))
}

func verifyServing(t *testing.T, caPEM, certPEM []byte) {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.crt holds no certificate")
	}
	blk, _ := pem.Decode(certPEM)
	if blk == nil {
		t.Fatal("tls.crt holds no PEM block")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"tollgate-webhook.tollgate-system.svc", "tollgate-webhook.tollgate-system.svc.cluster.local"} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("tls.crt for %s: %v", host, err)
		}
	}
}
