package evidence

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/daemon/registry"
)

func digestOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(h[:])
}

func put(t *testing.T, root, digest string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(root, strings.Replace(digest, ":", "/", 1), name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDirLoad(t *testing.T) {
	root := t.TempDir()
	index, manifest := digestOf("index"), digestOf("manifest")
	put(t, root, index, map[string]string{"build.abcd1234.link": "L", "shared.link": "same"})
	put(t, root, manifest, map[string]string{
		"prov.dsse.json":              "P",
		"sub.abcd1234/package.link":   "S",
		"shared.link":                 "same",
		".hidden":                     "skipped",
		"conflict.link":               "one",
		"nested/deeper/still/ok.link": "N",
	})
	put(t, root, index, map[string]string{"conflict.link": "two"})
	d := NewDir("node evidence directory", root, Limits{})
	ev, err := d.Load(context.Background(), "repo", []string{index, manifest, digestOf("absent")})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"build.abcd1234.link", "shared.link", "prov.dsse.json", "sub.abcd1234/package.link", "conflict.link", "nested/deeper/still/ok.link"}
	for _, n := range want {
		if _, ok := ev.Files[n]; !ok {
			t.Errorf("missing %s (have %v)", n, names(ev.Files))
		}
	}
	if _, ok := ev.Files[".hidden"]; ok {
		t.Error("hidden file read")
	}
	if len(ev.Files) != len(want)+1 {
		t.Errorf("files %v: want the conflicting file twice, the shared one once", names(ev.Files))
	}
	if ev.Version == "" || ev.Version != Version(ev.Files) {
		t.Errorf("version %q", ev.Version)
	}

	none, err := d.Load(context.Background(), "repo", []string{digestOf("nothing")})
	if err != nil || len(none.Files) != 0 || none.Version != "" {
		t.Fatalf("no evidence: %+v %v", none, err)
	}
	if _, err := NewDir("x", filepath.Join(root, "absent"), Limits{}).Load(context.Background(), "", []string{index}); err != nil {
		t.Fatalf("missing root: %v", err)
	}
}

func TestDirLimits(t *testing.T) {
	lim := Limits{MaxFileBytes: 10, MaxFiles: 3, MaxTotalBytes: 25, MaxDepth: 1}
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"oversized file", map[string]string{"a": strings.Repeat("x", 11)}, "over the limit of 10"},
		{"too many files", map[string]string{"a": "1", "b": "2", "c": "3", "d": "4"}, "more than 3"},
		{"too many bytes", map[string]string{"a": "0123456789", "b": "0123456789", "c": "0123456789"}, "in total"},
		{"too deep", map[string]string{"a/b/c": "1"}, "deeper than 1"},
		{"within bounds", map[string]string{"a": "0123456789", "b/c": "1"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dg := digestOf(tt.name)
			put(t, root, dg, tt.files)
			_, err := NewDir("dir", root, lim).Load(context.Background(), "", []string{dg})
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestBadDigestRefused(t *testing.T) {
	for _, dg := range []string{"sha256:../../etc", "md5:abcd", "sha256:ABCDEF", "nocolon", "sha256:" + strings.Repeat("a", 63)} {
		if _, err := NewDir("d", t.TempDir(), Limits{}).Load(context.Background(), "", []string{dg}); err == nil {
			t.Errorf("digest %q accepted", dg)
		}
	}
}

func TestVersion(t *testing.T) {
	a := Version(map[string][]byte{"a": []byte("1"), "b": []byte("2")})
	if a != Version(map[string][]byte{"b": []byte("2"), "a": []byte("1")}) {
		t.Error("version depends on map order")
	}
	for _, other := range []map[string][]byte{
		{"a": []byte("1"), "b": []byte("3")},
		{"a": []byte("1"), "c": []byte("2")},
		{"a1": nil, "b": []byte("2")},
	} {
		if Version(other) == a {
			t.Errorf("%v has the same version", names(other))
		}
	}
	if Version(nil) != "" {
		t.Error("empty evidence has a version")
	}
}

func TestCacheStoreAndReload(t *testing.T) {
	root := t.TempDir()
	c := NewCache(root, Limits{})
	dg := digestOf("m")
	if err := c.Store(testRepo, dg, map[string][]byte{"a.link": []byte("1"), "sub.x/b.link": []byte("2")}); err != nil {
		t.Fatal(err)
	}
	// A fresh Cache over the same directory (a restart) reads the same bytes.
	ev, err := NewCache(root, Limits{}).Load(context.Background(), testRepo, []string{dg})
	if err != nil || string(ev.Files["a.link"]) != "1" || string(ev.Files["sub.x/b.link"]) != "2" {
		t.Fatalf("after restart: %v %v", names(ev.Files), err)
	}
	// Replacing drops files the new set does not have.
	if err := c.Store(testRepo, dg, map[string][]byte{"c.link": []byte("3")}); err != nil {
		t.Fatal(err)
	}
	ev, _ = c.Load(context.Background(), "registry.test/app", []string{dg})
	if len(ev.Files) != 1 || string(ev.Files["c.link"]) != "3" {
		t.Fatalf("after replace: %v", names(ev.Files))
	}
	if err := c.Store(testRepo, dg, nil); err != nil {
		t.Fatal(err)
	}
	if ev, _ = c.Load(context.Background(), "registry.test/app", []string{dg}); len(ev.Files) != 0 {
		t.Fatal("empty store kept files")
	}
	leftovers, _ := filepath.Glob(filepath.Join(root, ".*"))
	if len(leftovers) != 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}
}

func TestCacheRefusesUnsafeNames(t *testing.T) {
	c := NewCache(t.TempDir(), Limits{})
	for _, n := range []string{"../escape", "/abs", "a/../../b", ".hidden", "a/.git/x", "a\\b", "", "a//b"} {
		if err := c.Store(testRepo, digestOf("m"), map[string][]byte{n: []byte("x")}); err == nil {
			t.Errorf("name %q accepted", n)
		}
	}
}

func TestCachePrune(t *testing.T) {
	c := NewCache(t.TempDir(), Limits{})
	for i := range 5 {
		if err := c.Store(testRepo, digestOf(string(rune('a'+i))), map[string][]byte{"x": []byte("1")}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := c.Prune(3)
	if err != nil || n != 2 {
		t.Fatalf("Prune removed %d, %v; want 2", n, err)
	}
	ents, _ := os.ReadDir(filepath.Join(c.Root(), repoDir(testRepo), "sha256"))
	if len(ents) != 3 {
		t.Fatalf("%d entries left, want 3", len(ents))
	}
}

type fetcherFunc func(ctx context.Context, repo string, digests ...string) (map[string][]byte, error)

func (f fetcherFunc) Fetch(ctx context.Context, repo string, digests ...string) (map[string][]byte, error) {
	return f(ctx, repo, digests...)
}

func TestRegistryRefresh(t *testing.T) {
	c := NewCache(t.TempDir(), Limits{})
	a, b := digestOf("a"), digestOf("b")
	var outcomes []string
	fail := false
	f := fetcherFunc(func(_ context.Context, repo string, ds ...string) (map[string][]byte, error) {
		if len(ds) != 1 || repo != "registry.test/app" {
			t.Fatalf("Fetch(%q, %v)", repo, ds)
		}
		if fail && ds[0] == b {
			return nil, errors.New("503 Service Unavailable")
		}
		if ds[0] == a {
			return map[string][]byte{"prov.dsse.json": []byte("P")}, nil
		}
		return map[string][]byte{}, nil
	})
	r := NewRegistry(f, c, func(o string) { outcomes = append(outcomes, o) })
	n, err := r.Refresh(context.Background(), "registry.test/app", []string{a, b})
	if err != nil || n != 1 {
		t.Fatalf("Refresh = %d, %v", n, err)
	}
	if strings.Join(outcomes, ",") != "found,not_found" {
		t.Errorf("outcomes %v", outcomes)
	}
	ev, _ := c.Load(context.Background(), "registry.test/app", []string{a})
	if string(ev.Files["prov.dsse.json"]) != "P" {
		t.Fatal("fetched evidence not cached")
	}
	// A failure half-way keeps the cache as it was.
	fail = true
	if _, err := r.Refresh(context.Background(), "registry.test/app", []string{a, b}); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("err = %v", err)
	}
	if ev, _ := c.Load(context.Background(), "registry.test/app", []string{a}); len(ev.Files) != 1 {
		t.Fatal("a failed refresh changed the cache")
	}
	if _, err := r.Refresh(context.Background(), "", []string{a}); err == nil {
		t.Fatal("no repository: no error")
	}
	// A registry behind an open circuit is counted apart from other failures.
	outcomes = nil
	open := NewRegistry(fetcherFunc(func(context.Context, string, ...string) (map[string][]byte, error) {
		return nil, fmt.Errorf("registry registry.test: %w: registry.test failed 3 requests in a row", registry.ErrCircuitOpen)
	}), c, func(o string) { outcomes = append(outcomes, o) })
	if _, err := open.Refresh(context.Background(), "registry.test/app", []string{a}); !errors.Is(err, registry.ErrCircuitOpen) {
		t.Fatalf("Refresh behind an open circuit = %v", err)
	}
	if strings.Join(outcomes, ",") != OutcomeCircuitOpen {
		t.Errorf("outcomes %v; want %s", outcomes, OutcomeCircuitOpen)
	}
}

func names(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

const testRepo = "registry.test/app"

// A fetch through another repository with the same digest (a copy of the image, or an
// index containing it) neither replaces nor removes what the image's own repository
// stored, and is not read for it.
func TestCacheKeyedByRepository(t *testing.T) {
	c := NewCache(t.TempDir(), Limits{})
	dg := digestOf("m")
	ctx := context.Background()
	if err := c.Store(testRepo, dg, map[string][]byte{"prov.dsse.json": []byte("victim")}); err != nil {
		t.Fatal(err)
	}
	const other = "registry.test/attacker/copy"
	if err := c.Store(other, dg, map[string][]byte{"prov.dsse.json": []byte("attacker")}); err != nil {
		t.Fatal(err)
	}
	if ev, err := c.Load(ctx, testRepo, []string{dg}); err != nil || string(ev.Files["prov.dsse.json"]) != "victim" {
		t.Fatalf("victim's evidence after another repository's fetch: %q %v", ev.Files["prov.dsse.json"], err)
	}
	if ev, _ := c.Load(ctx, other, []string{dg}); string(ev.Files["prov.dsse.json"]) != "attacker" {
		t.Fatalf("the other repository reads %q", ev.Files["prov.dsse.json"])
	}
	if err := c.Store(other, dg, nil); err != nil { // "no evidence" through the other repository
		t.Fatal(err)
	}
	if ev, _ := c.Load(ctx, testRepo, []string{dg}); len(ev.Files) != 1 {
		t.Fatal("an empty fetch through another repository removed the victim's evidence")
	}
	if ev, err := c.Load(ctx, "", []string{dg}); err != nil || len(ev.Files) != 0 {
		t.Fatalf("no repository: %v %v", names(ev.Files), err)
	}
	if err := c.Store("", dg, map[string][]byte{"x": []byte("1")}); err == nil {
		t.Fatal("Store without a repository: no error")
	}
	// Repository names never become paths: each is one fixed-length hex element.
	for _, repo := range []string{"../../etc", "a/b/../../..", strings.Repeat("r/", 300)} {
		if err := c.Store(repo, dg, map[string][]byte{"x": []byte("1")}); err != nil {
			t.Fatalf("Store(%q): %v", repo, err)
		}
		if _, err := os.Stat(filepath.Join(c.Root(), repoDir(repo), "sha256")); err != nil {
			t.Fatalf("repository %q not kept under its hash: %v", repo, err)
		}
	}
}

// Whatever a Refresh stores for an image, the cache reads back for the image's digests
// together; evidence beyond that is refused before anything is stored.
func TestRefreshHoldsThePerImageBudget(t *testing.T) {
	lim := Limits{MaxFileBytes: 100, MaxFiles: 4, MaxTotalBytes: 250, MaxDepth: 2}
	ds := []string{digestOf("index"), digestOf("amd64"), digestOf("arm64")}
	serve := map[string]map[string][]byte{}
	f := fetcherFunc(func(_ context.Context, _ string, d ...string) (map[string][]byte, error) {
		return serve[d[0]], nil
	})
	ctx := context.Background()
	tests := []struct {
		name  string
		files []int // file sizes per digest, one file each unless 0
		count int   // files per digest
		want  error
	}{
		{"within", []int{80, 80, 80}, 1, nil},
		{"bytes over, each digest within", []int{90, 90, 90}, 1, ErrOverLimit},
		{"files over, each digest within", []int{1, 1, 1}, 2, ErrOverLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCache(t.TempDir(), lim)
			for i, d := range ds {
				serve[d] = map[string][]byte{}
				for j := range tt.count {
					serve[d][string(rune('a'+j))+".link"] = []byte(strings.Repeat("x", tt.files[i]))
				}
			}
			_, err := NewRegistry(f, c, nil).Refresh(ctx, testRepo, ds)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Refresh: %v, want %v", err, tt.want)
			}
			ev, lerr := c.Load(ctx, testRepo, ds)
			if lerr != nil {
				t.Fatalf("the cache cannot read what Refresh left: %v", lerr)
			}
			if tt.want != nil && len(ev.Files) != 0 {
				t.Fatalf("refused evidence stored: %v", names(ev.Files))
			}
			if tt.want == nil && len(ev.Files) == 0 {
				t.Fatal("nothing stored")
			}
		})
	}
	// The default limits hold what the registry client may return for one digest, twice.
	if DefaultLimits.MaxTotalBytes < 2*(8<<20) || DefaultLimits.MaxFiles < 2*128 {
		t.Errorf("DefaultLimits %+v hold less than an index and a platform manifest at the fetch limits", DefaultLimits)
	}
}

func TestCachePruneRepositories(t *testing.T) {
	c := NewCache(t.TempDir(), Limits{})
	for i, repo := range []string{"r/a", "r/b", "r/c"} {
		if err := c.Store(repo, digestOf(string(rune('a'+i))), map[string][]byte{"x": []byte("1")}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // distinct modification times
	}
	legacy := filepath.Join(c.Root(), "sha256", strings.Repeat("a", 64))
	if err := os.MkdirAll(legacy, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := c.Store("r/empty", digestOf("e"), nil); err != nil { // leaves empty directories
		t.Fatal(err)
	}
	n, err := c.Prune(2)
	if err != nil || n != 1 {
		t.Fatalf("Prune removed %d, %v; want 1", n, err)
	}
	if ev, _ := c.Load(context.Background(), "r/a", []string{digestOf("a")}); len(ev.Files) != 0 {
		t.Error("the oldest entry was kept")
	}
	if ev, _ := c.Load(context.Background(), "r/c", []string{digestOf("c")}); len(ev.Files) != 1 {
		t.Error("the newest entry was removed")
	}
	for _, gone := range []string{filepath.Join(c.Root(), "sha256"), filepath.Join(c.Root(), repoDir("r/empty"))} {
		if _, err := os.Stat(gone); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s not removed: %v", gone, err)
		}
	}
	// A Store after its repository's directory was pruned away still installs.
	if err := c.Store("r/empty", digestOf("e"), map[string][]byte{"x": []byte("1")}); err != nil {
		t.Fatal(err)
	}
}

// A tree that cannot be written (here a file and a directory of one name) is an error from
// Store, and leaves no partial entry that Load would later read as the image's evidence.
func TestCacheStoreWriteFailureIsAnError(t *testing.T) {
	c := NewCache(t.TempDir(), Limits{})
	dg := "sha256:" + strings.Repeat("ab", 32)
	err := c.Store(testRepo, dg, map[string][]byte{"a": []byte("x"), "a/b": []byte("y")})
	if err == nil {
		t.Fatal("Store of an unwritable tree: want an error, got nil")
	}
	ev, err := c.Load(context.Background(), testRepo, []string{dg})
	if err != nil {
		t.Fatalf("Load after a failed Store: %v", err)
	}
	if len(ev.Files) != 0 {
		t.Fatalf("Load after a failed Store found %d files; want none", len(ev.Files))
	}
}
