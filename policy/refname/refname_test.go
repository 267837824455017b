package refname

import (
	"strconv"
	"strings"
	"testing"
)

func TestHost(t *testing.T) {
	for in, want := range map[string]string{
		"ghcr.io": "ghcr.io", "GHCR.io.": "ghcr.io", "ghcr.io:443": "ghcr.io", "ghcr.io.:443": "ghcr.io",
		"ghcr.io:0443": "ghcr.io", "ghcr.io:000443": "ghcr.io", "localhost:05000": "localhost:5000",
		"ghcr.io:5000": "ghcr.io:5000", "registry-1.docker.io": "docker.io", "INDEX.docker.io:443": "docker.io",
		"[::1]:443": "[::1]", "[::1]:5000": "[::1]:5000", "[::1]:05000": "[::1]:5000", "[::1]": "[::1]",
		"localhost": "localhost", "localhost:80": "localhost:80", "localhost:65535": "localhost:65535",
	} {
		if got, err := Host(in); err != nil || got != want {
			t.Errorf("Host(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestHostRefused(t *testing.T) {
	for in, want := range map[string]string{
		"ghcr.io:0":                    "out of range",
		"ghcr.io:00000":                "out of range",
		"ghcr.io:65536":                "out of range",
		"ghcr.io:070000":               "out of range",
		"ghcr.io:99999999999999999999": "out of range",
		"ghcr.io:":                     "not a number",
		"ghcr.io:-1":                   "not a number",
		"ghcr.io:+443":                 "not a number",
		"ghcr.io:4 43":                 "not a number",
	} {
		got, err := Host(in)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), in) {
			t.Errorf("Host(%q) = %q, %v; want an error naming it, saying %q", in, got, err, want)
		}
	}
}

func TestRepositoryAndReference(t *testing.T) {
	for in, want := range map[string]string{
		"nginx":                               "docker.io/library/nginx",
		"library/nginx:1.27":                  "docker.io/library/nginx:1.27",
		"index.docker.io:0443/nginx@sha256:0": "docker.io/library/nginx@sha256:0",
		"ghcr.io:0443/acme/api:v1":            "ghcr.io/acme/api:v1",
		"localhost:05000/x":                   "localhost:5000/x",
		"LOCALHOST:5000/x:v1@sha256:0":        "localhost:5000/x:v1@sha256:0",
		"acme/api":                            "docker.io/acme/api",
	} {
		if got, err := Reference(in); err != nil || got != want {
			t.Errorf("Reference(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := Repository("ghcr.io:70000/acme/api"); err == nil {
		t.Error("Repository accepted port 70000")
	}
}

// FuzzHost: Host never panics, is idempotent, and spellings of one port (leading zeros,
// 443 written or not) agree.
func FuzzHost(f *testing.F) {
	for _, s := range []string{"ghcr.io:0443", "localhost:05000", "[::1]:5000", "a:", "a:0", "A.:443", "[::1]"} {
		f.Add(s, uint16(443), uint8(2))
	}
	f.Fuzz(func(t *testing.T, host string, port uint16, zeros uint8) {
		if c, err := Host(host); err == nil {
			if again, err := Host(c); err != nil || again != c {
				t.Fatalf("Host(%q) = %q, but Host(%q) = %q, %v", host, c, c, again, err)
			}
		}
		name, _, _ := strings.Cut(host, ":")
		if name == "" || strings.ContainsAny(name, "[]") || port == 0 {
			return
		}
		plain, err1 := Host(name + ":" + strconv.Itoa(int(port)))
		padded, err2 := Host(name + ":" + strings.Repeat("0", int(zeros%8)) + strconv.Itoa(int(port)))
		if (err1 == nil) != (err2 == nil) || plain != padded {
			t.Fatalf("port %d spelled two ways: %q, %v and %q, %v", port, plain, err1, padded, err2)
		}
		if port == 443 {
			if bare, err := Host(name); err != nil || bare != plain {
				t.Fatalf("Host(%q) = %q, %v; Host with :443 = %q", name, bare, err, plain)
			}
		}
	})
}
