package intoto

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/reason"
)

// accepted is a link (or a verified sublayout's summary) whose signature verified with at
// least one functionary key the step authorizes.
type accepted struct {
	path string
	link *Link
	keys []*keys.Key
}

// stepLink finds the evidence of one step (verifylib's load_links_for_layout,
// verify_link_signature_thresholds, verify_sublayouts and verify_threshold_constraints)
// and returns the link the rules are checked against.
func (v *verifier) stepLink(layout *Layout, st *Step, dir, prefix string, depth int) (*Link, error) {
	ld := v.links.in(dir)
	authorized := stepKeys(layout, st)
	links, subs := ld.byName[st.Name], ld.sublayout[st.Name]
	if n := len(links) + len(subs); n > MaxLinksPerStep {
		return nil, reason.New(reason.Malformed, "%d candidate links, over the limit of %d", n, MaxLinksPerStep).InStep(st.Name)
	}
	var acc []accepted
	var notes []string
	tampered := false
	for _, c := range links {
		ks, err := c.signed.Verify(authorized, 1, envelope.WithBudget(v.budget))
		if errors.Is(err, envelope.ErrBudget) {
			return nil, budgetError(v.budget, st.Name)
		}
		if err != nil {
			note, bad := explainRejection(layout, st, c, err)
			notes = append(notes, note)
			tampered = tampered || bad
			continue
		}
		acc = append(acc, accepted{path: c.path, link: c.link, keys: ks})
	}
	for _, c := range subs {
		a, note, err := v.sublayout(st, authorized, c, dir, prefix, depth)
		switch {
		case err != nil:
			return nil, err
		case a == nil:
			notes = append(notes, note)
		default:
			acc = append(acc, *a)
		}
	}
	var signers []*keys.Key
	for _, a := range acc {
		signers = append(signers, a.keys...)
	}
	ids := uniqueSorted(sortedIDs(signers)) // thresholds count distinct keys
	if len(ids) < st.Threshold {
		for _, id := range ids {
			notes = append(notes, fmt.Sprintf("an accepted link signed by %s", short(id)))
		}
		return nil, v.thresholdError(st, ld, len(ids), notes, tampered, len(links)+len(subs))
	}
	for _, a := range acc[1:] {
		if !acc[0].link.sameArtifacts(a.link) {
			return nil, reason.New(reason.Threshold, "links %s and %s, both signed by authorized functionaries, record different materials or products",
				acc[0].path, a.path).InStep(st.Name)
		}
	}
	v.res.Functionaries[prefix+st.Name] = ids
	return acc[0].link, nil
}

func stepKeys(layout *Layout, st *Step) []*keys.Key {
	seen := map[string]bool{}
	var out []*keys.Key
	for _, id := range st.PubKeys {
		if k := layout.Keys[id]; k != nil && !seen[id] {
			seen[id] = true
			out = append(out, k)
		}
	}
	return out
}

func uniqueSorted(ids []string) []string {
	out := ids[:0]
	for i, id := range ids {
		if i == 0 || id != ids[i-1] {
			out = append(out, id)
		}
	}
	return out
}

// explainRejection says why a link named for the step was not accepted, and whether a
// signature claiming an authorized key failed (tampering rather than a wrong signer).
func explainRejection(layout *Layout, st *Step, c *candidate, err error) (string, bool) {
	if reason.KindOf(err) == reason.Malformed { // e.g. a Metablock that cannot be canonicalized
		return c.path + " (" + err.Error() + ")", false
	}
	if len(c.signed.Signatures) == 0 {
		return c.path + " (not signed)", false
	}
	authorized := map[string]bool{}
	for _, id := range st.PubKeys {
		authorized[id] = true
	}
	var parts []string
	bad := false
	for _, s := range c.signed.Signatures {
		switch {
		case authorized[s.KeyID]:
			parts = append(parts, fmt.Sprintf("signature by authorized key %s does not verify: modified after signing?", short(s.KeyID)))
			bad = true
		case layout.Keys[s.KeyID] != nil:
			parts = append(parts, fmt.Sprintf("signed by key %s, which is not authorized for this step", short(s.KeyID)))
		case s.KeyID == "":
			parts = append(parts, "signed without a keyid by no authorized key")
		default:
			parts = append(parts, fmt.Sprintf("signed by key %s, which is not a functionary key of the layout", short(s.KeyID)))
		}
		if len(parts) == 3 {
			break
		}
	}
	return c.path + " (" + strings.Join(parts, "; ") + ")", bad
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func (v *verifier) thresholdError(st *Step, ld *linkDir, got int, notes []string, tampered bool, candidates int) error {
	kind := reason.Threshold
	switch {
	case candidates == 0:
		kind = reason.MissingEvidence
	case got == 0 && tampered:
		kind = reason.BadSignature
	}
	msg := fmt.Sprintf("%d of %d required links signed by an authorized functionary", got, st.Threshold)
	if candidates == 0 {
		msg += fmt.Sprintf("; no link named %q was found", st.Name)
		if n := len(ld.ignored); n > 0 {
			f := ld.ignored[0]
			msg += fmt.Sprintf(" (%d evidence files could not be read as links, e.g. %s: %s)", n, f.path, f.why)
		}
	} else if len(notes) > 0 {
		if len(notes) > 3 {
			notes = append(notes[:3:3], fmt.Sprintf("%d more", len(notes)-3))
		}
		msg += "; found " + strings.Join(notes, ", ")
	}
	return reason.New(kind, "%s", msg).InStep(st.Name)
}

// sublayout verifies a layout delegated to one functionary of the step: signed by the
// authorized key its file name points to, with its links under "<step>.<keyid[:8]>/".
// It returns nil and a note when the sublayout is not from an authorized functionary, and
// an error when it is but fails verification.
func (v *verifier) sublayout(st *Step, authorized []*keys.Key, c *candidate, dir, prefix string, depth int) (*accepted, string, error) {
	var key *keys.Key
	for _, k := range authorized {
		if strings.HasPrefix(k.ID, c.keyID8) {
			_, err := c.signed.Verify([]*keys.Key{k}, 1, envelope.WithBudget(v.budget))
			if errors.Is(err, envelope.ErrBudget) {
				return nil, "", budgetError(v.budget, st.Name)
			}
			if err == nil {
				key = k
				break
			}
		}
	}
	if key == nil {
		return nil, c.path + " (a sublayout not signed by the authorized functionary key its name points to)", nil
	}
	if depth+1 > MaxSublayoutDepth {
		return nil, "", reason.New(reason.Malformed, "sublayouts nest deeper than %d levels", MaxSublayoutDepth).InStep(st.Name)
	}
	if v.sublayouts++; v.sublayouts > MaxSublayouts {
		return nil, "", reason.New(reason.Malformed, "more than %d sublayouts", MaxSublayouts).InStep(st.Name)
	}
	subdir := path.Join(dir, st.Name+"."+c.keyID8)
	summary, err := v.verifyLayout(c.signed, subdir, prefix+st.Name+"/", depth+1)
	if err != nil {
		e := *reason.As(err)
		if e.Step != "" {
			e.Step = st.Name + "/" + e.Step
		} else {
			e.Step = st.Name
			e.Msg = "sublayout: " + e.Msg
		}
		return nil, "", &e
	}
	summary.Name = st.Name
	return &accepted{path: c.path, link: summary, keys: []*keys.Key{key}}, "", nil
}
