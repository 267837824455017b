package envelope

import (
	"fmt"
	"strings"

	"tollgate.dev/tollgate/policy/keys"
	"tollgate.dev/tollgate/policy/reason"
)

// SignedBytes returns the bytes the signatures cover: DSSE's PAE(payloadType, payload),
// or the canonical JSON of a Metablock's "signed".
func (s *Signed) SignedBytes() ([]byte, error) {
	if s == nil {
		return nil, malformed("no envelope")
	}
	switch s.Format {
	case DSSE:
		return pae(s.PayloadType, s.Payload), nil
	case Metablock:
		b, err := canonicalJSON(s.Payload)
		if err != nil {
			return nil, malformed("metablock \"signed\" cannot be canonicalized").Wrap(err)
		}
		return b, nil
	}
	return nil, malformed("unknown envelope format %d", int(s.Format))
}

// Verify returns the distinct trusted keys that made a valid signature over the
// envelope: VerifySignatures over SignedBytes, with the envelope's format named in errors.
func (s *Signed) Verify(trusted []*keys.Key, threshold int, opts ...VerifyOption) ([]*keys.Key, error) {
	if s == nil {
		return nil, malformed("no envelope to verify")
	}
	if len(s.Signatures) > MaxSignatures {
		return nil, malformed("envelope has %d signatures, over the limit of %d", len(s.Signatures), MaxSignatures)
	}
	msg, err := s.SignedBytes()
	if err != nil {
		return nil, err
	}
	return verifyThreshold(s.Format.String()+" signature", msg, s.Signatures, trusted, threshold, opts)
}

// VerifySignatures is the one check that "a threshold of distinct trusted keys signed
// msg", for every kind of evidence: layouts, links, Statements, and the signatures of
// key-based Sigstore bundles. It returns the distinct trusted keys whose signature over msg
// verified.
//
// A signature is checked against the trusted keys with its keyid; one whose keyid is empty
// or names no trusted key (cosign leaves keyids empty) is tried against every trusted key.
// Signatures that name a key go first, so that the keyless ones skip keys already proven.
// Keys are distinct by keyid and by material: one key listed twice, or signing twice,
// counts once, and is not checked again once proven.
//
// Errors: Malformed for a threshold below 1 or more than MaxSignatures signatures;
// Malformed wrapping ErrBudget when the budget (WithBudget) ran out before every
// signature was checked; BadSignature when no trusted key verified; Threshold when fewer
// than threshold keys did, in which case the keys that did verify are returned alongside
// the error.
func VerifySignatures(msg []byte, sigs []Signature, trusted []*keys.Key, threshold int, opts ...VerifyOption) ([]*keys.Key, error) {
	if len(sigs) > MaxSignatures {
		return nil, malformed("%d signatures, over the limit of %d", len(sigs), MaxSignatures)
	}
	return verifyThreshold("signature", msg, sigs, trusted, threshold, opts)
}

// verifyThreshold is VerifySignatures; what names the signatures in errors.
func verifyThreshold(what string, msg []byte, sigs []Signature, trusted []*keys.Key, threshold int, opts []VerifyOption) ([]*keys.Key, error) {
	var o verifyOptions
	for _, opt := range opts {
		opt(&o)
	}
	if threshold < 1 {
		return nil, malformed("signature threshold is %d; it must be at least 1", threshold)
	}
	if len(sigs) == 0 {
		return nil, reason.New(reason.BadSignature, "no %ss to verify", what)
	}
	if len(trusted) == 0 {
		return nil, reason.New(reason.BadSignature, "no trusted keys to verify the %ss with", what)
	}
	var verified []*keys.Key
	try := func(sig Signature, ks []*keys.Key) error {
		for _, k := range ks {
			if k == nil || proven(verified, k) {
				continue // a key counts once; no need to spend another check on it
			}
			if !o.budget.Spend(checkCost(msg)) {
				return budgetExhausted(o.budget)
			}
			if k.Verify(msg, sig.Sig) == nil {
				verified = append(verified, k)
				return nil
			}
		}
		return nil
	}
	var keyless []Signature
	for _, sig := range sigs {
		named := namedKeys(trusted, sig.KeyID)
		if len(named) == 0 {
			keyless = append(keyless, sig)
			continue
		}
		if err := try(sig, named); err != nil {
			return nil, err
		}
	}
	for _, sig := range keyless {
		if err := try(sig, trusted); err != nil {
			return nil, err
		}
	}
	switch {
	case len(verified) == 0 && len(sigs) == 1:
		return nil, reason.New(reason.BadSignature, "the %s (%s) did not verify with the trusted keys (%s)",
			what, listIDs(sigIDs(sigs)), listIDs(keyIDs(trusted)))
	case len(verified) == 0:
		return nil, reason.New(reason.BadSignature, "none of %s (%s) verified with the trusted keys (%s)",
			countNoun(len(sigs), what), listIDs(sigIDs(sigs)), listIDs(keyIDs(trusted)))
	case len(verified) < threshold:
		return verified, reason.New(reason.Threshold, "%d of %d required signatures from trusted keys", len(verified), threshold)
	}
	return verified, nil
}

// checkUnit is the message length one budgeted check covers: a signature check hashes the
// whole message, so a check over megabytes of untrusted payload costs as much as many
// over a link of a few kilobytes.
const checkUnit = 64 << 10

// checkCost is what one check over msg takes from a Budget: one, and one more for each
// checkUnit of msg.
func checkCost(msg []byte) int { return 1 + len(msg)/checkUnit }

// namedKeys returns the trusted keys with keyid id (none for an empty id).
func namedKeys(trusted []*keys.Key, id string) []*keys.Key {
	if id == "" {
		return nil
	}
	var out []*keys.Key
	for _, k := range trusted {
		if k != nil && k.ID == id {
			out = append(out, k)
		}
	}
	return out
}

// proven reports whether k, or the same key under another listing, has verified already.
func proven(verified []*keys.Key, k *keys.Key) bool {
	for _, v := range verified {
		if v == k || (k.ID != "" && v.ID == k.ID) || v.SameMaterial(k) {
			return true
		}
	}
	return false
}

func countNoun(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func sigIDs(sigs []Signature) []string {
	ids := make([]string, len(sigs))
	for i, s := range sigs {
		ids[i] = s.KeyID
	}
	return ids
}

func keyIDs(ks []*keys.Key) []string {
	var ids []string
	for _, k := range ks {
		if k != nil {
			ids = append(ids, k.ID)
		}
	}
	return ids
}

// listIDs renders keyids for a denial: 8-character prefixes (what Python puts in link
// file names), at most five, "no keyid" for an empty one.
func listIDs(ids []string) string {
	const maxListed = 5
	var out []string
	for i, id := range ids {
		if i == maxListed {
			out = append(out, fmt.Sprintf("and %d more", len(ids)-maxListed))
			break
		}
		switch {
		case id == "":
			out = append(out, "no keyid")
		case len(id) > 8:
			out = append(out, fmt.Sprintf("%.8s", id))
		default:
			out = append(out, fmt.Sprintf("%q", id))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}
