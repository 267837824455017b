package deploy

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"

	"tollgate.dev/tollgate/daemon"
)

const (
	ns             = "tollgate-system"
	tolerateAnnot  = "tollgate.dev/tolerate-missing-plugin"
	metricsPort    = 9090
	metricsPortStr = "metrics"
)

// helmOnlyLabels are Helm's bookkeeping labels: allowed on object metadata only.
var helmOnlyLabels = map[string]bool{
	"helm.sh/chart": true, "app.kubernetes.io/managed-by": true, "app.kubernetes.io/version": true,
}

// TestRenderings checks each rendering on its own against what a node needs.
func TestRenderings(t *testing.T) {
	for _, r := range []*rendering{renderKustomize(t, "base"), renderHelm(t)} {
		t.Run(r.name, func(t *testing.T) { checkRendering(t, r) })
	}
}

// TestKustomizeAndHelmAgree: the two ways to install render the same objects.
func TestKustomizeAndHelmAgree(t *testing.T) {
	cases := []struct {
		name string
		k    *rendering
		h    *rendering
	}{
		{"base", renderKustomize(t, "base"), renderHelm(t)},
		{"monitoring", renderKustomize(t, "monitoring"), renderHelm(t, "monitoring.enabled=true")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if k, h := c.k.keys(), c.h.keys(); !reflect.DeepEqual(k, h) {
				t.Fatalf("object sets differ:\nkustomize %v\nhelm      %v", k, h)
			}
			for key, kobj := range c.k.objects {
				compareObjects(t, key, kobj, c.h.objects[key])
			}
		})
	}
}

// compareObjects requires equal contents and labels that differ only by Helm bookkeeping.
func compareObjects(t *testing.T, key objectKey, k, h any) {
	t.Helper()
	kv, hv := reflect.ValueOf(k).Elem(), reflect.ValueOf(h).Elem()
	for i := 0; i < kv.NumField(); i++ {
		name := kv.Type().Field(i).Name
		if name == "ObjectMeta" {
			continue
		}
		if !reflect.DeepEqual(kv.Field(i).Interface(), hv.Field(i).Interface()) {
			t.Errorf("%s: field %s differs\nkustomize: %+v\nhelm:      %+v", key, name, kv.Field(i).Interface(), hv.Field(i).Interface())
		}
	}
	kl := kv.FieldByName("ObjectMeta").FieldByName("Labels").Interface().(map[string]string)
	hl := hv.FieldByName("ObjectMeta").FieldByName("Labels").Interface().(map[string]string)
	for l, v := range hl {
		if !helmOnlyLabels[l] && kl[l] != v {
			t.Errorf("%s: label %s=%q from helm, %q from kustomize", key, l, v, kl[l])
		}
	}
	for l := range kl {
		if _, ok := hl[l]; !ok {
			t.Errorf("%s: label %s missing from helm", key, l)
		}
	}
	ka := kv.FieldByName("ObjectMeta").FieldByName("Annotations").Interface()
	ha := hv.FieldByName("ObjectMeta").FieldByName("Annotations").Interface()
	if !reflect.DeepEqual(ka, ha) {
		t.Errorf("%s: annotations differ: %v vs %v", key, ka, ha)
	}
}

func checkRendering(t *testing.T, r *rendering) {
	get[*corev1.Namespace](t, r, "Namespace", "", ns)
	sa := get[*corev1.ServiceAccount](t, r, "ServiceAccount", ns, "tollgate")
	if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Error("ServiceAccount must not automount a token: tollgated never calls the API server")
	}
	for key := range r.objects {
		if key.Kind != "Namespace" && !strings.HasPrefix(key.Kind, "ValidatingAdmissionPolicy") && key.Namespace != ns {
			t.Errorf("%s: want namespace %s", key, ns)
		}
		if strings.HasPrefix(key.Kind, "Role") || strings.HasPrefix(key.Kind, "ClusterRole") {
			t.Errorf("%s: tollgated needs no RBAC", key)
		}
	}
	ds := get[*appsv1.DaemonSet](t, r, "DaemonSet", ns, "tollgate")
	checkDaemonSet(t, r, ds)
	checkService(t, r, ds)
	checkAdmissionPolicy(t, r)
}

func checkDaemonSet(t *testing.T, r *rendering, ds *appsv1.DaemonSet) {
	spec := ds.Spec.Template.Spec
	sel, err := metav1LabelSelector(ds)
	if err != nil || !sel.Matches(labels.Set(ds.Spec.Template.Labels)) {
		t.Errorf("selector %v does not select the pod template labels %v (%v)", ds.Spec.Selector, ds.Spec.Template.Labels, err)
	}
	if u := ds.Spec.UpdateStrategy; u.Type != appsv1.RollingUpdateDaemonSetStrategyType || u.RollingUpdate == nil ||
		u.RollingUpdate.MaxUnavailable == nil || u.RollingUpdate.MaxUnavailable.String() != "10%" {
		t.Errorf("update strategy %+v: want RollingUpdate with maxUnavailable 10%%", u)
	}
	if v, err := strconv.ParseBool(ds.Spec.Template.Annotations[tolerateAnnot]); err != nil || !v {
		t.Errorf("pod annotation %s=%q: NRI parses it with strconv.ParseBool and needs true", tolerateAnnot, ds.Spec.Template.Annotations[tolerateAnnot])
	}
	if !hasExistsToleration(spec.Tolerations) {
		t.Errorf("tolerations %v: want operator Exists with no key, to run on every node", spec.Tolerations)
	}
	if spec.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName %q", spec.PriorityClassName)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("pod must not mount a service account token")
	}
	if !spec.HostNetwork || spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Error("tollgated must use the host network (the CNI agent waits for it) with ClusterFirstWithHostNet")
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("want one container, have %d", len(spec.Containers))
	}
	c := spec.Containers[0]
	checkProbesAndPorts(t, c)
	checkSecurity(t, c)
	checkResources(t, c)
	checkEnvAndArgs(t, c)
	checkMounts(t, r, spec, c)
}

func metav1LabelSelector(ds *appsv1.DaemonSet) (labels.Selector, error) {
	return labels.ValidatedSelectorFromSet(ds.Spec.Selector.MatchLabels)
}

func hasExistsToleration(ts []corev1.Toleration) bool {
	for _, tl := range ts {
		if tl.Operator == corev1.TolerationOpExists && tl.Key == "" && tl.Effect == "" {
			return true
		}
	}
	return false
}

func checkProbesAndPorts(t *testing.T, c corev1.Container) {
	if len(c.Ports) != 1 || c.Ports[0].Name != metricsPortStr || c.Ports[0].ContainerPort != metricsPort {
		t.Errorf("ports %+v: want one port %q on %d", c.Ports, metricsPortStr, metricsPort)
	}
	for name, p := range map[string]*corev1.Probe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != name || p.HTTPGet.Port.String() != metricsPortStr {
			t.Errorf("probe for %s: %+v", name, p)
		}
	}
}

func checkSecurity(t *testing.T, c corev1.Container) {
	sc := c.SecurityContext
	if sc == nil {
		t.Fatal("container has no securityContext")
	}
	switch {
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("readOnlyRootFilesystem must be true")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("allowPrivilegeEscalation must be false")
	case sc.Privileged != nil && *sc.Privileged:
		t.Error("must not be privileged")
	case sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0:
		t.Errorf("capabilities %+v: want drop ALL, add none", sc.Capabilities)
	}
	// Root is deliberate (root-owned sockets); it must be explicit, not inherited from the image.
	if sc.RunAsUser == nil || *sc.RunAsUser != 0 || sc.RunAsNonRoot == nil || *sc.RunAsNonRoot {
		t.Errorf("want explicit runAsUser 0 and runAsNonRoot false, have %v/%v", sc.RunAsUser, sc.RunAsNonRoot)
	}
}

func checkResources(t *testing.T, c corev1.Container) {
	want := map[string]resource.Quantity{
		"requests.cpu": resource.MustParse("20m"), "requests.memory": resource.MustParse("48Mi"),
		"limits.memory": resource.MustParse("128Mi"),
	}
	have := map[string]resource.Quantity{}
	for n, q := range c.Resources.Requests {
		have["requests."+string(n)] = q
	}
	for n, q := range c.Resources.Limits {
		have["limits."+string(n)] = q
	}
	if len(have) != len(want) {
		t.Errorf("resources %v: want exactly %v (no CPU limit)", have, want)
	}
	for k, w := range want {
		if h, ok := have[k]; !ok || h.Cmp(w) != 0 {
			t.Errorf("resources %s = %v, want %v", k, have[k], w)
		}
	}
}

// briefFlags are the tollgated flags listed in BRIEF.md.
func briefFlags(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "dev", "BRIEF.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	start := strings.Index(s, "- tollgated flags:")
	end := strings.Index(s[start:], "\n- Metrics:")
	if start < 0 || end < 0 {
		t.Fatal("BRIEF.md: tollgated flags section not found")
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile("`(--[a-z-]+)").FindAllStringSubmatch(s[start:start+end], -1) {
		flags[m[1]] = true
	}
	return flags
}

func checkEnvAndArgs(t *testing.T, c corev1.Container) {
	var nodeName *corev1.EnvVar
	for i := range c.Env {
		if c.Env[i].Name == "NODE_NAME" {
			nodeName = &c.Env[i]
		}
	}
	if nodeName == nil || nodeName.ValueFrom == nil || nodeName.ValueFrom.FieldRef == nil ||
		nodeName.ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("NODE_NAME must come from fieldRef spec.nodeName: %+v", nodeName)
	}
	known := briefFlags(t)
	args := map[string]string{}
	for _, a := range c.Args {
		name, val, _ := strings.Cut(a, "=")
		if !known[name] {
			t.Errorf("arg %q: not a tollgated flag in BRIEF.md", a)
		}
		args[name] = val
	}
	for flag, want := range map[string]string{
		"--node-name": "$(NODE_NAME)", "--plugin-name": "tollgate", "--plugin-index": "10",
		"--listen": ":9090", "--policy-dir": "/etc/tollgate",
	} {
		if args[flag] != want {
			t.Errorf("%s=%q, want %q", flag, args[flag], want)
		}
	}
}

// checkMounts: every host path tollgated uses is mounted, with the right hostPath type,
// and every path flag points inside a mount.
func checkMounts(t *testing.T, r *rendering, spec corev1.PodSpec, c corev1.Container) {
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
	}
	hostPaths := map[string]corev1.HostPathType{
		"/var/run/nri":      corev1.HostPathDirectoryOrCreate,
		"/run/containerd":   corev1.HostPathDirectory,
		"/var/lib/tollgate": corev1.HostPathDirectoryOrCreate,
		"/var/log/tollgate": corev1.HostPathDirectoryOrCreate,
	}
	for path, typ := range hostPaths {
		m, ok := mounts[path]
		if !ok {
			t.Errorf("no mount at %s", path)
			continue
		}
		hp := vols[m.Name].HostPath
		if hp == nil || hp.Path != path || hp.Type == nil || *hp.Type != typ {
			t.Errorf("mount %s: volume %+v, want hostPath %s type %s", path, vols[m.Name], path, typ)
		}
		// containerd's directory is only connected to; tollgated writes everywhere else.
		if wantRO := path == "/run/containerd"; m.ReadOnly != wantRO {
			t.Errorf("mount %s: readOnly=%v, want %v", path, m.ReadOnly, wantRO)
		}
	}
	pm, ok := mounts["/etc/tollgate"]
	if !ok || !pm.ReadOnly {
		t.Fatalf("policy mount /etc/tollgate missing or writable: %+v", pm)
	}
	proj := vols[pm.Name].Projected
	if proj == nil {
		t.Fatalf("/etc/tollgate: want a projected volume of the policy ConfigMaps, have %+v", vols[pm.Name])
	}
	for _, src := range proj.Sources {
		if src.ConfigMap == nil {
			t.Errorf("/etc/tollgate: non-ConfigMap source %+v", src)
			continue
		}
		get[*corev1.ConfigMap](t, r, "ConfigMap", ns, src.ConfigMap.Name)
	}
	if len(proj.Sources) != 3 {
		t.Errorf("/etc/tollgate: want policies, layouts and keys, have %d sources", len(proj.Sources))
	}
	if _, ok := mounts["/tmp"]; !ok {
		t.Error("read-only root filesystem needs a writable /tmp")
	}
	for _, a := range c.Args {
		_, val, _ := strings.Cut(a, "=")
		if !strings.HasPrefix(val, "/") {
			continue
		}
		if !underMount(val, mounts) {
			t.Errorf("%s points outside every mount", a)
		}
	}
}

func underMount(path string, mounts map[string]corev1.VolumeMount) bool {
	for mp := range mounts {
		if path == mp || strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/") {
			return true
		}
	}
	return false
}

func checkService(t *testing.T, r *rendering, ds *appsv1.DaemonSet) {
	svc := get[*corev1.Service](t, r, "Service", ns, "tollgate-metrics")
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("metrics Service must be headless, clusterIP=%q", svc.Spec.ClusterIP)
	}
	if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(ds.Spec.Template.Labels)) {
		t.Errorf("Service selector %v does not select the DaemonSet pods %v", svc.Spec.Selector, ds.Spec.Template.Labels)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != metricsPortStr || svc.Spec.Ports[0].TargetPort.String() != metricsPortStr {
		t.Errorf("Service ports %+v", svc.Spec.Ports)
	}
}

func checkAdmissionPolicy(t *testing.T, r *rendering) {
	vap := get[*admissionv1.ValidatingAdmissionPolicy](t, r, "ValidatingAdmissionPolicy", "", "tollgate-tolerate-annotation")
	if len(vap.Spec.Validations) != 1 || !strings.Contains(vap.Spec.Validations[0].Expression, tolerateAnnot) {
		t.Errorf("admission policy must refuse %s: %+v", tolerateAnnot, vap.Spec.Validations)
	}
	b := get[*admissionv1.ValidatingAdmissionPolicyBinding](t, r, "ValidatingAdmissionPolicyBinding", "", "tollgate-tolerate-annotation")
	if b.Spec.PolicyName != vap.Name || !reflect.DeepEqual(b.Spec.ValidationActions, []admissionv1.ValidationAction{admissionv1.Deny}) {
		t.Errorf("binding %+v", b.Spec)
	}
	sel := b.Spec.MatchResources.NamespaceSelector
	if sel == nil || len(sel.MatchExpressions) != 1 || !contains(sel.MatchExpressions[0].Values, ns) {
		t.Errorf("binding must exempt %s (the DaemonSet needs the annotation): %+v", ns, sel)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestHelmValues: the chart's knobs change what they say and nothing else.
func TestHelmValues(t *testing.T) {
	r := renderHelm(t, "namespace.create=false", "insecureRegistries={registry.local:5000}",
		"admissionPolicy.enabled=false", "layouts.api\\.layout=x")
	if _, ok := r.objects[objectKey{"Namespace", "", ns}]; ok {
		t.Error("namespace.create=false still renders the Namespace")
	}
	if _, ok := r.objects[objectKey{"ValidatingAdmissionPolicy", "", "tollgate-tolerate-annotation"}]; ok {
		t.Error("admissionPolicy.enabled=false still renders the policy")
	}
	ds := get[*appsv1.DaemonSet](t, r, "DaemonSet", ns, "tollgate")
	cfg := daemon.DefaultConfig()
	if err := cfg.LoadFile(configFile(t, r)); err != nil || !reflect.DeepEqual(cfg.InsecureRegistries, []string{"registry.local:5000"}) {
		t.Errorf("insecureRegistries not in tollgate-config: %v, %v", cfg.InsecureRegistries, err)
	}
	if !contains(ds.Spec.Template.Spec.Containers[0].Args, "--config="+configPath) {
		t.Errorf("the DaemonSet does not read tollgate-config: %v", ds.Spec.Template.Spec.Containers[0].Args)
	}
	if cm := get[*corev1.ConfigMap](t, r, "ConfigMap", ns, "tollgate-layouts"); cm.Data["api.layout"] != "x" {
		t.Errorf("layouts value not rendered: %v", cm.Data)
	}
	if cm := get[*corev1.ConfigMap](t, r, "ConfigMap", ns, "tollgate-policies"); cm.Data["node-defaults.yaml"] == "" {
		t.Errorf("chart's default policy lost when other values are set: %v", cm.Data)
	}
}

// configPath is where the DaemonSet and the webhook mount the tollgate-config ConfigMap.
const configPath = "/etc/tollgate-config/tollgated.yaml"

// configFile writes the rendering's tollgate-config file (the kustomize base's when the
// rendering has none, as deploy/webhook reads the base's) to a temporary file.
func configFile(t *testing.T, r *rendering) string {
	t.Helper()
	var data string
	if obj, ok := r.objects[objectKey{"ConfigMap", ns, "tollgate-config"}]; ok {
		data = obj.(*corev1.ConfigMap).Data["tollgated.yaml"]
	} else {
		b, err := os.ReadFile(filepath.Join("kustomize", "base", "config", "tollgated.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		data = string(b)
	}
	p := filepath.Join(t.TempDir(), "tollgated.yaml")
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// withConfigFile points a --config argument at the rendering's tollgate-config file, so that
// parsing the arguments reads what a pod would read.
func withConfigFile(t *testing.T, r *rendering, args []string) []string {
	t.Helper()
	out := make([]string, len(args))
	for i, a := range args {
		if a == "--config="+configPath {
			a = "--config=" + configFile(t, r)
		}
		out[i] = a
	}
	return out
}
