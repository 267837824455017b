package layoutspec

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/intoto"
	"tollgate.dev/tollgate/policy/keys"
)

// ImageInspectionName is the reserved inspection the node synthesizes from the image.
const ImageInspectionName = "image"

type options struct {
	allowInspections bool
}

// Option configures Build.
type Option func(*options)

// AllowInspections permits inspections other than the image shorthand. Such layouts work
// with in-toto-verify and `tollgate verify --run-inspections`, never on a node.
func AllowInspections() Option { return func(o *options) { o.allowInspections = true } }

// layoutDoc and stepDoc are the in-toto layout as Python in-toto writes it.
type layoutDoc struct {
	Type    string                     `json:"_type"`
	Expires string                     `json:"expires"`
	Readme  string                     `json:"readme"`
	Keys    map[string]json.RawMessage `json:"keys"`
	Steps   []stepDoc                  `json:"steps"`
	Inspect []inspectionDoc            `json:"inspect"`
}

type stepDoc struct {
	Type              string     `json:"_type"`
	Name              string     `json:"name"`
	Threshold         int        `json:"threshold"`
	PubKeys           []string   `json:"pubkeys"`
	ExpectedCommand   []string   `json:"expected_command"`
	ExpectedMaterials [][]string `json:"expected_materials"`
	ExpectedProducts  [][]string `json:"expected_products"`
}

type inspectionDoc struct {
	Type              string     `json:"_type"`
	Name              string     `json:"name"`
	Run               []string   `json:"run"`
	ExpectedMaterials [][]string `json:"expected_materials"`
	ExpectedProducts  [][]string `json:"expected_products"`
}

// Build turns s into an unsigned layout envelope (a Metablock, or DSSE when dsse is set).
// keyFiles holds the bytes of every functionary public key file s names, by the name s
// uses. now anchors a relative expiry. The layout is checked with intoto.ParseLayout, the
// verifier's own parser, before it is returned.
func Build(s *Spec, keyFiles map[string][]byte, now time.Time, dsse bool, opts ...Option) (*envelope.Signed, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	doc, err := s.layout(keyFiles, now, o)
	if err != nil {
		return nil, err
	}
	var env *envelope.Signed
	if dsse {
		payload, err := json.Marshal(doc)
		if err != nil {
			return nil, err
		}
		env = envelope.NewDSSE(envelope.PayloadTypeInToto, payload)
	} else if env, err = envelope.NewMetablock(doc); err != nil {
		return nil, err
	}
	if _, err := intoto.ParseLayout(env); err != nil {
		return nil, fmt.Errorf("the generated layout is invalid: %w", err)
	}
	return env, nil
}

func (s *Spec) layout(keyFiles map[string][]byte, now time.Time, o options) (*layoutDoc, error) {
	exp, err := ParseExpiry(s.Expires, now)
	if err != nil {
		return nil, err
	}
	if len(s.Steps) == 0 {
		return nil, fmt.Errorf("layout description has no steps")
	}
	doc := &layoutDoc{Type: "layout", Expires: exp.Format("2006-01-02T15:04:05Z"), Readme: s.Readme,
		Keys: map[string]json.RawMessage{}, Steps: []stepDoc{}, Inspect: []inspectionDoc{}}
	byFile := map[string]*keys.Key{}
	stepNames := map[string]bool{}
	for i, st := range s.Steps {
		sd, err := st.build(i, keyFiles, byFile, doc.Keys)
		if err != nil {
			return nil, err
		}
		stepNames[st.Name] = true
		doc.Steps = append(doc.Steps, *sd)
	}
	for i, in := range s.Inspections {
		id, err := in.build(i, stepNames, o)
		if err != nil {
			return nil, err
		}
		doc.Inspect = append(doc.Inspect, *id)
	}
	if err := checkPlaceholders(doc, s.Parameters); err != nil {
		return nil, err
	}
	return doc, nil
}

func (st *StepSpec) build(i int, keyFiles map[string][]byte, byFile map[string]*keys.Key, all map[string]json.RawMessage) (*stepDoc, error) {
	where := fmt.Sprintf("steps[%d]", i)
	if st.Name != "" {
		where = fmt.Sprintf("step %q", st.Name)
	} else {
		return nil, fmt.Errorf("%s has no name", where)
	}
	if len(st.Functionaries) == 0 {
		return nil, fmt.Errorf("%s lists no functionaries: name the public key files of who may perform it", where)
	}
	threshold := st.Threshold
	if threshold == 0 {
		threshold = 1
	}
	if threshold < 0 || threshold > len(st.Functionaries) {
		return nil, fmt.Errorf("%s has threshold %d but %d functionaries; it could never be met", where, threshold, len(st.Functionaries))
	}
	sd := &stepDoc{Type: "step", Name: st.Name, Threshold: threshold, PubKeys: []string{},
		ExpectedCommand: nonNil(st.ExpectedCommand)}
	seen := map[string]bool{}
	for _, f := range st.Functionaries {
		k, err := functionary(f, keyFiles, byFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("%s lists the key %s twice (%s)", where, k.ShortID(), f)
		}
		seen[k.ID] = true
		raw, err := k.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("%s: key %s: %w", where, f, err)
		}
		all[k.ID] = raw
		sd.PubKeys = append(sd.PubKeys, k.ID)
	}
	var err error
	if sd.ExpectedMaterials, err = Rules(st.Materials); err != nil {
		return nil, fmt.Errorf("%s materials: %w", where, err)
	}
	if sd.ExpectedProducts, err = Rules(st.Products); err != nil {
		return nil, fmt.Errorf("%s products: %w", where, err)
	}
	return sd, nil
}

// functionary parses a key file once, however many steps name it. Two files holding the
// same key are one functionary.
func functionary(file string, keyFiles map[string][]byte, byFile map[string]*keys.Key) (*keys.Key, error) {
	if k, ok := byFile[file]; ok {
		return k, nil
	}
	data, ok := keyFiles[file]
	if !ok {
		return nil, fmt.Errorf("functionary key file %q was not read", file)
	}
	if _, err := keys.ParsePrivate(data, nil); err == nil || errors.Is(err, keys.ErrPassphraseRequired) {
		return nil, fmt.Errorf("functionary key file %q holds a private key; name the public key file (.pub)", file)
	}
	k, err := keys.ParsePublic(data)
	if err != nil {
		return nil, fmt.Errorf("functionary key file %q is not a public key: %w", file, err)
	}
	byFile[file] = k
	return k, nil
}

func (in *InspectionSpec) build(i int, steps map[string]bool, o options) (*inspectionDoc, error) {
	if in.Image != nil {
		if in.Name != "" || len(in.Run) > 0 || len(in.Materials) > 0 || len(in.Products) > 0 {
			return nil, fmt.Errorf("inspections[%d]: the image shorthand stands alone; do not add name, run or rules", i)
		}
		return imageInspection(i, in.Image, steps)
	}
	if in.Name == "" {
		return nil, fmt.Errorf("inspections[%d] has no name (or use the shorthand `- image: {from: STEP}`)", i)
	}
	if in.Name == ImageInspectionName {
		return nil, fmt.Errorf("inspection %q is reserved: write it as `- image: {from: STEP}`", in.Name)
	}
	if !o.allowInspections {
		return nil, fmt.Errorf("inspection %q would run %q on the verifier; nodes never run inspections "+
			"(only `- image: {from: STEP}` is allowed); pass --allow-inspections for a layout meant for in-toto-verify", in.Name, strings.Join(in.Run, " "))
	}
	if len(in.Run) == 0 {
		return nil, fmt.Errorf("inspection %q has no run command", in.Name)
	}
	d := &inspectionDoc{Type: "inspection", Name: in.Name, Run: in.Run}
	var err error
	if d.ExpectedMaterials, err = Rules(in.Materials); err != nil {
		return nil, fmt.Errorf("inspection %q materials: %w", in.Name, err)
	}
	if d.ExpectedProducts, err = Rules(in.Products); err != nil {
		return nil, fmt.Errorf("inspection %q products: %w", in.Name, err)
	}
	return d, nil
}

// imageInspection expands the shorthand: the image's digest must be the step's "image"
// product (and its config the "image-config" product when Config is set), and nothing
// else may appear.
func imageInspection(i int, img *ImageInspection, steps map[string]bool) (*inspectionDoc, error) {
	if img.From == "" {
		return nil, fmt.Errorf("inspections[%d]: image needs `from: STEP`, the step that recorded the image", i)
	}
	if !steps[img.From] {
		return nil, fmt.Errorf("inspections[%d]: image from %q: no such step", i, img.From)
	}
	mat := [][]string{{"MATCH", "image", "WITH", "PRODUCTS", "FROM", img.From}}
	if img.Config {
		mat = append(mat, []string{"MATCH", "image-config", "WITH", "PRODUCTS", "FROM", img.From})
	} else {
		mat = append(mat, []string{"ALLOW", "image-config"})
	}
	mat = append(mat, []string{"DISALLOW", "*"})
	return &inspectionDoc{Type: "inspection", Name: ImageInspectionName, Run: []string{},
		ExpectedMaterials: mat, ExpectedProducts: [][]string{}}, nil
}

// Rules splits rules written as strings into in-toto's token lists.
func Rules(list []string) ([][]string, error) {
	out := [][]string{}
	for i, r := range list {
		f := strings.Fields(r)
		if len(f) == 0 {
			return nil, fmt.Errorf("rule %d is empty", i+1)
		}
		out = append(out, f)
	}
	return out, nil
}

// placeholder is compiled on first use, not at start-up of every CLI command.
var placeholder = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\{([A-Za-z0-9_-]+)\}`) })

// checkPlaceholders makes every "{NAME}" used be declared in parameters, so a typo is
// caught when the layout is written rather than when a node first verifies it.
func checkPlaceholders(doc *layoutDoc, declared []string) error {
	ok := map[string]bool{}
	for _, p := range declared {
		ok[p] = true
	}
	var missing []string
	seen := map[string]bool{}
	visit := func(ss ...[]string) {
		for _, list := range ss {
			for _, s := range list {
				for _, m := range placeholder().FindAllStringSubmatch(s, -1) {
					if !ok[m[1]] && !seen[m[1]] {
						seen[m[1]] = true
						missing = append(missing, m[1])
					}
				}
			}
		}
	}
	for _, st := range doc.Steps {
		visit(st.ExpectedCommand)
		visit(st.ExpectedMaterials...)
		visit(st.ExpectedProducts...)
	}
	for _, in := range doc.Inspect {
		visit(in.Run)
		visit(in.ExpectedMaterials...)
		visit(in.ExpectedProducts...)
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("placeholders %s are used but not declared under parameters", "{"+strings.Join(missing, "}, {")+"}")
	}
	return nil
}

// ParseExpiry reads an RFC 3339 time, or a duration from now ("8760h", "90d").
func ParseExpiry(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, fmt.Errorf("layout description has no expires (an RFC 3339 time, or a duration such as 8760h or 365d)")
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC().Truncate(time.Second), nil
	}
	d, err := parseDuration(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("expires %q is neither an RFC 3339 time (2030-01-02T03:04:05Z) nor a duration (8760h, 365d)", s)
	}
	if d <= 0 {
		return time.Time{}, fmt.Errorf("expires %q is not in the future", s)
	}
	return now.Add(d).UTC().Truncate(time.Second), nil
}

func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n > 36500 {
			return 0, fmt.Errorf("bad day count")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
