package daemon

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfig(t *testing.T) {
	t.Setenv("NODE_NAME", "node-7")
	c := DefaultConfig()
	want := map[string]string{
		"nri-socket": "/var/run/nri/nri.sock", "plugin-name": "tollgate", "plugin-index": "10",
		"containerd-socket": "/run/containerd/containerd.sock", "containerd-namespace": "k8s.io",
		"policy-dir": "/etc/tollgate", "evidence-dir": "/var/lib/tollgate/evidence",
		"cache-dir": "/var/lib/tollgate/cache", "listen": ":9090", "audit-log": "/var/log/tollgate/audit.jsonl",
		"audit-log-max-bytes": "50MiB", "hook-deadline": "500ms", "allow-ttl": "10m0s", "deny-ttl": "30s",
		"node-name": "node-7", "log-level": "info", "insecure-registry": "",
	}
	got := map[string]string{
		"nri-socket": c.NRISocket, "plugin-name": c.PluginName, "plugin-index": itoa(c.PluginIndex),
		"containerd-socket": c.ContainerdSocket, "containerd-namespace": c.ContainerdNamespace,
		"policy-dir": c.PolicyDir, "evidence-dir": c.EvidenceDir, "cache-dir": c.CacheDir, "listen": c.Listen,
		"audit-log": c.AuditLog, "audit-log-max-bytes": c.AuditLogMaxBytes.String(), "hook-deadline": c.HookDeadline.String(),
		"allow-ttl": c.AllowTTL.String(), "deny-ttl": c.DenyTTL.String(), "node-name": c.NodeName,
		"log-level": c.LogLevel, "insecure-registry": strings.Join(c.InsecureRegistries, ","),
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestParseArgsPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tollgated.yaml")
	writeFile(t, file, `
policy-dir: /srv/policies
hook-deadline: 300ms
audit-log-max-bytes: 10MiB
insecure-registry: [reg.local:5000, other.local]
allow-ttl: 5m
`)
	c, err := ParseArgs("tollgated", []string{"--config", file, "--hook-deadline=250ms", "--insecure-registry", "cli.local"})
	if err != nil {
		t.Fatal(err)
	}
	if c.PolicyDir != "/srv/policies" || c.AllowTTL.D() != 5*time.Minute || c.AuditLogMaxBytes != 10<<20 {
		t.Errorf("file values not applied: %+v", c)
	}
	if c.HookDeadline.D() != 250*time.Millisecond {
		t.Errorf("flag does not override the file: hook-deadline %s", c.HookDeadline)
	}
	if strings.Join(c.InsecureRegistries, ",") != "cli.local" {
		t.Errorf("insecure-registry = %v, want the command line's list", c.InsecureRegistries)
	}
	if c.DenyTTL.D() != 30*time.Second {
		t.Errorf("default lost: deny-ttl %s", c.DenyTTL)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		file string
		args []string
		want string
	}{
		{"unknown key", "hook-deadlin: 1s\n", nil, "unknown field"},
		{"bad duration", "hook-deadline: 5\n", nil, "duration"},
		{"deadline at NRI's timeout", "", []string{"--hook-deadline=2s"}, "below 2s"},
		{"deadline zero", "", []string{"--hook-deadline=0s"}, "hook-deadline"},
		{"relative dir", "", []string{"--policy-dir=etc"}, "absolute path"},
		{"bad listen", "", []string{"--listen=9090"}, "listen"},
		{"bad level", "", []string{"--log-level=loud"}, "log-level"},
		{"plugin index", "", []string{"--plugin-index=100"}, "0 to 99"},
		{"registry with scheme", "", []string{"--insecure-registry=http://x"}, "without scheme"},
		{"tiny audit log", "", []string{"--audit-log-max-bytes=1KiB"}, "at least 1MiB"},
		{"bad size", "", []string{"--audit-log-max-bytes=lots"}, "size"},
		{"stray argument", "", []string{"extra"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.file != "" {
				file := filepath.Join(t.TempDir(), "c.yaml")
				writeFile(t, file, tt.file)
				args = append([]string{"--config", file}, args...)
			}
			_, err := ParseArgs("tollgated", args)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestLoadConfigFile covers the file loader both tollgated and the webhook use.
func TestLoadConfigFile(t *testing.T) {
	type small struct {
		A string   `json:"a"`
		B Duration `json:"b"`
	}
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	got := small{A: "default", B: Duration(time.Second)}
	if err := LoadConfigFile(write("ok.yaml", "b: 250ms\n"), &got); err != nil {
		t.Fatal(err)
	}
	if got.A != "default" || got.B.D() != 250*time.Millisecond {
		t.Errorf("loaded %+v: want a kept, b from the file", got)
	}
	for _, tc := range []struct{ name, path, want string }{
		{"missing", filepath.Join(dir, "absent.yaml"), "config: open"},
		{"unknown key", write("unknown.yaml", "c: 1\n"), "unknown.yaml: error unmarshaling JSON"},
		{"duplicate key", write("dup.yaml", "a: x\na: y\n"), "dup.yaml"},
		{"oversized", write("big.yaml", "a: "+strings.Repeat("x", 1<<20)+"\n"), "big.yaml: over 1 MiB"},
	} {
		var c small
		if err := LoadConfigFile(tc.path, &c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]int64{"50MiB": 50 << 20, "1048576": 1 << 20, "10MB": 10e6, "2Gi": 2 << 30, "7 KiB": 7 << 10} {
		var b ByteSize
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("%q = %d, %v; want %d", in, b, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5MiB", "MiB", "99999999999999999999GiB"} {
		var b ByteSize
		if err := b.Set(in); err == nil {
			t.Errorf("%q accepted as %d", in, b)
		}
	}
}

func FuzzConfigFile(f *testing.F) {
	f.Add([]byte("hook-deadline: 300ms\naudit-log-max-bytes: 10MiB\n"))
	f.Add([]byte("insecure-registry: [a, b]\nplugin-index: 3\n"))
	f.Add([]byte("audit-log-max-bytes: 1048576\n"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := DefaultConfig()
		if err := decodeConfig(data, &c); err != nil {
			return
		}
		_ = c.Validate() // must not panic, whatever loaded
	})
}

func FuzzByteSize(f *testing.F) {
	for _, s := range []string{"50MiB", "1", "10MB", "-3", "9223372036854775807", "1GiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var b ByteSize
		if b.Set(s) == nil && b < 0 {
			t.Fatalf("%q parsed to a negative size %d", s, b)
		}
	})
}

func writeFile(t testing.TB, p, data string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
