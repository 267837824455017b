package deploy

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	"tollgate.dev/tollgate/policy"
)

// TestShippedPoliciesLoad: what the manifests put in /etc/tollgate is a policy Set the
// daemon accepts (a bad shipped file would leave every node not ready).
func TestShippedPoliciesLoad(t *testing.T) {
	for _, r := range []*rendering{renderKustomize(t, "base"), renderHelm(t)} {
		files := map[string][]byte{}
		for _, name := range []string{"tollgate-policies", "tollgate-layouts", "tollgate-keys"} {
			cm := get[*corev1.ConfigMap](t, r, "ConfigMap", ns, name)
			for k, v := range cm.Data {
				if _, dup := files[k]; dup {
					t.Errorf("%s: file %s appears in two ConfigMaps; /etc/tollgate is one flat directory", r.name, k)
				}
				files[k] = []byte(v)
			}
		}
		if len(files) == 0 {
			t.Fatalf("%s: no policy files shipped", r.name)
		}
		if _, err := policy.Load(files, 1); err != nil {
			t.Errorf("%s: shipped policy files do not load: %v", r.name, err)
		}
	}
}
