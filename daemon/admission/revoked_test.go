package admission

import (
	"strings"
	"testing"
)

// TestRevokedDigest: while NodeDefaults revokes digests, images of exempt repositories are
// resolved too (otherwise decided from the repository alone), so a revoked one is denied
// with the node's message; a revoked verified image is denied as well.
func TestRevokedDigest(t *testing.T) {
	wh := startWebhook(t, nil)
	w := wh.w
	exempt, good := w.images["acme/exempt"], w.images["acme/good"]
	files := w.policyFiles(t)
	files["node-defaults.yaml"] = append(files["node-defaults.yaml"], []byte(`  revoked:
    digests: ["`+exempt.digest+`", "`+good.config+`"]
    reason: "CVE-2026-1234"
`)...)
	writeFiles(t, wh.policyDir, files)
	if changed, err := wh.srv.ReloadPolicy(); err != nil || !changed {
		t.Fatalf("reload: changed=%v err=%v", changed, err)
	}
	asked := w.count("acme/exempt")
	r := wh.send(t, fixture(t, "pod-create.json", map[string]string{
		"IMAGE": w.ref("acme/exempt"), "IMAGE2": w.ref("acme/good"), "IMAGE3": w.ref("acme/multi")}))
	if r.review.Response.Allowed {
		t.Fatalf("revoked images admitted: %s", r.raw)
	}
	for _, m := range []string{
		"tollgate: denied " + w.pinned("acme/exempt") + ": digest " + exempt.digest + " is revoked by NodeDefaults: CVE-2026-1234",
		"tollgate: denied " + w.pinned("acme/good") + ": config digest " + good.config + " is revoked by NodeDefaults: CVE-2026-1234",
	} {
		if !strings.Contains(r.message(), m) {
			t.Errorf("message %q lacks %q", r.message(), m)
		}
	}
	if got := strings.Join(r.causes(), ","); got != "spec.initContainers[0].image,spec.containers[0].image" {
		t.Errorf("causes %s, want the two revoked images only", got)
	}
	if w.count("acme/exempt") == asked {
		t.Error("the exempt repository was not resolved while digests are revoked")
	}
}
