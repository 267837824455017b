//go:build e2e

package e2e

import (
	"errors"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/test/tools/testimage"
)

// TestRequiredPluginPresent checks the NRI wiring with a stand-in plugin named "tollgate":
// connected and allowing, the container runs; denying, its message reaches crictl; killed,
// the default validator rejects again.
func TestRequiredPluginPresent(t *testing.T) {
	env := Start(t, WithRequiredPlugin())
	fake := BuildBinary(t, "./test/e2e/fakeplugin")
	app, err := env.PushImage("e2e/app:v1", testimage.Spec{Program: testimage.Sleeper, Variant: "nri"})
	if err != nil {
		t.Fatal(err)
	}
	env.MustPull(t, app.Ref)

	allow, err := env.StartNRIPlugin("fake-allow", fake, "--nri-socket", env.NRISocket, "--mode", "allow")
	if err != nil {
		t.Fatal(err)
	}
	pod := env.RunPod(t, "guarded")
	if _, err := env.RunContainer(pod, "allowed", app.Ref); err != nil {
		t.Fatalf("allowing plugin connected, create failed: %v", err)
	}
	if !strings.Contains(allow.Log(), "fakeplugin: allowed allowed "+app.Ref) {
		t.Errorf("plugin did not see the create:\n%s", allow.Log())
	}
	_ = allow.Stop(5 * time.Second)

	deny, err := env.StartNRIPlugin("fake-deny", fake, "--nri-socket", env.NRISocket, "--mode", "deny", "--message", "tollgate: denied")
	if err != nil {
		t.Fatal(err)
	}
	_, err = env.CreateContainer(pod, "denied", app.Ref)
	var ce *CommandError
	if !errors.As(err, &ce) || !strings.Contains(ce.Message(), "tollgate: denied "+app.Ref) {
		t.Fatalf("denying plugin: got %v, want its message", err)
	}
	t.Logf("denied as expected: %s", ce.Message())

	// Crash: the create that finds the dead connection fails in the validator call itself
	// ("validator plugin 10-tollgate failed: ttrpc: closed"); NRI then drops the plugin and
	// every later create meets the default validator's "not present". Both are rejections.
	_ = deny.Kill()
	_, err = env.CreateContainer(pod, "orphaned", app.Ref)
	if !errors.As(err, &ce) || !strings.Contains(ce.Message(), "tollgate") {
		t.Fatalf("first create after the plugin was killed: got %v, want a rejection", err)
	}
	t.Logf("first create after kill rejected: %s", ce.Message())
	_, err = env.CreateContainer(pod, "orphaned2", app.Ref)
	if !errors.As(err, &ce) || !strings.Contains(ce.Message(), `required plugin "tollgate" not present`) {
		t.Fatalf("second create after the plugin was killed: got %v, want the default validator's rejection", err)
	}
}

// TestPluginHang checks that a plugin exceeding plugin_request_timeout in the validator
// hook fails the create (fail-closed with the default validator), and the create after it.
func TestPluginHang(t *testing.T) {
	env := Start(t, WithRequiredPlugin(), WithPluginRequestTimeout(time.Second))
	fake := BuildBinary(t, "./test/e2e/fakeplugin")
	app, err := env.PushImage("e2e/app:v1", testimage.Spec{Program: testimage.Sleeper, Variant: "hang"})
	if err != nil {
		t.Fatal(err)
	}
	env.MustPull(t, app.Ref)
	if _, err := env.StartNRIPlugin("fake-hang", fake, "--nri-socket", env.NRISocket, "--mode", "hang"); err != nil {
		t.Fatal(err)
	}
	pod := env.RunPod(t, "stalled")
	for _, name := range []string{"first", "second"} {
		_, err := env.CreateContainer(pod, name, app.Ref)
		var ce *CommandError
		if !errors.As(err, &ce) {
			t.Fatalf("%s create with a hanging plugin: got %v, want a rejection", name, err)
		}
		t.Logf("%s create rejected: %s", name, ce.Message())
	}
}
