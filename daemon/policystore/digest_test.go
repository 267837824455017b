package policystore

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"tollgate.dev/tollgate/daemon/metrics"
)

// The digest a node reports is the one docs/policy.md tells operators to compute with
// sha256sum, read through a ConfigMap-style mount (files behind ..data symbolic links),
// and it is in the log's snapshot, the tollgate_policy_info metric and /readyz.
func TestPolicyDigestReported(t *testing.T) {
	for _, tool := range []string{"find", "sort", "xargs", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found (coreutils/findutils): %v", tool, err)
		}
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "..2026_06_01_12_00_00.000000001")
	writeFile(t, filepath.Join(data, "policy.yaml"), "ok: 1")
	writeFile(t, filepath.Join(data, "keys", "a.pub"), "key")
	for _, l := range []struct{ target, name string }{
		{filepath.Base(data), "..data"}, {"..data/policy.yaml", "policy.yaml"}, {"..data/keys", "keys"},
	} {
		if err := os.Symlink(l.target, filepath.Join(dir, l.name)); err != nil {
			t.Fatal(err)
		}
	}
	m := metrics.New("test")
	s := New(dir, WithLoadFunc(fakeLoad), WithMetrics(m))
	if _, err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", `find -L . -type f ! -path '*/.*' -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum | sha256sum`)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "sha256:" + strings.Fields(string(out))[0]
	if got := s.Current().Digest; got != want {
		t.Fatalf("snapshot digest %s, want %s (as the documented sha256sum pipeline computes it)", got, want)
	}
	if v := metricValue(t, m, `tollgate_policy_info{digest="`+want+`"}`); v != 1 {
		t.Fatalf("tollgate_policy_info for %s = %v, want 1 (the generation)", want, v)
	}
	if ok, msg := s.Status(); !ok || !strings.Contains(msg, "policy digest "+want) {
		t.Fatalf("readiness %v %q does not name the digest", ok, msg)
	}
	// A new content: one series, the new digest's.
	writeFile(t, filepath.Join(data, "policy.yaml"), "ok: 2")
	if _, err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if metricValue(t, m, `tollgate_policy_info{digest="`+want+`"}`) != 0 || s.Current().Digest == want {
		t.Fatal("the old digest is still reported after a reload")
	}
	if v := metricValue(t, m, `tollgate_policy_info{digest="`+s.Current().Digest+`"}`); v != 2 {
		t.Fatalf("tollgate_policy_info after the reload = %v, want 2", v)
	}
}
