//go:build e2e

package e2e

import (
	"errors"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/test/tools/testimage"
)

// TestEnvironmentPlain proves the harness: containerd pulls from the loopback registry
// through CRI, runs a host-network pod and a container, and crictl sees it running.
func TestEnvironmentPlain(t *testing.T) {
	env := Start(t)
	app, err := env.PushImage("e2e/app:v1", testimage.Spec{Program: testimage.Sleeper, Variant: "plain"})
	if err != nil {
		t.Fatal(err)
	}
	if id := env.MustPull(t, app.Ref); id != app.ConfigDigest {
		t.Errorf("CRI image ID %s, want the pushed config digest %s", id, app.ConfigDigest)
	}
	info, err := env.InspectImage(app.Ref)
	if err != nil {
		t.Fatal(err)
	}
	if want := app.DigestRef(); !contains(info.RepoDigests, want) {
		t.Errorf("repo digests %v lack %s", info.RepoDigests, want)
	}

	pod := env.RunPod(t, "plain")
	id, err := env.RunContainer(pod, "app", app.Ref)
	if err != nil {
		t.Fatalf("run container: %v", err)
	}
	cs, err := env.Containers()
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, c := range cs {
		if c.ID == id {
			found = true
			if c.State != StateRunning {
				t.Errorf("crictl ps: container %.12s is %s, want %s", id, c.State, StateRunning)
			}
		}
	}
	if !found {
		t.Errorf("crictl ps -a does not list container %.12s: %+v", id, cs)
	}
	st, err := env.InspectContainer(id)
	if err != nil {
		t.Fatal(err)
	}
	if st.ImageID != app.ConfigDigest && !strings.Contains(st.ImageRef, app.Digest) {
		t.Errorf("container image %q / %q, want %s", st.ImageRef, st.ImageID, app.ConfigDigest)
	}
	if err := env.WaitContainerLog(id, `variant="plain"`, 10*time.Second); err != nil {
		t.Error(err)
	}
	t.Logf("container %.12s running image %s", id, app.ConfigDigest)
}

// TestRequiredPluginAbsent proves the fail-closed configuration: with required_plugins =
// ["tollgate"] and no tollgate connected, creation is rejected with a message naming the
// plugin, and the toleration annotation on the pod lets it through.
func TestRequiredPluginAbsent(t *testing.T) {
	env := Start(t, WithRequiredPlugin())
	app, err := env.PushImage("e2e/app:v1", testimage.Spec{Program: testimage.Sleeper, Variant: "required"})
	if err != nil {
		t.Fatal(err)
	}
	env.MustPull(t, app.Ref)

	t.Run("rejected", func(t *testing.T) {
		pod := env.RunPod(t, "strict")
		id, err := env.CreateContainer(pod, "app", app.Ref)
		if err == nil {
			t.Fatalf("container %.12s was created although required plugin %q is absent", id, PluginName)
		}
		var ce *CommandError
		if !errors.As(err, &ce) {
			t.Fatalf("create failed without a crictl error: %v", err)
		}
		msg := ce.Message()
		if !strings.Contains(msg, `required plugin "tollgate" not present`) {
			t.Fatalf("rejection does not name the missing plugin: %v", err)
		}
		if cs, err := env.Containers(); err != nil || len(cs) != 0 {
			t.Errorf("after the rejection crictl ps -a lists %v (%v), want nothing", cs, err)
		}
		t.Logf("rejected as expected: %s", msg)
	})
	t.Run("tolerated", func(t *testing.T) {
		pod := env.RunPod(t, "tolerant", WithTolerateMissingPlugin())
		id, err := env.RunContainer(pod, "app", app.Ref)
		if err != nil {
			t.Fatalf("tolerated pod: %v", err)
		}
		t.Logf("tolerated pod runs container %.12s", id)
	})
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
