package evidence

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// Cache is the daemon's disk cache of evidence fetched from registries, kept per
// repository and digest (see the package documentation). It reads like a Dir and is
// written one digest at a time, atomically: a digest's files are written to a temporary
// directory beside the tree and renamed into place, so a reader sees the old set, the new
// set, or (for the instant between replacing an old set and installing the new one) no
// set, never a mix. It survives restarts; what it holds is verified again on every read,
// since it is only bytes.
type Cache struct {
	*Dir
	quarantined atomic.Uint64
}

// NewCache returns the cache rooted at root (normally <cache-dir>/evidence).
func NewCache(root string, limits Limits) *Cache {
	return &Cache{Dir: NewDir("disk cache", root, limits)}
}

// RegistryFilled says the cache holds only what registry fetches stored: an error reading
// it may be cured by fetching again, which replaces the entries.
func (c *Cache) RegistryFilled() bool { return true }

// Store replaces the evidence cached for digest, as fetched through repo, with files. No
// files remove the entry. Entries of other repositories are untouched. File names must be
// clean relative paths (see validName).
func (c *Cache) Store(repo, digest string, files map[string][]byte) error {
	if repo == "" {
		return errors.New("disk cache: evidence without a repository")
	}
	rel, err := digestPath(digest)
	if err != nil {
		return err
	}
	if err := c.checkFiles(files); err != nil {
		return fmt.Errorf("evidence for %s@%s: %w", repo, digest, err)
	}
	rd := repoDir(repo)
	target := filepath.Join(c.root, rd, filepath.FromSlash(rel))
	if err := mkdirRacingPrune(filepath.Dir(target)); err != nil {
		return fmt.Errorf("disk cache: %w", err)
	}
	if len(files) == 0 {
		return c.replace(target, "", rd)
	}
	tmp, err := os.MkdirTemp(c.root, ".tmp-")
	if err != nil {
		return fmt.Errorf("disk cache: %w", err)
	}
	err = writeTree(tmp, files)
	if err == nil {
		err = writeSums(tmp, files)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("disk cache: %w", err)
	}
	if err := c.replace(target, tmp, rd); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return nil
}

// mkdirRacingPrune is os.MkdirAll for a directory that Prune may remove, empty, between
// MkdirAll's steps (it then fails with "no such file or directory"): it tries again, a
// few times. A fetch that lost that race would otherwise be reported as a registry
// failure.
func mkdirRacingPrune(dir string) error {
	var err error
	for range 3 {
		if err = os.MkdirAll(dir, 0o700); !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return err
}

// replace installs dir (already complete) at target, moving any old set out of the way
// first; an empty dir just removes target. rd (the repository's directory) keeps the
// names of old sets of different repositories apart.
func (c *Cache) replace(target, dir, rd string) error {
	var old string
	if _, err := os.Lstat(target); err == nil {
		old = filepath.Join(c.root, fmt.Sprintf(".old-%d-%s-%s", time.Now().UnixNano(), rd[:16], filepath.Base(target)))
		if err := os.Rename(target, old); err != nil {
			return fmt.Errorf("disk cache: move old evidence aside: %w", err)
		}
	}
	if dir != "" {
		err := os.Rename(dir, target)
		if errors.Is(err, fs.ErrNotExist) {
			// Prune removed the repository's directory, empty, since Store made it.
			if err = mkdirRacingPrune(filepath.Dir(target)); err == nil {
				err = os.Rename(dir, target)
			}
		}
		if err != nil {
			return fmt.Errorf("disk cache: install evidence: %w", err)
		}
		syncDir(filepath.Dir(target))
	}
	if old != "" {
		os.RemoveAll(old)
	}
	return nil
}

func (c *Cache) checkFiles(files map[string][]byte) error {
	if len(files) > c.limits.MaxFiles {
		return fmt.Errorf("%d files, over the limit of %d", len(files), c.limits.MaxFiles)
	}
	var total int64
	for name, data := range files {
		if err := validName(name, c.limits.MaxDepth); err != nil {
			return err
		}
		if int64(len(data)) > c.limits.MaxFileBytes {
			return fmt.Errorf("%s is %d bytes, over the limit of %d", name, len(data), c.limits.MaxFileBytes)
		}
		total += int64(len(data))
	}
	if total > c.limits.MaxTotalBytes {
		return fmt.Errorf("%d bytes in total, over the limit of %d", total, c.limits.MaxTotalBytes)
	}
	return nil
}

// validName accepts a clean, relative, slash-separated path whose elements do not start
// with "." (which Dir would skip, and which could name "..").
func validName(name string, maxDepth int) error {
	if !fs.ValidPath(name) || name == "." || len(name) > 255 || strings.ContainsRune(name, '\\') {
		return fmt.Errorf("unsafe evidence file name %q", name)
	}
	elems := strings.Split(name, "/")
	if len(elems) > maxDepth+1 {
		return fmt.Errorf("evidence file name %q nests too deep", name)
	}
	for _, e := range elems {
		if strings.HasPrefix(e, ".") {
			return fmt.Errorf("evidence file name %q has a hidden element", name)
		}
	}
	return nil
}

func writeTree(root string, files map[string][]byte) error {
	for name, data := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if err := writeFileSync(p, data); err != nil {
			return err
		}
	}
	return nil
}

// writeFileSync writes and fsyncs, so a rename after a crash never exposes an empty file.
func writeFileSync(p string, data []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}

// Prune bounds the cache: it keeps the maxEntries most recently written entries (a
// repository and digest each), removes repository directories left empty, removes
// temporary directories older than an hour (left by a crash mid-write), and removes the
// digest-only tree of earlier versions (<root>/sha256/...), which nothing reads. It
// returns the number of entries removed.
func (c *Cache) Prune(maxEntries int) (int, error) {
	if err := c.pruneTemp(time.Hour); err != nil {
		return 0, err
	}
	repos, err := os.ReadDir(c.root)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("disk cache: %w", err)
	}
	type entry struct {
		path string
		mod  time.Time
	}
	var all []entry
	for _, r := range repos {
		name := r.Name()
		switch {
		case strings.HasPrefix(name, "."):
			continue
		case isAlgorithm(name):
			os.RemoveAll(filepath.Join(c.root, name)) // the digest-only layout of old versions
			continue
		case !r.IsDir():
			continue
		}
		found := 0
		for _, alg := range algorithms {
			dir := filepath.Join(c.root, name, alg)
			ents, err := os.ReadDir(dir)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return 0, fmt.Errorf("disk cache: %w", err)
			}
			for _, e := range ents {
				if info, err := e.Info(); err == nil {
					all = append(all, entry{filepath.Join(dir, e.Name()), info.ModTime()})
					found++
				}
			}
		}
		if found == 0 {
			c.removeEmpty(filepath.Join(c.root, name))
		}
	}
	if len(all) <= maxEntries {
		return 0, nil
	}
	sort.Slice(all, func(i, j int) bool { return all[i].mod.After(all[j].mod) })
	removed := 0
	for _, e := range all[maxEntries:] {
		if os.RemoveAll(e.path) == nil {
			removed++
		}
	}
	return removed, nil
}

var algorithms = []string{"sha256", "sha384", "sha512"}

func isAlgorithm(name string) bool {
	for _, a := range algorithms {
		if name == a {
			return true
		}
	}
	return false
}

// removeEmpty removes a repository directory holding only empty algorithm directories.
// os.Remove refuses a directory that is not empty, so a Store racing with it loses
// nothing: at worst its MkdirAll's directories vanish before its rename, which then
// fails, and the fetch is retried.
func (c *Cache) removeEmpty(dir string) {
	for _, alg := range algorithms {
		os.Remove(filepath.Join(dir, alg))
	}
	os.Remove(dir)
}

func (c *Cache) pruneTemp(age time.Duration) error {
	ents, err := os.ReadDir(c.root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("disk cache: %w", err)
	}
	for _, e := range ents {
		keep := age
		switch {
		case strings.HasPrefix(e.Name(), ".quarantine-"):
			keep = 24 * time.Hour // long enough for an operator to look at it
		case !strings.HasPrefix(e.Name(), ".tmp-") && !strings.HasPrefix(e.Name(), ".old-"):
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > keep {
			os.RemoveAll(filepath.Join(c.root, e.Name()))
		}
	}
	return nil
}
