package intoto

import (
	"errors"
	"path"
	"slices"
	"sort"
	"strings"

	"tollgate.dev/tollgate/policy/envelope"
)

// Links is a parsed set of evidence files, indexed for verification. It is immutable and
// safe for concurrent use by any number of Verify calls.
//
// Links are matched to steps by their own name and by the key that signed them, never by
// file name. File paths matter only for sublayouts: for a step S delegated to a sublayout
// signed by key K, the sublayout is the file "S.<K[:8]>.link" and its links are the files
// under "S.<K[:8]>/" (Python in-toto's layout of a link directory).
type Links struct {
	dirs map[string]*linkDir
}

type linkDir struct {
	byName    map[string][]*candidate // links, by link name
	sublayout map[string][]*candidate // layouts, by the step name in their file name
	ignored   []ignoredFile           // files that could not be read as links or layouts
}

type candidate struct {
	path   string
	signed *envelope.Signed
	link   *Link  // nil for a sublayout
	keyID8 string // sublayouts: keyid prefix from the file name
}

// evidenceBytesLimit is MaxEvidenceBytes; tests lower it rather than allocate 256 MiB.
var evidenceBytesLimit = MaxEvidenceBytes

type ignoredFile struct {
	path, why string
}

// NewLinks parses evidence files given by relative path. Files that are not in-toto links
// or layouts (statements of other predicate types, unparseable files) are kept aside, so
// that a missing-link failure can say what was found instead; only exceeding the limits
// on file count and total size is an error.
func NewLinks(files map[string][]byte) (*Links, error) {
	if len(files) > MaxEvidenceFiles {
		return nil, malformed("%d evidence files, over the limit of %d", len(files), MaxEvidenceFiles)
	}
	total := 0
	names := make([]string, 0, len(files))
	for name, data := range files {
		total += len(data)
		names = append(names, name)
	}
	if total > evidenceBytesLimit {
		return nil, malformed("evidence files total %d bytes, over the limit of %d", total, evidenceBytesLimit)
	}
	sort.Strings(names)
	ls := &Links{dirs: map[string]*linkDir{}}
	for _, name := range names {
		ls.add(name, files[name])
	}
	return ls, nil
}

// NewLinksFromSigned is NewLinks for evidence whose envelopes the caller has parsed
// already (to classify it, say), so that no file is parsed twice. The map is read, not
// kept; each envelope is copied shallowly, and its payload must not be modified afterwards.
// The size limit applies to payloads and signatures.
func NewLinksFromSigned(envs map[string]*envelope.Signed) (*Links, error) {
	if len(envs) > MaxEvidenceFiles {
		return nil, malformed("%d evidence files, over the limit of %d", len(envs), MaxEvidenceFiles)
	}
	total := 0
	names := make([]string, 0, len(envs))
	for name, s := range envs {
		if s != nil {
			total += len(s.Payload) + len(s.PayloadType)
			for _, sig := range s.Signatures {
				total += len(sig.KeyID) + len(sig.Sig)
			}
		}
		names = append(names, name)
	}
	if total > evidenceBytesLimit {
		return nil, malformed("evidence files total %d bytes, over the limit of %d", total, evidenceBytesLimit)
	}
	sort.Strings(names)
	ls := &Links{dirs: map[string]*linkDir{}}
	for _, name := range names {
		s := envs[name]
		if s == nil {
			ls.addSigned(name, nil, errors.New("no envelope"))
			continue
		}
		c := *s
		c.Signatures = slices.Clone(s.Signatures)
		ls.addSigned(name, &c, nil)
	}
	return ls, nil
}

func (ls *Links) dir(d string) *linkDir {
	ld := ls.dirs[d]
	if ld == nil {
		ld = &linkDir{byName: map[string][]*candidate{}, sublayout: map[string][]*candidate{}}
		ls.dirs[d] = ld
	}
	return ld
}

func (ls *Links) add(name string, data []byte) {
	s, err := envelope.Parse(data)
	ls.addSigned(name, s, err)
}

// addSigned files one parsed envelope; parseErr is why it could not be parsed, if so.
func (ls *Links) addSigned(name string, s *envelope.Signed, parseErr error) {
	clean := path.Clean("/" + strings.ReplaceAll(name, `\`, "/"))[1:]
	dir, base := path.Split(clean)
	ld := ls.dir(strings.TrimSuffix(dir, "/"))
	if err := parseErr; err != nil {
		ld.ignored = append(ld.ignored, ignoredFile{name, "not a signed in-toto document: " + err.Error()})
		return
	}
	l, kind, err := decodeLink(s)
	switch {
	case err != nil:
		ld.ignored = append(ld.ignored, ignoredFile{name, err.Error()})
	case kind == kindLink:
		ld.byName[l.Name] = append(ld.byName[l.Name], &candidate{path: name, signed: s, link: l})
	case kind == kindLayout:
		step, id8, ok := sublayoutFileName(base)
		if !ok {
			ld.ignored = append(ld.ignored, ignoredFile{name, "a layout not named <step>.<keyid prefix>.link, so it is no sublayout"})
			return
		}
		ld.sublayout[step] = append(ld.sublayout[step], &candidate{path: name, signed: s, keyID8: id8})
	default:
		// Statements of other predicate types (SLSA provenance, ...) are evidence for
		// other checks, not broken links: not worth mentioning.
	}
}

// sublayoutFileName splits "<step>.<keyid[:8]>.link".
func sublayoutFileName(base string) (step, id8 string, ok bool) {
	stem, found := strings.CutSuffix(base, ".link")
	if !found {
		return "", "", false
	}
	dot := strings.LastIndexByte(stem, '.')
	if dot <= 0 || len(stem)-dot-1 != 8 {
		return "", "", false
	}
	return stem[:dot], stem[dot+1:], true
}

// in returns the directory of links for a (sub)layout, never nil.
func (ls *Links) in(dir string) *linkDir {
	if ls != nil {
		if ld := ls.dirs[dir]; ld != nil {
			return ld
		}
	}
	return &linkDir{}
}
