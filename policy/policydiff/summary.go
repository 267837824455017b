package policydiff

// MaxExamples bounds the image names a Summary keeps per change: a summary of ten
// thousand images stays one readable line.
const MaxExamples = 5

// Summary counts the changes over many images and keeps a few example names of each
// change that needs attention (newly denied, newly allowed, changed, error).
type Summary struct {
	Images       int `json:"images"`
	NewlyDenied  int `json:"newlyDenied"`
	NewlyAllowed int `json:"newlyAllowed"`
	Changed      int `json:"changed"`
	Unchanged    int `json:"unchanged"`
	Errors       int `json:"errors"`

	examples map[Change][]string
}

// Add counts one image's change; name is kept as an example if fewer than MaxExamples of
// that change are kept already.
func (s *Summary) Add(name string, c Change) {
	s.Images++
	switch c {
	case NewlyDenied:
		s.NewlyDenied++
	case NewlyAllowed:
		s.NewlyAllowed++
	case Changed:
		s.Changed++
	case Error:
		s.Errors++
	default:
		s.Unchanged++
		return
	}
	if s.examples == nil {
		s.examples = map[Change][]string{}
	}
	if len(s.examples[c]) < MaxExamples {
		s.examples[c] = append(s.examples[c], name)
	}
}

// Examples returns up to MaxExamples names of images with change c, in the order added.
func (s *Summary) Examples(c Change) []string { return s.examples[c] }
