//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"
)

// Fixed names shared with the deploy snippet and the daemon.
const (
	PluginName          = "tollgate"
	TolerateAnnotation  = "tollgate.dev/tolerate-missing-plugin"
	CRINamespace        = "k8s.io" // containerd namespace the CRI plugin uses
	defaultRequestLimit = 2 * time.Second
)

// options collects what Option functions set.
type options struct {
	requiredPlugins    []string
	tolerateAnnotation string
	requestTimeout     time.Duration
	registrationWait   time.Duration
	extraConfig        string
}

// Option configures Start.
type Option func(*options)

// WithRequiredPlugin enables NRI's default validator with required_plugins = ["tollgate"]
// and the toleration annotation tollgate.dev/tolerate-missing-plugin: the fail-closed
// setup Tollgate ships (DESIGN §3).
func WithRequiredPlugin() Option { return WithRequiredPlugins(PluginName) }

// WithRequiredPlugins is WithRequiredPlugin for other plugin names.
func WithRequiredPlugins(names ...string) Option {
	return func(o *options) {
		o.requiredPlugins = append([]string(nil), names...)
		o.tolerateAnnotation = TolerateAnnotation
	}
}

// WithPluginRequestTimeout sets NRI's plugin_request_timeout (default 2s).
func WithPluginRequestTimeout(d time.Duration) Option {
	return func(o *options) { o.requestTimeout = d }
}

// WithPluginRegistrationTimeout sets NRI's plugin_registration_timeout (default 5s).
func WithPluginRegistrationTimeout(d time.Duration) Option {
	return func(o *options) { o.registrationWait = d }
}

// WithExtraConfig appends raw TOML to the generated containerd config. It may only add
// tables the generated config does not already define.
func WithExtraConfig(toml string) Option {
	return func(o *options) { o.extraConfig += "\n" + toml + "\n" }
}

// configData feeds configTemplate.
type configData struct {
	Dir, Root, State, Socket, NRISocket, RegistryHosts, SandboxImage, Runc string
	RequiredPlugins                                                        []string
	Tolerate                                                               string
	RequestTimeout, RegistrationTimeout                                    string
	Extra                                                                  string
}

// configTemplate is modeled on shared/reference/containerd-e2e-required.toml. Everything
// lives under one short directory: shim and NRI sockets are unix sockets, limited to 108
// bytes, and containerd puts a 64-hex-digit name under socket_dir.
var configTemplate = template.Must(template.New("config").Funcs(template.FuncMap{
	"q": func(s string) string { return fmt.Sprintf("%q", s) },
	"list": func(ss []string) string {
		q := make([]string, len(ss))
		for i, s := range ss {
			q[i] = fmt.Sprintf("%q", s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	},
}).Parse(`version = 3
root = {{q .Root}}
state = {{q .State}}
imports = []

[debug]
  level = 'info'

[grpc]
  address = {{q .Socket}}

[ttrpc]
  address = {{q (print .Socket ".ttrpc")}}

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = {{q .SandboxImage}}
    [plugins.'io.containerd.cri.v1.images'.registry]
      # hosts.toml per registry host: plain HTTP to the loopback test registry.
      config_path = {{q .RegistryHosts}}

  [plugins.'io.containerd.cri.v1.runtime']
    enable_selinux = false
    disable_apparmor = true
    # Root lacks CAP_SYS_RESOURCE here: runc cannot set CRI's negative oom_score_adj.
    restrict_oom_score_adj = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        sandboxer = 'podsandbox'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = {{q .Runc}}
          Root = {{q (print .State "/runc")}}
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = [{{q (print .Dir "/cni/bin")}}]
      conf_dir = {{q (print .Dir "/cni/net.d")}}

  [plugins.'io.containerd.grpc.v1.cri']
    disable_tcp_service = true
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'

  [plugins.'io.containerd.internal.v1.opt']
    path = {{q (print .Dir "/opt")}}

  [plugins.'io.containerd.nri.v1.nri']
    disable = false
    socket_path = {{q .NRISocket}}
    plugin_path = {{q (print .Dir "/nri/plugins")}}
    plugin_config_path = {{q (print .Dir "/nri/conf.d")}}
    plugin_registration_timeout = {{q .RegistrationTimeout}}
    plugin_request_timeout = {{q .RequestTimeout}}
    disable_connections = false
{{- if .RequiredPlugins}}
    # Fail-closed: the built-in default validator requires these plugins at every create.
    [plugins.'io.containerd.nri.v1.nri'.default_validator]
      enable = true
      required_plugins = {{list .RequiredPlugins}}
      tolerate_missing_plugins_annotation = {{q .Tolerate}}
{{- end}}

  [plugins.'io.containerd.server.v1.grpc']
    address = {{q .Socket}}

  [plugins.'io.containerd.server.v1.ttrpc']
    address = {{q (print .Socket ".ttrpc")}}

  [plugins.'io.containerd.shim.v1.manager']
    socket_dir = {{q (print .Dir "/s")}}

  [plugins.'io.containerd.image-verifier.v1.bindir']
    bin_dir = {{q (print .Dir "/image-verifier/bin")}}
{{.Extra}}`))

// hostsTemplate makes containerd speak plain HTTP to a loopback registry. Without it CRI
// tries HTTPS first (it falls back to HTTP only for "localhost"-like names, and the
// fallback hides misconfiguration).
var hostsTemplate = template.Must(template.New("hosts").Parse(`server = "http://{{.}}"

[host."http://{{.}}"]
  capabilities = ["pull", "resolve"]
`))

// writeConfig renders the containerd config and the registry hosts file for e.
func (e *Env) writeConfig() error {
	for _, d := range []string{"cni/bin", "cni/net.d", "opt", "nri/plugins", "nri/conf.d", "s", "image-verifier/bin", "logs", "certs.d"} {
		if err := os.MkdirAll(filepath.Join(e.Dir, d), 0o755); err != nil {
			return err
		}
	}
	o := e.opts
	data := configData{
		Dir: e.Dir, Root: filepath.Join(e.Dir, "root"), State: filepath.Join(e.Dir, "state"),
		Socket: e.Socket, NRISocket: e.NRISocket, RegistryHosts: filepath.Join(e.Dir, "certs.d"),
		SandboxImage: e.PauseImage, Runc: e.Tools.Runc,
		RequiredPlugins: o.requiredPlugins, Tolerate: o.tolerateAnnotation,
		RequestTimeout: o.requestTimeout.String(), RegistrationTimeout: o.registrationWait.String(),
		Extra: o.extraConfig,
	}
	var buf bytes.Buffer
	if err := configTemplate.Execute(&buf, data); err != nil {
		return err
	}
	if err := os.WriteFile(e.ConfigPath, buf.Bytes(), 0o644); err != nil {
		return err
	}
	return e.AddRegistryHost(e.Registry.Host)
}

// AddRegistryHost lets containerd pull from another plain-HTTP loopback host (a
// DelayProxy in front of the registry). containerd reads hosts.toml at every pull, so this
// works on a running containerd.
func (e *Env) AddRegistryHost(host string) error {
	hostDir := filepath.Join(e.Dir, "certs.d", host)
	if err := os.MkdirAll(hostDir, 0o755); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := hostsTemplate.Execute(&buf, host); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(hostDir, "hosts.toml"), buf.Bytes(), 0o644)
}
