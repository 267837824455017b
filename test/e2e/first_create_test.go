//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/status"

	"tollgate.dev/tollgate/test/tools/testimage"
)

// registryDelay is how long the delaying proxy holds each registry request in the
// first-create test and benchmark (issue 16: a registry 20 ms away).
const registryDelay = 20 * time.Millisecond

// TestFirstCreateAfterPull: the first container of a freshly pulled, correctly signed
// image starts on the first try, even when every registry request takes 20 ms (issue 16):
// the hook waits, within its deadline, for the pre-verification the pull started. The pull
// and the create go straight through CRI, one after the other, as the kubelet sends them.
// An unsigned image pulled the same way is still refused, with the verdict rather than
// "pending". Each image is pre-verified once, whatever names containerd records for it.
func TestFirstCreateAfterPull(t *testing.T) {
	env := Start(t, WithRequiredPlugin())
	g := newGate(t, env)
	proxy, err := StartDelayProxy(env.Registry.Host, registryDelay)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	if err := env.AddRegistryHost(proxy.Host); err != nil {
		t.Fatal(err)
	}
	writeProxiedPolicy(t, g.policyDir, proxy.Host)
	g.extraArgs = []string{"--insecure-registry", proxy.Host}
	g.pod = env.RunPod(t, "first")
	g.start(t)
	cri, err := dialBenchCRI(env.Socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cri.Close() })
	ctx := context.Background()

	const tries = 5
	var signed []*testimage.Pushed
	for i := range tries {
		img := g.pushSigned(t, fmt.Sprintf("app:first-%d", i), fmt.Sprintf("first-%d", i))
		signed = append(signed, img)
		ref := proxiedRef(proxy, g.host, img)
		if err := cri.PullImage(ctx, ref); err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
		if err := firstCreate(ctx, cri, g.pod, fmt.Sprintf("first-%d", i), ref); err != nil {
			t.Errorf("first create of signed %s right after its pull through a %s registry was refused: %v",
				ref, registryDelay, err)
		}
	}

	unsigned := g.push(t, "app:first-unsigned", "first-unsigned")
	ref := proxiedRef(proxy, g.host, unsigned)
	if err := cri.PullImage(ctx, ref); err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	err = firstCreate(ctx, cri, g.pod, "first-unsigned", ref)
	switch msg := grpcMessage(err); {
	case err == nil:
		t.Errorf("unsigned %s was allowed", ref)
	case !strings.Contains(msg, "tollgate: denied") || !strings.Contains(msg, "no in-toto evidence found"):
		t.Errorf("unsigned %s: refused with %q, want the verdict on the fetched evidence (no in-toto evidence found)", ref, msg)
	}

	// One pre-verification per image content, and one audit record for it, although
	// containerd records each pulled image under three names.
	time.Sleep(time.Second) // late image events would show as more records
	for _, img := range append(signed, unsigned) {
		n := 0
		for _, r := range g.audits(t) {
			if r.Path == "preverify" && r.ConfigDigest == img.ConfigDigest {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: %d pre-verification audit records, want 1", img.Ref, n)
		}
	}
}

// firstCreate creates a container from ref once, and removes it if it was created.
func firstCreate(ctx context.Context, cri *benchCRI, pod *Pod, name, ref string) error {
	req, err := createRequest(pod, name, ref, "1h")
	if err != nil {
		return err
	}
	id, _, err := cri.CreateContainer(ctx, req)
	if err != nil {
		return err
	}
	return cri.RemoveContainer(ctx, id)
}

// grpcMessage is the message of a CRI error (containerd's reason, which carries the
// plugin's), or "" for nil.
func grpcMessage(err error) string {
	if err == nil {
		return ""
	}
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus().Message()
	}
	return err.Error()
}

// proxiedRef is img's tag reference through the proxy instead of the registry.
func proxiedRef(p *DelayProxy, registryHost string, img *testimage.Pushed) string {
	return p.Ref(strings.TrimPrefix(img.Ref, registryHost+"/"))
}

// writeProxiedPolicy adds policy "app" again for the repositories under the proxy's host:
// an image's repository names the host it was pulled from.
func writeProxiedPolicy(t *testing.T, policyDir, proxyHost string) {
	t.Helper()
	writeFile(t, filepath.Join(policyDir, "proxied.yaml"), fmt.Sprintf(`apiVersion: tollgate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: app-proxied
spec:
  images: ["%[1]s/e2e/app"]
  mode: enforce
  layouts:
    - layout: app.layout
      keys: [owner.pub]
  attestations:
    - name: provenance
      predicateType: slsa-v1
      keys: [ci.pub]
      conditions:
        - provenance.builderId == "%[2]s"
`, proxyHost, builderID))
}
