package ctrd_test

import (
	"tollgate.dev/tollgate/daemon/ctrd"
	"tollgate.dev/tollgate/daemon/gate"
	"tollgate.dev/tollgate/plugin"
)

// The interfaces that the containerd client implements. gate and plugin must not import
// ctrd (cmd/tollgated wires them), so the check lives here.
var (
	_ gate.ContainerLister = (*ctrd.Client)(nil)
	_ gate.ImageLister     = (*ctrd.Client)(nil)
	_ plugin.Resolver      = (*ctrd.Client)(nil)
)
