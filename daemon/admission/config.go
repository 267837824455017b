package admission

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"tollgate.dev/tollgate/daemon"
)

// WebhookTimeout is the timeoutSeconds of the shipped ValidatingWebhookConfiguration (and
// the API server's maximum, 30s, is far above it). The webhook answers before it, so that
// the API server reads Tollgate's message rather than its own timeout.
const WebhookTimeout = 10 * time.Second

// Config is `tollgated webhook`'s configuration. The YAML file (--config) uses the flag
// names as keys; flags given on the command line override the file.
type Config struct {
	ConfigFile string `json:"-"`

	Listen             string          `json:"listen"`
	MetricsListen      string          `json:"metrics-listen"`
	TLSCertFile        string          `json:"tls-cert-file"`
	TLSKeyFile         string          `json:"tls-key-file"`
	TLSReload          daemon.Duration `json:"tls-reload-interval"`
	PolicyDir          string          `json:"policy-dir"`
	CacheDir           string          `json:"cache-dir"`
	Timeout            daemon.Duration `json:"timeout"`
	FailOpen           bool            `json:"fail-open"`
	Platform           string          `json:"platform"`
	AllowTTL           daemon.Duration `json:"allow-ttl"`
	DenyTTL            daemon.Duration `json:"deny-ttl"`
	ResolveTTL         daemon.Duration `json:"resolve-ttl"`
	MaxRequestBytes    int64           `json:"max-request-bytes"`
	LogLevel           string          `json:"log-level"`
	InsecureRegistries []string        `json:"insecure-registry"`
}

// DefaultConfig returns the defaults documented in docs/admission.md.
func DefaultConfig() Config {
	return Config{
		Listen:          ":8443",
		MetricsListen:   ":9091",
		TLSCertFile:     "/etc/tollgate-webhook/tls/tls.crt",
		TLSKeyFile:      "/etc/tollgate-webhook/tls/tls.key",
		TLSReload:       daemon.Duration(10 * time.Second),
		PolicyDir:       "/etc/tollgate",
		CacheDir:        "/var/cache/tollgate",
		Timeout:         daemon.Duration(8 * time.Second),
		FailOpen:        true,
		Platform:        "linux/amd64",
		AllowTTL:        daemon.Duration(10 * time.Minute),
		DenyTTL:         daemon.Duration(30 * time.Second),
		ResolveTTL:      daemon.Duration(30 * time.Second),
		MaxRequestBytes: DefaultMaxRequestBytes,
		LogLevel:        "info",
	}
}

// RegisterFlags binds every webhook flag to c, with c's current values as defaults. For
// cobra, add the set with pflag's FlagSet.AddGoFlagSet.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ConfigFile, "config", c.ConfigFile, "YAML configuration file (keys are the flag names; flags override it)")
	fs.StringVar(&c.Listen, "listen", c.Listen, "HTTPS address of POST /validate (admission.k8s.io/v1 AdmissionReview)")
	fs.StringVar(&c.MetricsListen, "metrics-listen", c.MetricsListen, "plain-HTTP address of /metrics, /healthz and /readyz")
	fs.StringVar(&c.TLSCertFile, "tls-cert-file", c.TLSCertFile, "serving certificate (PEM, chain allowed); re-read when it changes")
	fs.StringVar(&c.TLSKeyFile, "tls-key-file", c.TLSKeyFile, "serving certificate's private key (PEM)")
	fs.Var(&c.TLSReload, "tls-reload-interval", "how often the certificate files are checked for a change")
	fs.StringVar(&c.PolicyDir, "policy-dir", c.PolicyDir, "the nodes' policies, layouts and keys (the same ConfigMaps; watched)")
	fs.StringVar(&c.CacheDir, "cache-dir", c.CacheDir, "evidence fetched from registries (an emptyDir is enough)")
	fs.Var(&c.Timeout, "timeout", "total deadline of one review; must be below the webhook's timeoutSeconds (10s)")
	fs.BoolVar(&c.FailOpen, "fail-open", c.FailOpen, "allow with a warning when an image cannot be verified in time (the node gate still decides); false denies")
	fs.StringVar(&c.Platform, "platform", c.Platform, "os/arch[/variant] whose manifest is checked when an image is an index and the pod does not pin kubernetes.io/os or kubernetes.io/arch")
	fs.Var(&c.AllowTTL, "allow-ttl", "how long an allow decision is reused")
	fs.Var(&c.DenyTTL, "deny-ttl", "how long a deny decision is reused")
	fs.Var(&c.ResolveTTL, "resolve-ttl", "how long a tag's resolution to a digest is reused (digest references: allow-ttl)")
	fs.Int64Var(&c.MaxRequestBytes, "max-request-bytes", c.MaxRequestBytes, "largest AdmissionReview accepted")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.Var(&listFlag{dst: &c.InsecureRegistries}, "insecure-registry", "registry host[:port] reached over plain HTTP (repeatable)")
}

// ParseArgs returns the configuration for `tollgated webhook ARGS`: defaults, then the
// --config file if one is named, then the flags given. The result is validated.
func ParseArgs(name string, args []string) (Config, error) {
	cfg, err := daemon.ParseConfigArgs(name, args, DefaultConfig)
	if err != nil {
		return Config{}, err
	}
	return cfg, cfg.Validate()
}

// LoadFile reads a YAML configuration strictly (an unknown key is an error) over c.
func (c *Config) LoadFile(path string) error {
	if err := daemon.LoadConfigFile(path, c); err != nil {
		return err
	}
	c.ConfigFile = path
	return nil
}

// Validate reports every problem with c.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Listen == "" {
		bad("listen: an address is required")
	}
	if c.TLSCertFile == "" || c.TLSKeyFile == "" {
		bad("tls-cert-file and tls-key-file are required: the API server calls webhooks over HTTPS only")
	}
	if c.Timeout <= 0 || c.Timeout.D() >= WebhookTimeout {
		bad("timeout %s: must be above 0 and below the webhook's timeoutSeconds (%s), or the API server gives up before Tollgate answers", c.Timeout, WebhookTimeout)
	}
	if c.TLSReload <= 0 {
		bad("tls-reload-interval %s: must be above 0", c.TLSReload)
	}
	for name, d := range map[string]daemon.Duration{"allow-ttl": c.AllowTTL, "deny-ttl": c.DenyTTL, "resolve-ttl": c.ResolveTTL} {
		if d < 0 || d.D() > 24*time.Hour {
			bad("%s %s: must be between 0 (no caching) and 24h", name, d)
		}
	}
	if c.MaxRequestBytes < 64<<10 || c.MaxRequestBytes > 64<<20 {
		bad("max-request-bytes %d: must be between 64KiB and 64MiB", c.MaxRequestBytes)
	}
	if _, err := parsePlatform(c.Platform); err != nil {
		bad("platform: %v", err)
	}
	if c.PolicyDir == "" {
		bad("policy-dir: a directory is required")
	}
	if c.CacheDir == "" {
		bad("cache-dir: a writable directory is required")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	return errors.Join(errs...)
}

// platform is an os/arch[/variant] triple.
type platform struct{ OS, Arch, Variant string }

func parsePlatform(s string) (platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return platform{}, fmt.Errorf("%q: want os/arch or os/arch/variant, e.g. linux/amd64", s)
	}
	p := platform{OS: parts[0], Arch: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

func (p platform) String() string {
	if p.Variant != "" {
		return p.OS + "/" + p.Arch + "/" + p.Variant
	}
	return p.OS + "/" + p.Arch
}

// listFlag is a repeatable string flag that also accepts comma-separated values.
type listFlag struct{ dst *[]string }

func (l *listFlag) String() string {
	if l.dst == nil {
		return ""
	}
	return strings.Join(*l.dst, ",")
}

func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l.dst = append(*l.dst, v)
		}
	}
	return nil
}
