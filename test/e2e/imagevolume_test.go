//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/nri/pkg/api"

	"tollgate.dev/tollgate/daemon/audit"
	"tollgate.dev/tollgate/test/tools/testimage"
)

// TestImageVolumeNRIView pins what containerd shows an NRI validator for a container with
// image volumes (KEP-4639), the facts docs/image-volumes.md and plugin/volumes.go rest on:
// a read-only bind mount from <state>/io.containerd.grpc.v1.cri/image-volumes/<sandbox
// id>/<hex of the image record's target> (the index for an index), and nothing else that
// names the volume's image.
func TestImageVolumeNRIView(t *testing.T) {
	env := Start(t, WithRequiredPlugin())
	fake := BuildBinary(t, "./test/e2e/fakeplugin")
	push := func(repoTag, variant string, index bool) *testimage.Pushed {
		spec := testimage.Spec{Program: testimage.Sleeper, Variant: variant}
		img, err := env.PushImage(repoTag, spec)
		if index {
			img, err = env.PushIndex(repoTag, spec)
		}
		if err != nil {
			t.Fatal(err)
		}
		env.MustPull(t, img.Ref)
		return img
	}
	app, vol, idx := push("e2e/app:v1", "app", false), push("e2e/vol:v1", "vol", false), push("e2e/volidx:v1", "volidx", true)
	dump := t.TempDir()
	if _, err := env.StartNRIPlugin("fake-dump", fake, "--nri-socket", env.NRISocket, "--mode", "allow", "--dump", dump); err != nil {
		t.Fatal(err)
	}
	pod := env.RunPod(t, "imgvol")
	id, err := env.RunContainer(pod, "reader", app.Ref, WithImageMount("/vol", vol.Ref), WithImageMount("/idx", idx.Ref),
		WithCommand("/vol/sleeper", "1h"))
	if err != nil {
		t.Fatalf("container with image volumes: %v", err)
	}
	raw, err := os.ReadFile(filepath.Join(dump, "reader.json"))
	if err != nil {
		t.Fatal(err)
	}
	var req api.ValidateContainerAdjustmentRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(env.Dir, "state", "io.containerd.grpc.v1.cri", "image-volumes", pod.ID)
	want := map[string]string{"/vol": vol.Digest, "/idx": idx.Digest}
	for _, m := range req.GetContainer().GetMounts() {
		d, ok := want[m.Destination]
		if !ok {
			continue
		}
		delete(want, m.Destination)
		wantSrc := filepath.Join(dir, strings.TrimPrefix(d, "sha256:"))
		if m.Source != wantSrc || m.Type != "bind" || !strings.Contains(strings.Join(m.Options, ","), "ro") {
			t.Errorf("mount %s: %s from %s %v; want a read-only bind from %s", m.Destination, m.Type, m.Source, m.Options, wantSrc)
		}
	}
	if len(want) > 0 {
		t.Errorf("no mount for %v among %v", want, req.GetContainer().GetMounts())
	}
	for _, hidden := range []string{vol.Ref, vol.ConfigDigest, idx.Ref, idx.ConfigDigest, idx.ManifestDigest} {
		if strings.Contains(string(raw), hidden) {
			t.Errorf("the request names %s somewhere; docs/image-volumes.md says it does not", hidden)
		}
	}
	// The container ran the volume's program: a verified container can run unverified code.
	if logs, _ := env.ContainerLogs(id); !strings.Contains(logs, `sleeper: variant="app"`) {
		t.Errorf("container logs %q: the volume's sleeper did not run", logs)
	}
	checkUnpulledVolume(t, env, pod, app.Ref)
}

// checkUnpulledVolume: containerd's CRI resolves an image volume's reference locally, so
// the image must be pulled before the create (the kubelet does).
func checkUnpulledVolume(t *testing.T, env *Env, pod *Pod, image string) {
	notPulled, err := env.PushImage("e2e/vol:never-pulled", testimage.Spec{Program: testimage.Sleeper, Variant: "np"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = env.CreateContainer(pod, "unpulled", image, WithImageMount("/vol", notPulled.Ref))
	if err == nil || !strings.Contains(errMessage(err), "image volume") {
		t.Errorf("image volume not pulled: got %v, want containerd's refusal", err)
	}
	t.Logf("image volume not pulled: %s", errMessage(err))
}

// TestImageVolumes is issue 15 part 3 on a real containerd: a signed container with an
// unsigned image volume is refused, naming the volume's image; with a signed volume it
// runs the volume's program; an audit-mode volume runs and its record says so.
func TestImageVolumes(t *testing.T) {
	env := Start(t, WithRequiredPlugin())
	g := newGate(t, env)
	g.pod = env.RunPod(t, "imgvol")
	g.start(t)
	app := g.pushSigned(t, "app:signed", "signed")
	signedVol := g.pushSigned(t, "app:vol-signed", "vol-signed")
	unsignedVol := g.push(t, "app:vol-unsigned", "vol-unsigned")
	auditedVol := g.push(t, "audited:vol", "vol-audited")
	for _, img := range []*testimage.Pushed{app, signedVol, unsignedVol, auditedVol} {
		g.pull(t, img)
	}
	run := WithCommand("/vol/sleeper", "1h")

	t.Run("unverified-volume-refused", func(t *testing.T) {
		_, err := env.CreateContainer(g.pod, g.name("unsigned-vol"), app.Ref, WithImageMount("/vol", unsignedVol.Ref), run)
		msg := errMessage(err)
		for _, w := range []string{`its image volume at "/vol"`, unsignedVol.Repository + "@", `policy "app"`, "no in-toto evidence found"} {
			if err == nil || !strings.Contains(msg, w) {
				t.Errorf("create with an unsigned image volume: %q lacks %q", msg, w)
			}
		}
		r := g.lastHook(t, unsignedVol)
		if r.Allowed || r.Subject != audit.SubjectVolume || r.Volume != "/vol" || !strings.Contains(r.Message, "/vol") {
			t.Errorf("audit record %+v, want a denial of the image volume at /vol", r)
		}
	})
	t.Run("verified-volume-runs", func(t *testing.T) {
		id, err := env.RunContainer(g.pod, g.name("signed-vol"), app.Ref, WithImageMount("/vol", signedVol.Ref), run)
		if err != nil {
			t.Fatalf("create with a signed image volume: %s", errMessage(err))
		}
		if logs, _ := env.ContainerLogs(id); !strings.Contains(logs, "sleeper: variant=") {
			t.Errorf("logs %q: the program from the volume did not run", logs)
		}
		if r := g.lastHook(t, app); !r.Allowed || r.Subject != audit.SubjectImage || r.Outcome != "verified" {
			t.Errorf("audit record %+v, want the container image's verified allowance", r)
		}
	})
	t.Run("audit-mode-volume-reported", func(t *testing.T) {
		if _, err := env.RunContainer(g.pod, g.name("audited-vol"), app.Ref, WithImageMount("/vol", auditedVol.Ref), run); err != nil {
			t.Fatalf("create with an audit-mode image volume: %s", errMessage(err))
		}
		r := g.lastHook(t, auditedVol)
		if !r.Allowed || r.Outcome != "audit_fail" || r.Subject != audit.SubjectVolume || r.Volume != "/vol" {
			t.Errorf("audit record %+v, want the volume's audit failure", r)
		}
	})
	t.Run("image-volume-directory-as-host-path-refused", func(t *testing.T) {
		dir := filepath.Join(env.Dir, "state", "io.containerd.grpc.v1.cri", "image-volumes")
		_, err := env.CreateContainer(g.pod, g.name("all-vols"), app.Ref, WithHostMount("/all", dir))
		if msg := errMessage(err); err == nil || !strings.Contains(msg, `its mount at "/all"`) || !strings.Contains(msg, "not one image volume") {
			t.Errorf("hostPath of the image-volume directory: got %q, want Tollgate's refusal", msg)
		}
	})
}
