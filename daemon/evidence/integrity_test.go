package evidence

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 12, item 6: a disk cache entry that no longer holds what was fetched (truncated,
// altered, a file missing or added) is an infrastructure fault: Load says so with
// ErrDamaged, moves the entry aside and counts it; it never reads as evidence.
func TestCacheQuarantinesDamagedEntries(t *testing.T) {
	fetched := map[string][]byte{"a.link": []byte(`{"signed":{"_type":"link"}}`), "sub.x/b.link": []byte("2")}
	tests := []struct {
		name   string
		damage func(t *testing.T, entry string)
		want   string
	}{
		{"truncated file", func(t *testing.T, entry string) {
			must(t, os.WriteFile(filepath.Join(entry, "a.link"), []byte(`{"signed":{"_ty`), 0o600))
		}, "a.link differs from what was fetched"},
		{"file removed", func(t *testing.T, entry string) {
			must(t, os.Remove(filepath.Join(entry, "sub.x", "b.link")))
		}, "1 of its 2 fetched files are missing"},
		{"file added", func(t *testing.T, entry string) {
			must(t, os.WriteFile(filepath.Join(entry, "c.link"), []byte("x"), 0o600))
		}, "c.link was not fetched"},
		{"sums unreadable", func(t *testing.T, entry string) {
			must(t, os.WriteFile(filepath.Join(entry, sumsFile), []byte("garbage"), 0o600))
		}, "unreadable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			c := NewCache(root, Limits{})
			dg := digestOf("m")
			must(t, c.Store(testRepo, dg, fetched))
			entries, _ := filepath.Glob(filepath.Join(root, "*", "sha256", "*"))
			if len(entries) != 1 {
				t.Fatalf("entries %v", entries)
			}
			tt.damage(t, entries[0])
			ev, err := c.Load(context.Background(), testRepo, []string{dg})
			if !errors.Is(err, ErrDamaged) || len(ev.Files) != 0 {
				t.Fatalf("damaged entry read as %d files, err %v; want ErrDamaged", len(ev.Files), err)
			}
			for _, w := range []string{tt.want, "moved aside", "fetched again"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if c.Quarantined() != 1 {
				t.Errorf("Quarantined() = %d, want 1", c.Quarantined())
			}
			if q, _ := filepath.Glob(filepath.Join(root, ".quarantine-*")); len(q) != 1 {
				t.Errorf("quarantined entries %v, want 1", q)
			}
			// Gone from its place: the next read finds nothing (and the gate fetches again).
			if ev, err := c.Load(context.Background(), testRepo, []string{dg}); err != nil || len(ev.Files) != 0 {
				t.Errorf("after quarantine: %d files, %v", len(ev.Files), err)
			}
			// A fresh fetch is read normally.
			must(t, c.Store(testRepo, dg, fetched))
			if ev, err := c.Load(context.Background(), testRepo, []string{dg}); err != nil || len(ev.Files) != 2 {
				t.Errorf("after refetch: %d files, %v", len(ev.Files), err)
			}
		})
	}
}

// An entry written before sums existed is read as it is (an upgrade keeps the cache an
// air-gapped node relies on).
func TestCacheEntryWithoutSumsIsRead(t *testing.T) {
	root := t.TempDir()
	c := NewCache(root, Limits{})
	dg := digestOf("m")
	must(t, c.Store(testRepo, dg, map[string][]byte{"a.link": []byte("1")}))
	sums, _ := filepath.Glob(filepath.Join(root, "*", "sha256", "*", sumsFile))
	if len(sums) != 1 {
		t.Fatalf("sums files %v", sums)
	}
	must(t, os.Remove(sums[0]))
	if ev, err := c.Load(context.Background(), testRepo, []string{dg}); err != nil || string(ev.Files["a.link"]) != "1" {
		t.Fatalf("entry without sums: %v %v", names(ev.Files), err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
