// Package linkrec records in-toto links on a build machine: it hashes materials and
// products as Python in-toto does (in-toto-golang's RecordArtifacts, plus Python's path
// normalization, default exclude patterns and skipping of missing paths), runs the step's
// command capturing its exit code and output, and builds the link document. Signing is
// policy/envelope's business.
//
// It is for the CLI (`tollgate run`, `tollgate record`); the node daemon never uses it.
package linkrec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	intotogo "github.com/in-toto/in-toto-golang/in_toto"
	"github.com/shibumi/go-pathspec"

	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/intoto"
)

// DefaultExclude is Python in-toto's ARTIFACT_EXCLUDE_PATTERNS, used when no --exclude is
// given.
var DefaultExclude = []string{"*.link*", ".git", "*.pyc", "*~"}

// MaxStreamBytes bounds the stdout and stderr recorded as byproducts (the terminal still
// sees everything).
const MaxStreamBytes = 1 << 20

// Options controls artifact recording.
type Options struct {
	// BasePath is the directory paths are relative to (Python's --base-path).
	BasePath string
	// Exclude are gitignore-style patterns; nil means DefaultExclude.
	Exclude []string
	// LStrip are prefixes removed from recorded paths (--lstrip-paths).
	LStrip []string
	// FollowSymlinkDirs descends into symlinked directories.
	FollowSymlinkDirs bool
	// NormalizeLineEndings hashes files with CRLF and CR turned into LF.
	NormalizeLineEndings bool
}

// recordMu serializes recording: a base path is entered with chdir, as Python does.
var recordMu sync.Mutex

// Record hashes the files at paths (directories are walked) with sha256, as Python's
// record_artifacts_as_dict does: paths are normalized, missing paths and broken symlinks
// are skipped, exclude patterns apply to directories (pruning them) and files, and the
// first matching lstrip prefix is removed. Hashing is in-toto-golang's RecordArtifact.
func Record(paths []string, o Options) (map[string]intoto.HashObj, error) {
	out := map[string]intoto.HashObj{}
	if len(paths) == 0 {
		return out, nil
	}
	if err := checkLStrip(o.LStrip); err != nil {
		return nil, err
	}
	recordMu.Lock()
	defer recordMu.Unlock()
	if o.BasePath != "" {
		prev, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		if err := os.Chdir(o.BasePath); err != nil {
			return nil, fmt.Errorf("cannot use %q as base path: %w", o.BasePath, err)
		}
		defer os.Chdir(prev) //nolint:errcheck // best effort, as Python
	}
	exclude := o.Exclude
	if exclude == nil {
		exclude = DefaultExclude
	}
	w := &walker{exclude: exclude, follow: o.FollowSymlinkDirs, visited: map[string]bool{}}
	for _, p := range paths {
		if err := w.top(filepath.Clean(p)); err != nil {
			return nil, err
		}
	}
	for _, f := range w.files {
		h, err := intotogo.RecordArtifact(f, []string{"sha256"}, o.NormalizeLineEndings)
		if err != nil {
			return nil, fmt.Errorf("hashing %s: %w", f, err)
		}
		key := filepath.ToSlash(f)
		for _, prefix := range o.LStrip {
			if strings.HasPrefix(key, prefix) {
				key = strings.TrimPrefix(key, prefix)
				break
			}
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("left stripping made two artifacts named %q", key)
		}
		out[key] = intoto.HashObj(h)
	}
	return out, nil
}

// maxWalkDepth bounds directory nesting (and symlink loops with --follow-symlink-dirs).
const maxWalkDepth = 256

type walker struct {
	exclude []string
	follow  bool
	visited map[string]bool // real paths of the directories being walked (ancestors)
	files   []string
}

func (w *walker) excluded(p string) (bool, error) {
	ok, err := pathspec.GitIgnore(w.exclude, filepath.ToSlash(p))
	if err != nil {
		return false, fmt.Errorf("exclude patterns: %w", err)
	}
	return ok, nil
}

// top handles one path as given: Python applies the exclude patterns to it too.
func (w *walker) top(p string) error {
	if ex, err := w.excluded(p); err != nil || ex {
		return err
	}
	st, err := os.Stat(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil // missing paths and broken symlinks are skipped, as Python does
	case err != nil:
		return fmt.Errorf("recording %s: %w", p, err)
	case st.Mode().IsRegular():
		w.files = append(w.files, p)
		return nil
	case st.IsDir():
		return w.dir(p, 0)
	}
	return nil
}

func (w *walker) dir(d string, depth int) error {
	if depth > maxWalkDepth {
		return fmt.Errorf("recording %s: directories nested deeper than %d (a symlink loop?)", d, maxWalkDepth)
	}
	// A directory that is its own ancestor (through a followed symlink) is a loop: stop
	// there, as os.walk's recursion eventually would, instead of going round.
	if real, err := filepath.EvalSymlinks(d); err == nil {
		if w.visited[real] {
			return nil
		}
		w.visited[real] = true
		defer delete(w.visited, real)
	}
	entries, err := os.ReadDir(d)
	if err != nil {
		return fmt.Errorf("recording %s: %w", d, err)
	}
	for _, e := range entries {
		p := filepath.Join(d, e.Name())
		if d == "." {
			p = e.Name()
		}
		isLink := e.Type()&os.ModeSymlink != 0
		st, err := os.Stat(p)
		if err != nil {
			continue // broken symlink
		}
		if ex, err := w.excluded(p); err != nil {
			return err
		} else if ex {
			continue
		}
		switch {
		case st.IsDir():
			if isLink && !w.follow {
				continue
			}
			if err := w.dir(p, depth+1); err != nil {
				return err
			}
		case st.Mode().IsRegular():
			w.files = append(w.files, p)
		}
	}
	return nil
}

// checkLStrip rejects prefixes of which one is a prefix of another, as Python does.
func checkLStrip(ps []string) error {
	for i, a := range ps {
		for _, b := range ps[i+1:] {
			if strings.HasPrefix(a, b) || strings.HasPrefix(b, a) {
				return fmt.Errorf("--lstrip-paths %q and %q overlap; one is a prefix of the other", a, b)
			}
		}
	}
	return nil
}

// Result is what a command did.
type Result struct {
	ExitCode int
	Stdout   []byte
	Stderr   []byte
}

// Byproducts renders r the way in-toto-run records it.
func (r *Result) Byproducts() map[string]any {
	return map[string]any{"return-value": r.ExitCode, "stdout": string(r.Stdout), "stderr": string(r.Stderr)}
}

// Run runs argv, copying its output to stdout and stderr while recording (up to
// MaxStreamBytes of) it. A command that runs and fails is a Result with its exit code, not
// an error; a command that cannot start is an error.
func Run(ctx context.Context, argv []string, stdout, stderr io.Writer) (*Result, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("no command to run")
	}
	var outBuf, errBuf capped
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = nil
	cmd.Stdout = io.MultiWriter(orDiscard(stdout), &outBuf)
	cmd.Stderr = io.MultiWriter(orDiscard(stderr), &errBuf)
	err := cmd.Run()
	res := &Result{Stdout: outBuf.b.Bytes(), Stderr: errBuf.b.Bytes()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		res.ExitCode = exit.ExitCode()
	default:
		return nil, fmt.Errorf("running %q: %w", argv[0], err)
	}
	return res, nil
}

type capped struct{ b bytes.Buffer }

func (c *capped) Write(p []byte) (int, error) {
	if room := MaxStreamBytes - c.b.Len(); room > 0 {
		if len(p) > room {
			c.b.Write(p[:room])
		} else {
			c.b.Write(p)
		}
	}
	return len(p), nil
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// Link is a link document as Python in-toto writes it.
type Link struct {
	Type        string                    `json:"_type"`
	Name        string                    `json:"name"`
	Command     []string                  `json:"command"`
	Materials   map[string]intoto.HashObj `json:"materials"`
	Products    map[string]intoto.HashObj `json:"products"`
	Byproducts  map[string]any            `json:"byproducts"`
	Environment map[string]any            `json:"environment"`
}

// NewLink returns an empty link for step name.
func NewLink(name string) *Link {
	return &Link{Type: "link", Name: name, Command: []string{}, Materials: map[string]intoto.HashObj{},
		Products: map[string]intoto.HashObj{}, Byproducts: map[string]any{}, Environment: map[string]any{}}
}

// Envelope wraps the link, unsigned: a Metablock (Python's default) or DSSE.
func (l *Link) Envelope(dsse bool) (*envelope.Signed, error) {
	if dsse {
		payload, err := json.Marshal(l)
		if err != nil {
			return nil, err
		}
		return envelope.NewDSSE(envelope.PayloadTypeInToto, payload), nil
	}
	return envelope.NewMetablock(l)
}

// FromEnvelope reads back an unsigned or signed link written by Envelope (record stop).
func FromEnvelope(s *envelope.Signed) (*Link, error) {
	l := NewLink("")
	if err := json.Unmarshal(s.Payload, l); err != nil {
		return nil, fmt.Errorf("reading link: %w", err)
	}
	if l.Type != "link" || l.Name == "" {
		return nil, fmt.Errorf("not an in-toto link")
	}
	for _, m := range []*map[string]intoto.HashObj{&l.Materials, &l.Products} {
		if *m == nil {
			*m = map[string]intoto.HashObj{}
		}
	}
	if l.Byproducts == nil {
		l.Byproducts = map[string]any{}
	}
	if l.Environment == nil {
		l.Environment = map[string]any{}
	}
	if l.Command == nil {
		l.Command = []string{}
	}
	return l, nil
}

// FileName is Python's link file name: "<step>.<first 8 hex of keyid>.link".
func FileName(step, keyID string) string {
	if len(keyID) > 8 {
		keyID = keyID[:8]
	}
	return step + "." + keyID + ".link"
}

// UnfinishedName is in-toto-record's preliminary link name.
func UnfinishedName(step, keyID string) string {
	return "." + FileName(step, keyID) + "-unfinished"
}
