package policy

import "testing"

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
		{"localhost/*", "localhost/app", true},
		{"*a*b*c", "docker.io/library/xaxbxcx", false},
		{"*a*b*c", "docker.io/library/aabbcc", true},
	}
	for _, tt := range tests {
		g, err := compileGlob(tt.glob)
		if err != nil {
			t.Fatalf("compileGlob(%q): %v", tt.glob, err)
		}
		if got := g.match(canonicalRepository(tt.repo)); got != tt.want {
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
		if got := repositoryOf(tt.img); got != tt.want {
			t.Errorf("repositoryOf(%+v) = %q, want %q", tt.img, got, tt.want)
		}
	}
}

func BenchmarkGlobMatch(b *testing.B) {
	g, _ := compileGlob("ghcr.io/acme/api-*")
	repo := canonicalRepository("ghcr.io/acme/api-server")
	for b.Loop() {
		if !g.match(repo) {
			b.Fatal("no match")
		}
	}
}

func TestCanonicalHost(t *testing.T) {
	for in, want := range map[string]string{
		"ghcr.io": "ghcr.io", "GHCR.io.": "ghcr.io", "ghcr.io:443": "ghcr.io", "ghcr.io.:443": "ghcr.io",
		"ghcr.io:5000": "ghcr.io:5000", "registry-1.docker.io": "docker.io", "INDEX.docker.io:443": "docker.io",
		"[::1]:443": "[::1]", "[::1]:5000": "[::1]:5000", "[::1]": "[::1]", "localhost": "localhost",
	} {
		if got := canonicalHost(in); got != want {
			t.Errorf("canonicalHost(%q) = %q, want %q", in, got, want)
		}
	}
}
