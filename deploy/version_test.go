package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// TestOneVersion: the Makefile's VERSION is the tag `make image` gives the image, so every
// shipped manifest must name that tag and the chart must call it its appVersion. A DaemonSet
// naming another tag gets ErrImagePull on a node that imported the image `make image` built.
func TestOneVersion(t *testing.T) {
	mk, err := os.ReadFile(filepath.Join("..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^VERSION\s*\?=\s*(v\d+\.\d+\.\d+\S*)\s*$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("Makefile: no `VERSION ?= vX.Y.Z` line")
	}
	version := string(m[1])
	image := regexp.QuoteMeta("ghcr.io/tollgate-dev/tollgate:" + version)
	for file, want := range map[string]string{
		"kustomize/base/daemonset.yaml": `image: ` + image + `\n`,
		"webhook/core/deployment.yaml":  `image: ` + image + `\n`,
		"helm/tollgate/values.yaml":     `(?m)^  tag: ` + regexp.QuoteMeta(version) + `$`,
		"helm/tollgate/Chart.yaml":      `(?m)^appVersion: ` + regexp.QuoteMeta(version) + `$`,
	} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(want).Match(b) {
			t.Errorf("%s does not name version %s (want /%s/)", file, version, want)
		}
	}
}
