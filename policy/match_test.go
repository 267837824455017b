package policy

import (
	"strconv"
	"strings"
	"testing"
)

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		glob, repo string
		want       bool
	}{
		{"ghcr.io/acme/*", "ghcr.io/acme/api", true},
		{"ghcr.io/acme/*", "ghcr.io/acme/team/api", false},
		{"ghcr.io/acme/*", "ghcr.io/acme", false},
		{"ghcr.io/acme/*", "ghcr.io/acmecorp/api", false},
		{"ghcr.io/acme/*/*", "ghcr.io/acme/team/api", true},
		{"ghcr.io/acme/api", "ghcr.io/acme/api", true},
		{"ghcr.io/acme/api", "ghcr.io/acme/api2", false},
		{"ghcr.io/acme/api-*", "ghcr.io/acme/api-", true},
		{"ghcr.io/acme/api-*", "ghcr.io/acme/api-web", true},
		{"ghcr.io/acme/a?i", "ghcr.io/acme/api", true},
		{"ghcr.io/acme/a?i", "ghcr.io/acme/ai", false},
		{"*.example.com/base/*", "eu.example.com/base/x", true},
		{"*.example.com/base/*", "example.com/base/x", false},
		{"*/acme/*", "ghcr.io/acme/api", false}, // a first segment without '.' is a Docker Hub user
		{"nginx", "docker.io/library/nginx", true},
		{"library/nginx", "docker.io/library/nginx", true},
		{"docker.io/nginx", "docker.io/library/nginx", true},
		{"index.docker.io/library/nginx", "docker.io/library/nginx", true},
		{"acme/*", "docker.io/acme/api", true},
		{"localhost:5000/*", "localhost:5000/app", true},
		// Other spellings of one host match its policies.
		{"ghcr.io/acme/*", "ghcr.io:443/acme/api", true},
		{"ghcr.io/acme/*", "ghcr.io./acme/api", true},
		{"ghcr.io/acme/*", "GHCR.IO.:443/acme/api", true},
		{"ghcr.io:443/acme/*", "ghcr.io/acme/api", true},
		{"ghcr.io/acme/*", "ghcr.io:8443/acme/api", false},
		{"nginx", "registry-1.docker.io/library/nginx", true},
		{"nginx", "registry-1.docker.io/nginx", true},
		{"docker.io/acme/*", "index.docker.io:443/acme/api", true},
		{"localhost/*", "localhost:443/app", true},
		{"ghcr.io/acme/*", "ghcr.io:0443/acme/api", true},
		{"localhost:5000/*", "localhost:05000/x", true},
		{"localhost:05000/*", "localhost:5000/x", true},
		{"localhost:5000/*", "localhost:50000/x", false},
		{"localhost:*/*", "localhost:5000/x", true},
		{"localhost/*", "localhost/app", true},
		{"*a*b*c", "docker.io/library/xaxbxcx", false},
		{"*a*b*c", "docker.io/library/aabbcc", true},
	}
	for _, tt := range tests {
		g, err := compileGlob(tt.glob)
		if err != nil {
			t.Fatalf("compileGlob(%q): %v", tt.glob, err)
		}
		repo, _ := canonicalRepository(tt.repo)
		if got := g.match(repo); got != tt.want {
			t.Errorf("%q matching %q = %v, want %v", tt.glob, tt.repo, got, tt.want)
		}
	}
}

func TestGlobInvalid(t *testing.T) {
	for _, g := range []string{"", "ghcr.io/**", "ghcr.io/a:v1", "a@sha256:00", "ghcr.io//a", "/a", "a/", "a/[bc]", "a b"} {
		if _, err := compileGlob(g); err == nil {
			t.Errorf("compileGlob(%q) accepted", g)
		}
	}
}

func TestRepositoryOf(t *testing.T) {
	tests := []struct {
		img  Image
		want string
	}{
		{Image{Repository: "ghcr.io/acme/api", Ref: "ignored"}, "ghcr.io/acme/api"},
		{Image{Ref: "ghcr.io/acme/api:v1"}, "ghcr.io/acme/api"},
		{Image{Ref: "ghcr.io/acme/api@sha256:" + zeroDigest[7:]}, "ghcr.io/acme/api"},
		{Image{Ref: "ghcr.io/acme/api:v1@sha256:" + zeroDigest[7:]}, "ghcr.io/acme/api"},
		{Image{Ref: "localhost:5000/app"}, "localhost:5000/app"},
		{Image{Ref: "localhost:5000/app:v2"}, "localhost:5000/app"},
		{Image{Ref: "nginx:1.27"}, "docker.io/library/nginx"},
		{Image{}, ""},
	}
	for _, tt := range tests {
		if got, _ := repositoryOf(tt.img); got != tt.want {
			t.Errorf("repositoryOf(%+v) = %q, want %q", tt.img, got, tt.want)
		}
	}
}

func BenchmarkGlobMatch(b *testing.B) {
	g, _ := compileGlob("ghcr.io/acme/api-*")
	repo, _ := canonicalRepository("ghcr.io/acme/api-server")
	for b.Loop() {
		if !g.match(repo) {
			b.Fatal("no match")
		}
	}
}

// FuzzSameEndpointSamePolicy: two spellings of one registry endpoint and repository (host
// case, a trailing dot, the port with leading zeros or, for 443, left out, Docker Hub's
// aliases) always get the same decision, under `unmatched: allow` too; a port out of range
// is never allowed as unmatched.
func FuzzSameEndpointSamePolicy(f *testing.F) {
	d := baseDir(f)
	d["nd.yaml"] = []byte("apiVersion: tollgate.dev/v1alpha1\nkind: NodeDefaults\nmetadata: {name: node}\nspec:\n  unmatched: allow\n  exemptions: {repositories: [\"localhost:5000/exempt\"]}\n")
	d["local.yaml"] = []byte(strings.NewReplacer("name: api", "name: local", `images: ["ghcr.io/acme/*"]`, `images: ["localhost:5000/*", "docker.io/library/nginx"]`).Replace(apiPolicy))
	s := mustLoad(f, d)
	f.Add("ghcr.io", uint32(443), uint8(1), "acme/api", true, false)
	f.Add("localhost", uint32(5000), uint8(1), "x", false, true)
	f.Add("localhost", uint32(5000), uint8(3), "exempt", false, false)
	f.Add("index.docker.io", uint32(443), uint8(0), "nginx", true, true)
	f.Add("registry-1.docker.io", uint32(443), uint8(2), "library/nginx", false, false)
	f.Add("ghcr.io", uint32(70443), uint8(0), "acme/api", false, false)
	f.Fuzz(func(t *testing.T, host string, port uint32, zeros uint8, path string, upper, dot bool) {
		if host == "" || path == "" || strings.ContainsAny(host, ":/@[]") || strings.ContainsAny(path, ":@") {
			return
		}
		decide := func(h string) Decision {
			return s.Evaluate(Request{Image: Image{Repository: h + "/" + path, ConfigDigest: configDigest}}, Evidence{}, testNow)
		}
		spelled := host
		if upper {
			spelled = strings.ToUpper(spelled)
		}
		if dot {
			spelled += "."
		}
		padded := spelled + ":" + strings.Repeat("0", int(zeros%6)) + strconv.FormatUint(uint64(port), 10)
		a, b := decide(host+":"+strconv.FormatUint(uint64(port), 10)), decide(padded)
		if port == 0 || port > 65535 {
			if b.Allowed || a.Allowed {
				t.Fatalf("port %d allowed: %s / %s", port, a.Message, b.Message)
			}
			return
		}
		if a.Allowed != b.Allowed || a.Outcome != b.Outcome || a.Policy != b.Policy {
			t.Fatalf("one endpoint, two decisions:\n%s/%s: %v %v %q\n%s/%s: %v %v %q", host, path, a.Allowed, a.Outcome, a.Policy, padded, path, b.Allowed, b.Outcome, b.Policy)
		}
		if port == 443 {
			if c := decide(host); c.Allowed != a.Allowed || c.Outcome != a.Outcome || c.Policy != a.Policy {
				t.Fatalf("%s and %s:443 decided apart: %v %q / %v %q", host, host, c.Outcome, c.Policy, a.Outcome, a.Policy)
			}
		}
	})
}
