package policydir

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func write(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func link(t *testing.T, target, name string) {
	t.Helper()
	if err := os.Symlink(target, name); err != nil {
		t.Fatal(err)
	}
}

func names(files map[string][]byte) string {
	out := make([]string, 0, len(files))
	for n, d := range files {
		out = append(out, n+"="+string(d))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// configMap lays dir out as the kubelet mounts a ConfigMap: the content under a
// timestamped directory, ..data pointing at it, and visible names linking through ..data.
func configMap(t *testing.T, dir, stamp string, files map[string]string) {
	t.Helper()
	for n, d := range files {
		write(t, filepath.Join(dir, stamp, n), d)
	}
	tmp := filepath.Join(dir, "..data_tmp")
	link(t, stamp, tmp)
	if err := os.Rename(tmp, filepath.Join(dir, dataLink)); err != nil {
		t.Fatal(err)
	}
	for n := range files {
		top := strings.SplitN(n, "/", 2)[0]
		if _, err := os.Lstat(filepath.Join(dir, top)); err != nil {
			link(t, filepath.Join(dataLink, top), filepath.Join(dir, top))
		}
	}
}

func TestRead(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "secret.pub")
	write(t, outside, "not yours")
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string // name=content list, or the error text expected
		fails bool
	}{
		{"plain files and subdirectories", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "policy.yaml"), "p")
			write(t, filepath.Join(dir, "keys", "ci.pub"), "k")
			write(t, filepath.Join(dir, ".hidden"), "h")
		}, "keys/ci.pub=k policy.yaml=p", false},
		{"config map", func(t *testing.T, dir string) {
			configMap(t, dir, "..2026_01", map[string]string{"policy.yaml": "p", "keys/ci.pub": "k"})
		}, "keys/ci.pub=k policy.yaml=p", false},
		{"link inside the directory", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "real", "a.yaml"), "a")
			link(t, "real/a.yaml", filepath.Join(dir, "alias.yaml"))
		}, "alias.yaml=a real/a.yaml=a", false},
		{"dangling link is skipped", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "a.yaml"), "a")
			link(t, "gone.yaml", filepath.Join(dir, "b.yaml"))
		}, "a.yaml=a", false},
		{"absolute link out of the directory", func(t *testing.T, dir string) {
			link(t, outside, filepath.Join(dir, "trusted.pub"))
		}, "trusted.pub", true},
		{"relative link out of the directory", func(t *testing.T, dir string) {
			rel, _ := filepath.Rel(dir, outside)
			link(t, rel, filepath.Join(dir, "trusted.pub"))
		}, "trusted.pub", true},
		{"directory link out of the directory", func(t *testing.T, dir string) {
			link(t, filepath.Dir(outside), filepath.Join(dir, "keys"))
		}, "keys", true},
		{"too deep", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "a/b/c/d/e/f/g/h/i/j/x.yaml"), "x")
		}, "nested deeper than 8", true},
		{"oversized file", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "big.yaml"), strings.Repeat("x", 17<<20))
		}, "big.yaml: over the limit", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			files, err := Read(dir, DefaultLimits)
			switch {
			case tc.fails && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Read = %q, %v; want an error about %q", names(files), err, tc.want)
			case !tc.fails && err != nil:
				t.Fatalf("Read: %v", err)
			case !tc.fails && names(files) != tc.want:
				t.Fatalf("Read = %q, want %q", names(files), tc.want)
			}
		})
	}
}

func TestReadLimits(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a", "b", "c"} {
		write(t, filepath.Join(dir, n), strings.Repeat(n, 10))
	}
	if _, err := Read(dir, Limits{MaxFileBytes: 100, MaxFiles: 2, MaxTotalBytes: 100, MaxDepth: 1}); err == nil || !strings.Contains(err.Error(), "more than 2 files") {
		t.Errorf("file count: %v", err)
	}
	if _, err := Read(dir, Limits{MaxFileBytes: 100, MaxFiles: 10, MaxTotalBytes: 25, MaxDepth: 1}); err == nil || !strings.Contains(err.Error(), "more than 25 bytes in total") {
		t.Errorf("total bytes: %v", err)
	}
	if _, err := Read(filepath.Join(dir, "absent"), DefaultLimits); err == nil {
		t.Error("a missing directory read without error")
	}
}

// TestReadNeverMixesConfigMapVersions swaps the ConfigMap after the first file of a read,
// as a kubelet update can: the result is all old or all new, never both.
func TestReadNeverMixesConfigMapVersions(t *testing.T) {
	dir := t.TempDir()
	configMap(t, dir, "..v1", map[string]string{"a.yaml": "1", "b.yaml": "1"})
	swaps := 0
	testHookFileRead = func(string) {
		if swaps == 0 {
			swaps++
			configMap(t, dir, "..v2", map[string]string{"a.yaml": "2", "b.yaml": "2"})
		}
	}
	defer func() { testHookFileRead = func(string) {} }()
	files, err := Read(dir, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(files); got != "a.yaml=2 b.yaml=2" {
		t.Fatalf("read across a swap = %q, want the new version whole", got)
	}

	// A directory that never settles is an error, not a mix.
	testHookFileRead = func(string) {
		swaps++
		configMap(t, dir, "..v"+strings.Repeat("x", swaps), map[string]string{"a.yaml": "n", "b.yaml": "n"})
	}
	if files, err := Read(dir, DefaultLimits); err == nil || !strings.Contains(err.Error(), "changed during each of 3 reads") {
		t.Fatalf("Read under constant change = %q, %v", names(files), err)
	}
}
