package ctrd_test

import (
	"tollgate.dev/tollgate/daemon"
	"tollgate.dev/tollgate/daemon/ctrd"
)

// The daemon's interfaces that the containerd client implements. daemon must not import
// ctrd (cmd/tollgated wires them), so the check lives here.
var (
	_ daemon.ContainerLister = (*ctrd.Client)(nil)
	_ daemon.ImageLister     = (*ctrd.Client)(nil)
	_ daemon.ImageWatcher    = (*ctrd.Client)(nil)
)
