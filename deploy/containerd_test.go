package deploy

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	validator "github.com/containerd/nri/plugins/default-validator"

	"tollgate.dev/tollgate/test/toolcheck"
)

const dropIn = "containerd/10-tollgate.toml"

// dropInSettings reads the drop-in's key = value lines by [table]; the file is kept flat
// enough (no inline tables, one value per line) for this to be exact.
func dropInSettings(t *testing.T) map[string]map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", dropIn))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	table := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			table = strings.Trim(line, "[]")
			out[table] = map[string]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: cannot read line %q", dropIn, line)
			}
			if out[table] == nil {
				out[table] = map[string]string{}
			}
			out[table][strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out
}

const (
	nriTable       = "plugins.'io.containerd.nri.v1.nri'"
	validatorTable = nriTable + ".default_validator"
)

// TestDropInValidatorKeys: every default_validator key is one NRI's validator reads (by its
// toml tag), and the fail-closed settings are there.
func TestDropInValidatorKeys(t *testing.T) {
	s := dropInSettings(t)
	if s[""]["version"] != "3" {
		t.Errorf("drop-in must be config version 3, have %q", s[""]["version"])
	}
	tags := map[string]bool{}
	typ := reflect.TypeOf(validator.DefaultValidatorConfig{})
	for i := 0; i < typ.NumField(); i++ {
		tags[typ.Field(i).Tag.Get("toml")] = true
	}
	v := s[validatorTable]
	for k := range v {
		if !tags[k] {
			t.Errorf("default_validator.%s: NRI's validator has no such setting", k)
		}
	}
	for k, want := range map[string]string{
		"enable":                              "true",
		"required_plugins":                    "['tollgate']",
		"tolerate_missing_plugins_annotation": "'tollgate.dev/tolerate-missing-plugin'",
	} {
		if v[k] != want {
			t.Errorf("default_validator.%s = %q, want %s", k, v[k], want)
		}
	}
	if s[nriTable]["disable"] != "false" || s[nriTable]["disable_connections"] != "false" {
		t.Errorf("NRI must be enabled and accept external connections: %v", s[nriTable])
	}
}

// TestDropInWithContainerd: the real containerd imports the drop-in and its merged
// configuration carries every setting (a misspelt key would be silently dropped).
func TestDropInWithContainerd(t *testing.T) {
	bin := toolcheck.Require(t, "containerd")
	dir := t.TempDir()
	main := filepath.Join(dir, "config.toml")
	cfg := "version = 3\nroot = '" + dir + "/root'\nstate = '" + dir + "/state'\n" +
		"imports = ['" + filepath.Join(repoRoot(t), "deploy", dropIn) + "']\n"
	if err := os.WriteFile(main, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	dump := string(run(t, bin, "--config", main, "config", "dump"))
	for table, kv := range dropInSettings(t) {
		if table == "" {
			continue
		}
		section := sectionOf(dump, "["+table+"]")
		if section == "" {
			t.Errorf("containerd config dump has no [%s]", table)
			continue
		}
		for k, v := range kv {
			if !strings.Contains(section, k+" = "+v) {
				t.Errorf("[%s] %s = %s not in containerd's merged config:\n%s", table, k, v, section)
			}
		}
	}
}

// sectionOf returns the lines of one TOML table up to the next table header.
func sectionOf(dump, header string) string {
	i := strings.Index(dump, header+"\n")
	if i < 0 {
		return ""
	}
	rest := dump[i+len(header)+1:]
	if j := strings.Index(rest, "\n  ["); j >= 0 {
		rest = rest[:j]
	}
	if j := strings.Index(rest, "\n    ["); j >= 0 {
		rest = rest[:j]
	}
	return rest
}
