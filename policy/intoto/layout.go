package intoto

import (
	"encoding/json"
	"sort"
	"strings"
	"time"

	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/internal/jsonlimit"
	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/reason"
)

// Layout is a parsed in-toto layout. Its fields are read-only once parsed: Verify works
// on compiled copies and never writes back.
type Layout struct {
	Expires     time.Time
	Readme      string
	Keys        map[string]*keys.Key // by keyid; each keyid equals the key's computed ID
	Steps       []Step
	Inspections []Inspection
}

// Step is one step of a layout: who may perform it, how many must, and which artifacts it
// may use and produce.
type Step struct {
	Name              string
	Threshold         int
	PubKeys           []string // authorized functionary keyids
	ExpectedCommand   []string
	ExpectedMaterials [][]string
	ExpectedProducts  [][]string
}

// Inspection is a check the verifier performs itself. Tollgate never runs Run on a node.
type Inspection struct {
	Name              string
	Run               []string
	ExpectedMaterials [][]string
	ExpectedProducts  [][]string
}

type layoutJSON struct {
	Type    string                     `json:"_type"`
	Expires *string                    `json:"expires"`
	Readme  *string                    `json:"readme"`
	Keys    map[string]json.RawMessage `json:"keys"`
	Steps   []stepJSON                 `json:"steps"`
	Inspect []stepJSON                 `json:"inspect"`
}

// stepJSON holds both steps and inspections; the fields that do not apply stay empty.
type stepJSON struct {
	Type              string     `json:"_type"`
	Name              string     `json:"name"`
	Threshold         *int       `json:"threshold"`
	PubKeys           []string   `json:"pubkeys"`
	ExpectedCommand   []string   `json:"expected_command"`
	Run               []string   `json:"run"`
	ExpectedMaterials [][]string `json:"expected_materials"`
	ExpectedProducts  [][]string `json:"expected_products"`
}

func malformed(format string, args ...any) *reason.Error {
	return reason.New(reason.Malformed, format, args...)
}

// ParseLayout parses the layout carried by s (a Metablock or a DSSE envelope). It checks
// structure only; signatures are Verify's business.
func ParseLayout(s *envelope.Signed) (*Layout, error) {
	if s == nil {
		return nil, malformed("no layout given")
	}
	if err := checkPayload(s); err != nil {
		return nil, err
	}
	// A Metablock is signed over the canonical form of "signed", which keeps only the last
	// of repeated members; encoding/json would merge a dropped object or array of objects
	// into the kept one. Decode what the signatures cover: the document with every repeat
	// resolved as canonicalization resolves it (canonical bytes themselves are not always
	// JSON: they hold control characters raw).
	payload := s.Payload
	if s.Format == envelope.Metablock {
		var generic any
		if err := jsonlimit.Decode(payload, jsonlimit.MaxBytes, &generic); err != nil {
			return nil, malformed("layout is not valid in-toto layout JSON").Wrap(err)
		}
		b, err := json.Marshal(generic)
		if err != nil {
			return nil, malformed("layout is not valid in-toto layout JSON").Wrap(err)
		}
		payload = b
	}
	var doc layoutJSON
	if err := jsonlimit.Decode(payload, jsonlimit.MaxBytes, &doc); err != nil {
		return nil, malformed("layout is not valid in-toto layout JSON").Wrap(err)
	}
	return doc.toLayout()
}

// checkPayload rejects DSSE envelopes whose payload type is not in-toto's.
func checkPayload(s *envelope.Signed) error {
	if s.Format == envelope.DSSE && s.PayloadType != envelope.PayloadTypeInToto {
		return malformed("DSSE payload type is %q, want %q", s.PayloadType, envelope.PayloadTypeInToto)
	}
	return nil
}

func (doc *layoutJSON) toLayout() (*Layout, error) {
	if doc.Type != "layout" {
		return nil, malformed("metadata _type is %q, want \"layout\"", doc.Type)
	}
	l := &Layout{}
	if doc.Expires == nil {
		return nil, malformed("layout has no expires date")
	}
	t, err := time.Parse(time.RFC3339, *doc.Expires)
	if err != nil {
		return nil, malformed("layout expires date %q is not an ISO 8601 UTC time like 2030-01-02T03:04:05Z", *doc.Expires)
	}
	l.Expires = t.UTC()
	if doc.Readme != nil {
		l.Readme = *doc.Readme
	}
	if err := l.parseKeys(doc.Keys); err != nil {
		return nil, err
	}
	if len(doc.Steps) > MaxSteps {
		return nil, malformed("layout has %d steps, over the limit of %d", len(doc.Steps), MaxSteps)
	}
	if len(doc.Inspect) > MaxInspections {
		return nil, malformed("layout has %d inspections, over the limit of %d", len(doc.Inspect), MaxInspections)
	}
	seen := make(map[string]bool, len(doc.Steps)+len(doc.Inspect))
	for i := range doc.Steps {
		st, err := l.parseStep(&doc.Steps[i], i)
		if err != nil {
			return nil, err
		}
		if seen[st.Name] {
			return nil, malformed("layout has two steps named %q; step names must be unique", st.Name)
		}
		seen[st.Name] = true
		l.Steps = append(l.Steps, st)
	}
	for i := range doc.Inspect {
		in, err := parseInspection(&doc.Inspect[i], i)
		if err != nil {
			return nil, err
		}
		if seen[in.Name] {
			return nil, malformed("inspection %q has the name of another step or inspection; names must be unique", in.Name)
		}
		seen[in.Name] = true
		l.Inspections = append(l.Inspections, in)
	}
	return l, nil
}

func (l *Layout) parseKeys(raw map[string]json.RawMessage) error {
	if len(raw) > MaxLayoutKeys {
		return malformed("layout lists %d keys, over the limit of %d", len(raw), MaxLayoutKeys)
	}
	l.Keys = make(map[string]*keys.Key, len(raw))
	ids := make([]string, 0, len(raw))
	for id := range raw {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		k, err := keys.ParseJSON(raw[id])
		if err != nil {
			return malformed("layout key %q cannot be parsed", id).Wrap(err)
		}
		if k.ID != id {
			return malformed("layout key listed as %q has keyid %q; a key must be listed under its own keyid", id, k.ID)
		}
		l.Keys[id] = k
	}
	// Thresholds count distinct functionaries; one key under two keyids would count twice.
	for i, a := range ids {
		for _, b := range ids[i+1:] {
			if l.Keys[a].SameMaterial(l.Keys[b]) {
				return malformed("layout keys %q and %q are the same public key", a, b)
			}
		}
	}
	return nil
}

func (l *Layout) parseStep(j *stepJSON, i int) (Step, error) {
	if j.Type != "" && j.Type != "step" {
		return Step{}, malformed("steps[%d] has _type %q, want \"step\"", i, j.Type)
	}
	if err := checkName("steps", i, j.Name); err != nil {
		return Step{}, err
	}
	st := Step{
		Name:              j.Name,
		Threshold:         1,
		PubKeys:           j.PubKeys,
		ExpectedCommand:   j.ExpectedCommand,
		ExpectedMaterials: j.ExpectedMaterials,
		ExpectedProducts:  j.ExpectedProducts,
	}
	if j.Threshold != nil {
		st.Threshold = *j.Threshold
	}
	inStep := func(e *reason.Error) (Step, error) { return Step{}, e.InStep(st.Name) }
	if st.Threshold < 1 {
		return inStep(malformed("threshold is %d; it must be at least 1", st.Threshold))
	}
	if len(st.PubKeys) > MaxLayoutKeys {
		return inStep(malformed("step authorizes %d keys, over the limit of %d", len(st.PubKeys), MaxLayoutKeys))
	}
	distinct := map[string]bool{}
	for _, id := range st.PubKeys {
		if _, ok := l.Keys[id]; !ok {
			return inStep(malformed("step authorizes key %q, which the layout's keys do not list", id))
		}
		distinct[id] = true
	}
	if st.Threshold > len(distinct) {
		return inStep(malformed("threshold %d exceeds the %d distinct functionary keys the step authorizes", st.Threshold, len(distinct)))
	}
	if len(st.ExpectedCommand) > maxCommandArgs {
		return inStep(malformed("expected_command has %d arguments, over the limit of %d", len(st.ExpectedCommand), maxCommandArgs))
	}
	if err := checkRules(st.ExpectedMaterials, st.ExpectedProducts); err != nil {
		return inStep(err)
	}
	return st, nil
}

func parseInspection(j *stepJSON, i int) (Inspection, error) {
	if j.Type != "" && j.Type != "inspection" {
		return Inspection{}, malformed("inspect[%d] has _type %q, want \"inspection\"", i, j.Type)
	}
	if err := checkName("inspect", i, j.Name); err != nil {
		return Inspection{}, err
	}
	in := Inspection{Name: j.Name, Run: j.Run, ExpectedMaterials: j.ExpectedMaterials, ExpectedProducts: j.ExpectedProducts}
	if len(in.Run) > maxCommandArgs {
		return Inspection{}, malformed("run has %d arguments, over the limit of %d", len(in.Run), maxCommandArgs).InStep(in.Name)
	}
	if err := checkRules(in.ExpectedMaterials, in.ExpectedProducts); err != nil {
		return Inspection{}, err.InStep(in.Name)
	}
	return in, nil
}

func checkName(list string, i int, name string) *reason.Error {
	switch {
	case name == "":
		return malformed("%s[%d] has no name", list, i)
	case len(name) > maxNameBytes:
		return malformed("%s[%d] has a name of %d bytes, over the limit of %d", list, i, len(name), maxNameBytes)
	}
	return nil
}

// checkRules validates rule syntax as written. Verify compiles the rules again after
// parameter substitution, as Python does.
func checkRules(lists ...[][]string) *reason.Error {
	for _, rules := range lists {
		if len(rules) > MaxRules {
			return malformed("%d artifact rules, over the limit of %d", len(rules), MaxRules)
		}
		for _, r := range rules {
			if _, err := checkRule(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// ruleText renders a rule as written, for messages.
func ruleText(r []string) string { return strings.Join(r, " ") }
