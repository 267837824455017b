package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The shipped example policies must load. Their keys and layouts are generated here.
func TestExamplePolicies(t *testing.T) {
	paths, err := filepath.Glob("../examples/policies/*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no example policies found (%v)", err)
	}
	d := dir{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		d[filepath.Base(p)] = b
	}
	// /etc/tollgate is one flat directory (three ConfigMaps projected into it).
	for _, name := range []string{"owner", "ci", "release-1", "release-2"} {
		d[name+".pub"] = publicPEM(t, signer(t, name))
	}
	d["api.layout"] = layout(t, testNow.Add(time.Hour), threeSteps(t), imageInspectionSpec(), signer(t, "owner"))
	s, err := Load(d, 1)
	if err != nil {
		t.Fatalf("example policies do not load: %v", err)
	}
	if got := strings.Join(s.Policies(), ","); got != "api,platform" {
		t.Fatalf("policies %s", got)
	}
	// The API image needs its evidence; an unrelated image is denied by the node default.
	if dec := s.Evaluate(testRequest(), Evidence{}, testNow); dec.Allowed || dec.Outcome != Denied {
		t.Errorf("api image without evidence: %s", dec.Message)
	}
	req := testRequest()
	req.Image.Repository = "docker.io/library/busybox"
	if dec := s.Evaluate(req, Evidence{}, testNow); dec.Allowed || dec.Outcome != Unmatched {
		t.Errorf("unmatched image: %s", dec.Message)
	}
	req.Image.Repository = "registry.k8s.io/pause"
	if dec := s.Evaluate(req, Evidence{}, testNow); !dec.Allowed || dec.Outcome != Exempt {
		t.Errorf("pause image: %s", dec.Message)
	}
}
