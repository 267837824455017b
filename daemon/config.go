package daemon

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Version is the daemon's version; the Makefile sets it with -X at link time.
var Version = "dev"

// MaxHookDeadline is containerd's default plugin_request_timeout. A hook deadline at or
// past it lets NRI drop the plugin before Tollgate can deny with its own message.
const MaxHookDeadline = 2 * time.Second

// Config is tollgated's configuration. The YAML file (--config) uses the flag names as
// keys; flags given on the command line override the file, which overrides the defaults.
type Config struct {
	ConfigFile string `json:"-"`

	NRISocket           string   `json:"nri-socket"`
	PluginName          string   `json:"plugin-name"`
	PluginIndex         int      `json:"plugin-index"`
	ContainerdSocket    string   `json:"containerd-socket"`
	ContainerdNamespace string   `json:"containerd-namespace"`
	PolicyDir           string   `json:"policy-dir"`
	EvidenceDir         string   `json:"evidence-dir"`
	CacheDir            string   `json:"cache-dir"`
	Listen              string   `json:"listen"`
	AuditLog            string   `json:"audit-log"`
	AuditLogMaxBytes    ByteSize `json:"audit-log-max-bytes"`
	HookDeadline        Duration `json:"hook-deadline"`
	AllowTTL            Duration `json:"allow-ttl"`
	DenyTTL             Duration `json:"deny-ttl"`
	NodeName            string   `json:"node-name"`
	LogLevel            string   `json:"log-level"`
	InsecureRegistries  []string `json:"insecure-registry"`
}

// DefaultConfig returns the defaults of docs/dev/BRIEF.md ("Fixed names"). NodeName comes
// from $NODE_NAME (the DaemonSet sets it from spec.nodeName).
func DefaultConfig() Config {
	return Config{
		NRISocket:           "/var/run/nri/nri.sock",
		PluginName:          "tollgate",
		PluginIndex:         10,
		ContainerdSocket:    "/run/containerd/containerd.sock",
		ContainerdNamespace: "k8s.io",
		PolicyDir:           "/etc/tollgate",
		EvidenceDir:         "/var/lib/tollgate/evidence",
		CacheDir:            "/var/lib/tollgate/cache",
		Listen:              ":9090",
		AuditLog:            "/var/log/tollgate/audit.jsonl",
		AuditLogMaxBytes:    50 << 20,
		HookDeadline:        Duration(500 * time.Millisecond),
		AllowTTL:            Duration(10 * time.Minute),
		DenyTTL:             Duration(30 * time.Second),
		NodeName:            os.Getenv("NODE_NAME"),
		LogLevel:            "info",
	}
}

// RegisterFlags binds every tollgated flag to c, with c's current values as defaults.
// For cobra, add the set with pflag's FlagSet.AddGoFlagSet.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ConfigFile, "config", c.ConfigFile, "YAML configuration file (keys are the flag names; flags override it)")
	fs.StringVar(&c.NRISocket, "nri-socket", c.NRISocket, "containerd's NRI socket")
	fs.StringVar(&c.PluginName, "plugin-name", c.PluginName, "NRI plugin name (containerd's required_plugins must list it)")
	fs.IntVar(&c.PluginIndex, "plugin-index", c.PluginIndex, "NRI plugin index (0-99)")
	fs.StringVar(&c.ContainerdSocket, "containerd-socket", c.ContainerdSocket, "containerd's API socket (image identity)")
	fs.StringVar(&c.ContainerdNamespace, "containerd-namespace", c.ContainerdNamespace, "containerd namespace of the pods' images")
	fs.StringVar(&c.PolicyDir, "policy-dir", c.PolicyDir, "node-local policies, layouts and keys (watched)")
	fs.StringVar(&c.EvidenceDir, "evidence-dir", c.EvidenceDir, "node evidence: <dir>/sha256/<hex>/<files> per manifest or index digest")
	fs.StringVar(&c.CacheDir, "cache-dir", c.CacheDir, "daemon state: evidence fetched from registries")
	fs.StringVar(&c.Listen, "listen", c.Listen, "address of /metrics, /healthz and /readyz")
	fs.StringVar(&c.AuditLog, "audit-log", c.AuditLog, "JSON-lines audit log of every decision (empty: none)")
	fs.Var(&c.AuditLogMaxBytes, "audit-log-max-bytes", "rotate the audit log at this size (e.g. 50MiB)")
	fs.Var(&c.HookDeadline, "hook-deadline", "deny a container whose decision takes longer (must be < 2s)")
	fs.Var(&c.AllowTTL, "allow-ttl", "how long an allow decision is reused")
	fs.Var(&c.DenyTTL, "deny-ttl", "how long a deny decision is reused")
	fs.StringVar(&c.NodeName, "node-name", c.NodeName, "this node's name, for the audit log (default $NODE_NAME)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.Var(&listFlag{dst: &c.InsecureRegistries}, "insecure-registry", "registry host[:port] reached over plain HTTP (repeatable)")
}

// ParseArgs returns the configuration for a command line: defaults, then the --config
// file if one is named, then the flags given. The result is validated.
func ParseArgs(name string, args []string) (Config, error) {
	cfg, err := ParseConfigArgs(name, args, DefaultConfig)
	if err != nil {
		return Config{}, err
	}
	return cfg, cfg.Validate()
}

// LoadFile reads a YAML configuration strictly (an unknown key is an error) over c.
func (c *Config) LoadFile(path string) error {
	file := c.ConfigFile
	if err := LoadConfigFile(path, c); err != nil {
		return err
	}
	if file == "" {
		file = path
	}
	c.ConfigFile = file
	return nil
}

// FlagConfig is a configuration that a command line and a YAML file both set: tollgated's
// Config and the admission webhook's.
type FlagConfig interface {
	// RegisterFlags binds every flag to the configuration, with its current values as
	// defaults, and names the YAML file with a flag called "config".
	RegisterFlags(fs *flag.FlagSet)
	// LoadFile reads the YAML file over the configuration (see LoadConfigFile).
	LoadFile(path string) error
}

// ParseConfigArgs applies a command line's precedence, lowest first: defaults(), the
// file named by --config if any, then the flags actually given. It does not validate.
func ParseConfigArgs[C any, P interface {
	*C
	FlagConfig
}](name string, args []string, defaults func() C) (C, error) {
	var zero C
	// A first pass finds --config (and reports any flag error); a config file's values
	// must sit below the flags, so they cannot be read in the same pass.
	probe := defaults()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	P(&probe).RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return zero, err
	}
	if fs.NArg() > 0 {
		return zero, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	cfg := defaults()
	if f := fs.Lookup("config"); f != nil && f.Value.String() != "" {
		if err := P(&cfg).LoadFile(f.Value.String()); err != nil {
			return zero, err
		}
	}
	// Parse again onto the file's values, so that only flags actually given override it.
	fs = flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // the first pass reported any error already
	P(&cfg).RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return zero, err
	}
	return cfg, nil
}

// maxConfigBytes bounds a configuration file.
const maxConfigBytes = 1 << 20

// LoadConfigFile decodes the YAML file at path over into, a pointer to a configuration
// struct whose json tags are the flag names: keys the file leaves out keep their values.
// Decoding is strict (unknown and duplicate keys are errors) and files over 1 MiB are
// refused. Errors name the file.
func LoadConfigFile(path string, into any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := decodeConfig(data, into); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// decodeConfig decodes YAML strictly: unknown and duplicate keys are errors.
func decodeConfig(data []byte, into any) error {
	if len(data) > maxConfigBytes {
		return errors.New("over 1 MiB")
	}
	return yaml.UnmarshalStrict(data, into)
}

// Validate reports every problem with c, one per line.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.HookDeadline <= 0 || c.HookDeadline.D() >= MaxHookDeadline {
		bad("hook-deadline %s: must be above 0 and below %s (containerd's default plugin_request_timeout), or NRI drops the plugin before it can deny", c.HookDeadline, MaxHookDeadline)
	}
	if c.AllowTTL < 0 || c.AllowTTL.D() > 24*time.Hour {
		bad("allow-ttl %s: must be between 0 (no caching) and 24h", c.AllowTTL)
	}
	if c.DenyTTL < 0 || c.DenyTTL.D() > 24*time.Hour {
		bad("deny-ttl %s: must be between 0 (no caching) and 24h", c.DenyTTL)
	}
	if c.PluginName == "" || strings.ContainsAny(c.PluginName, "/ \t") {
		bad("plugin-name %q: must be a non-empty name without slashes or spaces", c.PluginName)
	}
	if c.PluginIndex < 0 || c.PluginIndex > 99 {
		bad("plugin-index %d: NRI indices are 0 to 99", c.PluginIndex)
	}
	for flagName, p := range map[string]string{
		"nri-socket": c.NRISocket, "containerd-socket": c.ContainerdSocket,
		"policy-dir": c.PolicyDir, "evidence-dir": c.EvidenceDir, "cache-dir": c.CacheDir,
	} {
		if !filepath.IsAbs(p) {
			bad("%s %q: must be an absolute path", flagName, p)
		}
	}
	if c.AuditLog != "" && !filepath.IsAbs(c.AuditLog) {
		bad("audit-log %q: must be an absolute path (or empty for no audit log)", c.AuditLog)
	}
	if c.AuditLogMaxBytes < 1<<20 {
		bad("audit-log-max-bytes %s: must be at least 1MiB", c.AuditLogMaxBytes)
	}
	if c.ContainerdNamespace == "" {
		bad("containerd-namespace: must not be empty")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen %q: want host:port, e.g. \":9090\": %v", c.Listen, err)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		bad("log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	for _, r := range c.InsecureRegistries {
		if r == "" || strings.Contains(r, "/") || strings.ContainsAny(r, " \t") {
			bad("insecure-registry %q: want a host or host:port, without scheme or path", r)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid configuration:\n%w", errors.Join(errs...))
	}
	return nil
}

// listFlag is a repeatable flag. Values given on the command line replace (not extend) a
// list from the config file.
type listFlag struct {
	dst *[]string
	set bool
}

func (l *listFlag) String() string {
	if l == nil || l.dst == nil {
		return ""
	}
	return strings.Join(*l.dst, ",")
}

func (l *listFlag) Set(v string) error {
	if !l.set {
		*l.dst, l.set = nil, true
	}
	*l.dst = append(*l.dst, v)
	return nil
}
