// Package policydir reads a node's policy directory: every file below it, by relative
// path, bounded, confined to the directory, and consistent across a Kubernetes ConfigMap
// update. The node daemon and `tollgate verify --policy-dir` both read through it, so the
// CLI sees exactly the files the node does.
package policydir

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// Limits bound what one read takes in.
type Limits struct {
	MaxFileBytes  int64
	MaxFiles      int
	MaxTotalBytes int64
	MaxDepth      int
}

// DefaultLimits are generous for policies, layouts and keys, and bounded.
var DefaultLimits = Limits{MaxFileBytes: 16 << 20, MaxFiles: 4096, MaxTotalBytes: 128 << 20, MaxDepth: 8}

// dataLink is where the kubelet points a mounted ConfigMap's current content. An update
// writes a new timestamped directory, then renames a new ..data link over the old one,
// then removes the old directory.
const dataLink = "..data"

// reads is how often Read tries for a consistent view while the directory is changing.
const reads = 3

// testHookFileRead runs after each file read; tests use it to change the directory
// mid-read.
var testHookFileRead = func(name string) {}

// Read reads every regular file below dir by slash-separated relative path.
//
//   - Entries whose name starts with "." are skipped: a ConfigMap keeps its real files
//     under "..data" and shows them through symbolic links, which are followed.
//   - No path leaves dir: a symbolic link that points outside it is an error naming the
//     link, since a policy directory must not pull trust from elsewhere on the node.
//   - A read that overlaps a ConfigMap update (..data changed while reading) is read
//     again, so old and new files are never mixed.
func Read(dir string, lim Limits) (map[string][]byte, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	for attempt := 1; ; attempt++ {
		before := dataTarget(root)
		files, err := readTree(root, lim)
		if dataTarget(root) == before {
			return files, err
		}
		if attempt == reads {
			return nil, fmt.Errorf("%s changed during each of %d reads (a ConfigMap update in progress?)", dataLink, reads)
		}
	}
}

// dataTarget is where ..data points now ("" when there is none).
func dataTarget(root *os.Root) string {
	t, err := root.Readlink(dataLink)
	if err != nil {
		return ""
	}
	return t
}

func readTree(root *os.Root, lim Limits) (map[string][]byte, error) {
	r := reader{root: root, lim: lim, files: map[string][]byte{}}
	if err := r.walk(".", 0); err != nil {
		return nil, err
	}
	return r.files, nil
}

type reader struct {
	root  *os.Root
	lim   Limits
	files map[string][]byte
	total int64
}

func (r *reader) walk(dir string, depth int) error {
	if depth > r.lim.MaxDepth {
		return fmt.Errorf("%s: nested deeper than %d directories", dir, r.lim.MaxDepth)
	}
	entries, err := r.readDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		name := path.Join(dir, e.Name())
		info, err := r.root.Stat(name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue // a dangling link, or removed during the read
		case err != nil && strings.Contains(err.Error(), "escapes"):
			// os.Root has no exported error for it; its text is stable since Go 1.24.
			return fmt.Errorf("%s links outside the policy directory, and trust comes only from files inside it: %w", name, err)
		case err != nil:
			return fmt.Errorf("%s: %w", name, err)
		case info.IsDir():
			if err := r.walk(name, depth+1); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			if err := r.read(name); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *reader) readDir(dir string) ([]fs.DirEntry, error) {
	f, err := r.root.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
}

func (r *reader) read(name string) error {
	if len(r.files) >= r.lim.MaxFiles {
		return fmt.Errorf("more than %d files", r.lim.MaxFiles)
	}
	f, err := r.root.Open(name)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(f, r.lim.MaxFileBytes+1)); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if int64(buf.Len()) > r.lim.MaxFileBytes {
		return fmt.Errorf("%s: over the limit of %d bytes", name, r.lim.MaxFileBytes)
	}
	if r.total += int64(buf.Len()); r.total > r.lim.MaxTotalBytes {
		return fmt.Errorf("more than %d bytes in total", r.lim.MaxTotalBytes)
	}
	r.files[name] = buf.Bytes()
	testHookFileRead(name)
	return nil
}
