//go:build e2e

package e2e

import (
	"testing"
	"time"

	"tollgate.dev/tollgate/test/tools/testimage"
)

// TestContainerdRestart checks that a running container survives a containerd restart and
// that teardown cleans up after a containerd that was killed with containers running
// (stray shims and containers, rootfs and shm mounts, cgroups).
func TestContainerdRestart(t *testing.T) {
	env := Start(t)
	app, err := env.PushImage("e2e/app:v1", testimage.Spec{Program: testimage.Sleeper, Variant: "restart"})
	if err != nil {
		t.Fatal(err)
	}
	env.MustPull(t, app.Ref)
	pod := env.RunPod(t, "survivor")
	id, err := env.RunContainer(pod, "app", app.Ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.RestartContainerd(); err != nil {
		t.Fatal(err)
	}
	if err := env.WaitContainerState(id, StateRunning, 10*time.Second); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if err := env.KillContainerd(); err != nil {
		t.Fatal(err)
	}
	if env.ContainerdRunning() {
		t.Fatal("containerd still running after KillContainerd")
	}
}

// TestIndexImage runs a container from a multi-platform index: containerd picks the host
// platform's manifest, whose config digest becomes the image ID.
func TestIndexImage(t *testing.T) {
	env := Start(t)
	idx, err := env.PushIndex("e2e/multi:v1", testimage.Spec{Program: testimage.Sleeper, Variant: "index"})
	if err != nil {
		t.Fatal(err)
	}
	if id := env.MustPull(t, idx.Ref); id != idx.ConfigDigest {
		t.Errorf("image ID %s, want host platform config %s", id, idx.ConfigDigest)
	}
	pod := env.RunPod(t, "multi")
	if _, err := env.RunContainer(pod, "app", idx.Ref); err != nil {
		t.Fatal(err)
	}
}
