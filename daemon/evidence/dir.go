package evidence

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"tollgate.dev/tollgate/policy"
)

// Dir is a Source over a directory in the layout described in the package documentation.
// The node evidence directory is a Dir; so is the read side of the disk Cache.
type Dir struct {
	name   string
	root   string
	limits Limits
}

// NewDir returns a Source that reads root. name labels it in logs ("evidence-dir").
// A zero Limits means DefaultLimits.
func NewDir(name, root string, limits Limits) *Dir {
	if limits == (Limits{}) {
		limits = DefaultLimits
	}
	return &Dir{name: name, root: root, limits: limits}
}

// Name implements Source.
func (d *Dir) Name() string { return d.name }

// Root is the directory read.
func (d *Dir) Root() string { return d.root }

// Load implements Source. A missing root or digest directory is no evidence, not an error.
// The repository is not used: the node directory serves every image with the digests.
func (d *Dir) Load(ctx context.Context, _ string, digests []string) (policy.Evidence, error) {
	return d.loadTree(ctx, d.root, digests)
}

// loadTree reads the digest directories below root, merged, within d's limits for all of
// them together.
func (d *Dir) loadTree(ctx context.Context, root string, digests []string) (policy.Evidence, error) {
	return d.loadTreeChecked(ctx, root, digests, nil)
}

// loadTreeChecked is loadTree with check, when not nil, called on each digest directory's
// files as read; its error fails the load.
func (d *Dir) loadTreeChecked(ctx context.Context, root string, digests []string, check func(dir string, files map[string][]byte) error) (policy.Evidence, error) {
	r := &treeReader{limits: d.limits}
	files := map[string][]byte{}
	seen := make(map[string]bool, len(digests))
	for _, dg := range digests {
		if seen[dg] {
			continue // read once: Refresh counts it once against the same limits
		}
		seen[dg] = true
		rel, err := digestPath(dg)
		if err != nil {
			return policy.Evidence{}, fmt.Errorf("%s: %w", d.name, err)
		}
		if err := ctx.Err(); err != nil {
			return policy.Evidence{}, err
		}
		one := map[string][]byte{}
		dir := filepath.Join(root, filepath.FromSlash(rel))
		if err := r.read(dir, "", 0, one); err != nil {
			if errors.Is(err, errNoDir) {
				continue
			}
			return policy.Evidence{}, fmt.Errorf("%s %s: %w", d.name, dir, err)
		}
		if check != nil {
			if err := check(dir, one); err != nil {
				return policy.Evidence{}, fmt.Errorf("%s entry for %s: %w", d.name, dg, err)
			}
		}
		merge(files, dg, one)
	}
	if len(files) == 0 {
		return policy.Evidence{}, nil
	}
	return policy.Evidence{Files: files, Version: Version(files)}, nil
}

// errNoDir says a digest directory does not exist: no evidence, not a failure.
var errNoDir = errors.New("no such directory")

// treeReader reads directory trees while keeping count against Limits across all of them.
type treeReader struct {
	limits Limits
	files  int
	total  int64
}

// read adds every regular file below dir to out, keyed by its slash-separated path
// relative to the digest directory (prefix). A missing dir at depth 0 is errNoDir.
func (r *treeReader) read(dir, prefix string, depth int, out map[string][]byte) error {
	if depth > r.limits.MaxDepth {
		return fmt.Errorf("%q nests deeper than %d directories", prefix, r.limits.MaxDepth)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if depth == 0 && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) {
			return errNoDir
		}
		return fmt.Errorf("read directory: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		full := filepath.Join(dir, name)
		rel := path.Join(prefix, name)
		// Stat, not e.Info: follow symbolic links (projected volumes are made of them).
		info, err := os.Stat(full)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // a dangling link, or a file removed while we read
			}
			return fmt.Errorf("%s: %w", rel, err)
		}
		switch {
		case info.IsDir():
			if err := r.read(full, rel, depth+1, out); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			data, err := r.readFile(full, rel, info.Size())
			if err != nil {
				return err
			}
			out[rel] = data
		}
	}
	return nil
}

func (r *treeReader) readFile(full, rel string, size int64) ([]byte, error) {
	r.files++
	if r.files > r.limits.MaxFiles {
		return nil, fmt.Errorf("more than %d evidence files", r.limits.MaxFiles)
	}
	if size > r.limits.MaxFileBytes {
		return nil, fmt.Errorf("%s is %d bytes, over the limit of %d", rel, size, r.limits.MaxFileBytes)
	}
	f, err := os.Open(full)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	defer f.Close()
	// The size from Stat may be stale: bound the read itself too.
	data, err := io.ReadAll(io.LimitReader(f, r.limits.MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	if int64(len(data)) > r.limits.MaxFileBytes {
		return nil, fmt.Errorf("%s is over the limit of %d bytes", rel, r.limits.MaxFileBytes)
	}
	r.total += int64(len(data))
	if r.total > r.limits.MaxTotalBytes {
		return nil, fmt.Errorf("evidence is over the limit of %d bytes in total", r.limits.MaxTotalBytes)
	}
	return data, nil
}

// RootFault says what is wrong with the directory d reads, or nil: a root that is not a
// directory (an evidence directory replaced by a regular file), or, when required (the
// disk cache, which the daemon creates at start), one that no longer exists. Reads treat
// both as no evidence, so without this check they would pass unnoticed.
func (d *Dir) RootFault(required bool) error {
	info, err := os.Stat(d.root)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if required {
			return fmt.Errorf("the %s %s does not exist (deleted?); evidence fetched before is gone", d.name, d.root)
		}
		return nil
	case err != nil:
		return fmt.Errorf("the %s %s cannot be read: %w", d.name, d.root, err)
	case !info.IsDir():
		return fmt.Errorf("the %s %s is not a directory: no evidence can be read from it", d.name, d.root)
	}
	return nil
}
