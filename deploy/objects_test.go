package deploy

import (
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"tollgate.dev/tollgate/test/toolcheck"
)

// ServiceMonitor and PrometheusRule are monitoring.coreos.com/v1 objects. Only the fields
// Tollgate uses are modelled, so strict decoding also catches a field we did not mean to set.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Interval      string `json:"interval"`
			ScrapeTimeout string `json:"scrapeTimeout"`
			Relabelings   []struct {
				SourceLabels []string `json:"sourceLabels"`
				TargetLabel  string   `json:"targetLabel"`
				Action       string   `json:"action"`
			} `json:"relabelings"`
		} `json:"endpoints"`
	} `json:"spec"`
}

type prometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				For         string            `json:"for,omitempty"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// newObject returns an empty typed object for an apiVersion/kind that Tollgate ships.
func newObject(apiVersion, kind string) (any, bool) {
	switch apiVersion + " " + kind {
	case "v1 Namespace":
		return &corev1.Namespace{}, true
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}, true
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, true
	case "v1 Service":
		return &corev1.Service{}, true
	case "apps/v1 DaemonSet":
		return &appsv1.DaemonSet{}, true
	case "admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy":
		return &admissionv1.ValidatingAdmissionPolicy{}, true
	case "admissionregistration.k8s.io/v1 ValidatingAdmissionPolicyBinding":
		return &admissionv1.ValidatingAdmissionPolicyBinding{}, true
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return &serviceMonitor{}, true
	case "monitoring.coreos.com/v1 PrometheusRule":
		return &prometheusRule{}, true
	}
	return nil, false
}

// objectKey names an object the way both renderings must agree on.
type objectKey struct{ Kind, Namespace, Name string }

func (k objectKey) String() string { return k.Kind + " " + k.Namespace + "/" + k.Name }

// rendering is one tool's output, decoded.
type rendering struct {
	name    string
	objects map[objectKey]any
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decodeAll splits a multi-document YAML stream and decodes each document strictly into
// its Kubernetes type: an unknown field, a wrong type or an unknown kind fails the test.
func decodeAll(t *testing.T, name string, stream []byte) *rendering {
	t.Helper()
	return decodeWith(t, name, stream, newObject)
}

// decodeWith is decodeAll for the kinds newObj knows (newWebhookObject adds the webhook's).
func decodeWith(t *testing.T, name string, stream []byte, newObj func(apiVersion, kind string) (any, bool)) *rendering {
	t.Helper()
	r := &rendering{name: name, objects: map[objectKey]any{}}
	for i, doc := range docSeparator.Split(string(stream), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var tm struct {
			metav1.TypeMeta `json:",inline"`
			Metadata        struct{ Name, Namespace string } `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("%s: document %d: %v", name, i, err)
		}
		obj, ok := newObj(tm.APIVersion, tm.Kind)
		if !ok {
			t.Fatalf("%s: document %d: unexpected object %s %s", name, i, tm.APIVersion, tm.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatalf("%s: %s %s: strict decode: %v", name, tm.Kind, tm.Metadata.Name, err)
		}
		key := objectKey{tm.Kind, tm.Metadata.Namespace, tm.Metadata.Name}
		if _, dup := r.objects[key]; dup {
			t.Fatalf("%s: %s rendered twice", name, key)
		}
		r.objects[key] = obj
	}
	return r
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func (r *rendering) keys() []string {
	var out []string
	for k := range r.objects {
		out = append(out, k.String())
	}
	sort.Strings(out)
	return out
}

// get returns the object of the given kind and name, failing when absent.
func get[T any](t *testing.T, r *rendering, kind, namespace, name string) T {
	t.Helper()
	obj, ok := r.objects[objectKey{kind, namespace, name}]
	if !ok {
		t.Fatalf("%s: no %s %s/%s; have %v", r.name, kind, namespace, name, r.keys())
	}
	typed, ok := obj.(T)
	if !ok {
		t.Fatalf("%s: %s %s has type %T", r.name, kind, name, obj)
	}
	return typed
}

func renderKustomize(t *testing.T, dir string) *rendering {
	t.Helper()
	bin := toolcheck.Require(t, "kustomize")
	out := run(t, bin, "build", filepath.Join(repoRoot(t), "deploy", "kustomize", dir))
	return decodeAll(t, "kustomize "+dir, out)
}

func renderHelm(t *testing.T, set ...string) *rendering {
	t.Helper()
	return decodeAll(t, fmt.Sprintf("helm %v", set), helmTemplate(t, set...))
}

// helmTemplate runs `helm template` on the chart, with --set for each of set.
func helmTemplate(t *testing.T, set ...string) []byte {
	t.Helper()
	return run(t, toolcheck.Require(t, "helm"), helmArgs(t, set...)...)
}

func helmArgs(t *testing.T, set ...string) []string {
	t.Helper()
	args := []string{"template", "tollgate", filepath.Join(repoRoot(t), "deploy", "helm", "tollgate")}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return args
}
