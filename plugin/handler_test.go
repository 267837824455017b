package plugin

import (
	"testing"

	"github.com/containerd/nri/pkg/stub"
)

// TestHandlerImplementsWhatItSubscribes: the stub's start-up log lists the hooks its
// handler implements; CreateContainer is among them only with WithCreateContainerHook.
func TestHandlerImplementsWhatItSubscribes(t *testing.T) {
	for _, create := range []bool{false, true} {
		p := &Plugin{createHook: create}
		h := p.handler(&session{p: p})
		if _, ok := h.(stub.CreateContainerInterface); ok != create {
			t.Errorf("createHook %v: handler implements CreateContainer = %v", create, ok)
		}
		for name, ok := range map[string]bool{
			"Configure":                   implements[stub.ConfigureInterface](h),
			"Synchronize":                 implements[stub.SynchronizeInterface](h),
			"ValidateContainerAdjustment": implements[stub.ValidateContainerAdjustmentInterface](h),
		} {
			if !ok {
				t.Errorf("createHook %v: handler lacks %s", create, name)
			}
		}
	}
}

func implements[I any](h any) bool { _, ok := h.(I); return ok }
