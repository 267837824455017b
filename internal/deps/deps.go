//go:build tools

package deps

import (
	_ "github.com/containerd/containerd/v2/client"
	_ "github.com/containerd/nri/pkg/adaptation"
	_ "github.com/containerd/nri/pkg/stub"
	_ "github.com/fsnotify/fsnotify"
	_ "cel.dev/cel-go/cel"
	_ "github.com/google/go-containerregistry/pkg/registry"
	_ "github.com/google/go-containerregistry/pkg/v1/remote"
	_ "github.com/in-toto/attestation/go/predicates/provenance/v02"
	_ "github.com/in-toto/attestation/go/predicates/provenance/v1"
	_ "github.com/in-toto/attestation/go/v1"
	_ "github.com/in-toto/in-toto-golang/in_toto"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/secure-systems-lab/go-securesystemslib/cjson"
	_ "github.com/secure-systems-lab/go-securesystemslib/dsse"
	_ "github.com/spf13/cobra"
	_ "go.uber.org/zap"
	_ "sigs.k8s.io/yaml"
)
