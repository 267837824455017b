package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"tollgate.dev/tollgate/policy/attest"
	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/reason"
)

// authority is what the policies that match an image could accept, known before any
// evidence is read: the keys their attestation requirements and layouts authorize, and
// whether a Sigstore identity may vouch for a Statement. Evidence is untrusted and may fill
// every size limit; an envelope that no authorized key signed is set aside before its
// payload is parsed, so that what nobody trusted signed costs a signature check at most.
type authority struct {
	keys []*keys.Key // distinct: attestation and layout functionary keys together
	// functionaries are the keyids of the layouts' functionary keys: a Metablock holds a
	// link or a layout, never a Statement.
	functionaries map[string]*keys.Key
	steps         map[string]bool // the layouts' step names
	predicates    map[string]bool // the attestation requirements' predicate types
	keyless       bool            // an attestation requirement trusts Sigstore identities
}

func authorityOf(matched []*imagePolicy) *authority {
	a := &authority{functionaries: map[string]*keys.Key{}, steps: map[string]bool{}, predicates: map[string]bool{}}
	seen := map[string]bool{}
	add := func(ks []*keys.Key) {
		for _, k := range ks {
			if k != nil && !seen[k.ID] {
				seen[k.ID] = true
				a.keys = append(a.keys, k)
			}
		}
	}
	for _, p := range matched {
		for _, r := range p.attests {
			add(r.keys)
			a.predicates[r.predicateType] = true
			a.keyless = a.keyless || len(r.identities) > 0
		}
		for _, l := range p.layouts {
			fs := l.verifier.FunctionaryKeys()
			add(fs)
			for _, k := range fs {
				a.functionaries[k.ID] = k
			}
			for _, st := range l.verifier.StepNames() {
				a.steps[st] = true
			}
		}
	}
	return a
}

// errNotAuthorized says an envelope was set aside unread: no authorized key signed it.
var errNotAuthorized = errors.New("not signed by a key the policy authorizes")

// errNoFunctionary marks a Metablock set aside for naming no functionary: what it holds is
// missing evidence rather than a bad signature.
var errNoFunctionary = fmt.Errorf("%w", errNotAuthorized)

// admit decides whether env's payload is worth reading: one of the keys the policies
// authorize must have signed it (the threshold is counted later, over every envelope with
// the same payload). A DSSE envelope's signatures cover PAE(payloadType, payload), checked
// before the payload is parsed. A Metablock's cover the canonical JSON of "signed", which
// takes a parse: only signatures whose keyid names a layout functionary are checked (in-toto
// finds a functionary's signature by its keyid), so one naming nobody costs nothing. A
// Sigstore bundle's envelope (fromBundle) is vouched for by its certificate, judged later,
// when an attestation requirement trusts identities. A Metablock under a directory holds a
// sublayout's links, signed by keys only the sublayout names: its directory must name a
// functionary of the layouts in force. Checks are charged to budget.
func (a *authority) admit(name string, env *envelope.Signed, fromBundle bool, budget *envelope.Budget) error {
	if fromBundle && a.keyless {
		return nil
	}
	switch env.Format {
	case envelope.DSSE:
		if len(a.keys) == 0 {
			return errNotAuthorized
		}
		sigs := a.candidates(env.Signatures)
		if len(sigs) == 0 {
			return fmt.Errorf("%w: no signature names one, or no keyid (%s)", errNotAuthorized, sigKeyIDs(env.Signatures))
		}
		probe := *env
		probe.Signatures = sigs
		return a.verify(&probe, a.keys, budget)
	case envelope.Metablock:
		if dir, _, nested := strings.Cut(name, "/"); nested {
			// A sublayout's links: its directory, "<step>.<keyid prefix>", names the
			// functionary of the enclosing layout who signed the sublayout.
			if a.namesKeyPrefix(dir) {
				return nil
			}
			return fmt.Errorf("%w: its directory %q names none", errNotAuthorized, dir)
		}
		if named := a.named(env.Signatures); len(named) > 0 {
			// Canonicalizing costs a parse: only for a keyid that names a functionary, and
			// the canonical bytes are kept for the layout verification to reuse.
			return a.verify(env, named, budget)
		}
		return fmt.Errorf("%w: a Metablock holds a link or a layout, and none of its signatures (%s) names a functionary key of a layout in force",
			errNoFunctionary, sigKeyIDs(env.Signatures))
	}
	return errNotAuthorized
}

// maxAdmitSignatures bounds the signatures of one DSSE envelope checked to admit it: cosign
// writes one per envelope, and a threshold of signers in one envelope is a handful.
const maxAdmitSignatures = 8

// candidates returns the signatures worth checking to admit a DSSE envelope: those under
// an authorized keyid, then those without one (tried against every key), at most
// maxAdmitSignatures. A signature under another keyid is not tried, as go-securesystemslib's
// DSSE verifier does not: anyone can write a keyid, and a check costs a hash of the payload.
func (a *authority) candidates(sigs []envelope.Signature) []envelope.Signature {
	var named, bare []envelope.Signature
	for _, s := range sigs {
		switch {
		case s.KeyID == "":
			bare = append(bare, s)
		case a.known(s.KeyID):
			named = append(named, s)
		}
	}
	out := append(named, bare...)
	return out[:min(len(out), maxAdmitSignatures)]
}

func (a *authority) known(keyid string) bool {
	for _, k := range a.keys {
		if k.ID == keyid {
			return true
		}
	}
	return false
}

// verify admits env when one of ks signed it.
func (a *authority) verify(env *envelope.Signed, ks []*keys.Key, budget *envelope.Budget) error {
	if _, err := env.Verify(ks, 1, envelope.WithBudget(budget)); err != nil {
		if errors.Is(err, envelope.ErrBudget) {
			return err
		}
		return fmt.Errorf("%w (%v)", errNotAuthorized, err)
	}
	return nil
}

// named returns the functionary keys the signatures name by keyid.
func (a *authority) named(sigs []envelope.Signature) []*keys.Key {
	var out []*keys.Key
	for _, s := range sigs {
		if k := a.functionaries[s.KeyID]; k != nil && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// unused says why an admitted payload (probed) is of no use to the policies in force, or
// "" when it is: a link whose step no layout has, a Statement of a predicate type no
// requirement reads (links excepted: layouts consume them). A sublayout's own links are
// judged by the sublayout.
func (a *authority) unused(name string, p *probe) string {
	nested := strings.Contains(name, "/")
	switch {
	case p.Type == "link" && !nested && !a.steps[p.Name]:
		return fmt.Sprintf("a link of step %q, which no layout in force has", reason.Clip(p.Name))
	case attest.IsStatementType(p.Type) && !a.predicates[p.PredicateType] && !(isLinkPredicate(p.PredicateType) && len(a.steps) > 0):
		return fmt.Sprintf("a Statement of predicate type %q, which no requirement reads", reason.Clip(p.PredicateType))
	}
	return ""
}

// namesKeyPrefix reports whether dir ends in ".<first 8 hex digits of an authorized keyid>".
func (a *authority) namesKeyPrefix(dir string) bool {
	i := strings.LastIndexByte(dir, '.')
	if i < 0 || len(dir)-i-1 != 8 {
		return false
	}
	for id := range a.functionaries {
		if strings.HasPrefix(id, dir[i+1:]) {
			return true
		}
	}
	return false
}

func sigKeyIDs(sigs []envelope.Signature) string {
	ids := make([]string, 0, min(len(sigs), 3))
	for _, s := range sigs[:min(len(sigs), 3)] {
		id := s.KeyID
		if len(id) > 8 {
			id = id[:8]
		}
		if id == "" {
			id = "no keyid"
		}
		ids = append(ids, id)
	}
	if len(sigs) > 3 {
		ids = append(ids, fmt.Sprintf("%d more", len(sigs)-3))
	}
	return strings.Join(ids, ", ")
}
