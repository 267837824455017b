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
// envelope. A signature is checked against the trusted keys with its keyid; one whose
// keyid is empty or names no trusted key (cosign leaves keyids empty) is tried against
// every trusted key. Keys are distinct by keyid and by material: one key listed twice,
// or signing twice, counts once.
//
// Errors: Malformed for a threshold below 1 or an envelope that cannot be checked;
// BadSignature when no trusted key verified; Threshold when fewer than threshold keys
// did, in which case the keys that did verify are returned alongside the error.
func (s *Signed) Verify(trusted []*keys.Key, threshold int) ([]*keys.Key, error) {
	if s == nil {
		return nil, malformed("no envelope to verify")
	}
	if threshold < 1 {
		return nil, malformed("signature threshold is %d; it must be at least 1", threshold)
	}
	if len(s.Signatures) > MaxSignatures {
		return nil, malformed("envelope has %d signatures, over the limit of %d", len(s.Signatures), MaxSignatures)
	}
	if len(s.Signatures) == 0 {
		return nil, reason.New(reason.BadSignature, "%s has no signatures", s.Format)
	}
	if len(trusted) == 0 {
		return nil, reason.New(reason.BadSignature, "no trusted keys to verify the %s signatures with", s.Format)
	}
	msg, err := s.SignedBytes()
	if err != nil {
		return nil, err
	}
	var verified []*keys.Key
	seen := func(k *keys.Key) bool {
		for _, v := range verified {
			if v == k || (k.ID != "" && v.ID == k.ID) || v.SameMaterial(k) {
				return true
			}
		}
		return false
	}
	for _, sig := range s.Signatures {
		for _, k := range candidates(trusted, sig.KeyID) {
			if seen(k) {
				continue // a key counts once; no need to spend another verification on it
			}
			if k.Verify(msg, sig.Sig) == nil {
				verified = append(verified, k)
				break
			}
		}
	}
	switch {
	case len(verified) == 0 && len(s.Signatures) == 1:
		return nil, reason.New(reason.BadSignature, "the %s signature (%s) did not verify with the trusted keys (%s)",
			s.Format, listIDs(sigIDs(s.Signatures)), listIDs(keyIDs(trusted)))
	case len(verified) == 0:
		return nil, reason.New(reason.BadSignature, "none of %s (%s) verified with the trusted keys (%s)",
			countNoun(len(s.Signatures), s.Format.String()+" signature"), listIDs(sigIDs(s.Signatures)), listIDs(keyIDs(trusted)))
	case len(verified) < threshold:
		return verified, reason.New(reason.Threshold, "%d of %d required signatures from trusted keys", len(verified), threshold)
	}
	return verified, nil
}

// candidates returns the trusted keys to try for a signature: those with its keyid, or
// all of them when the keyid is empty or unknown.
func candidates(trusted []*keys.Key, keyID string) []*keys.Key {
	if keyID != "" {
		var named []*keys.Key
		for _, k := range trusted {
			if k != nil && k.ID == keyID {
				named = append(named, k)
			}
		}
		if len(named) > 0 {
			return named
		}
	}
	all := make([]*keys.Key, 0, len(trusted))
	for _, k := range trusted {
		if k != nil {
			all = append(all, k)
		}
	}
	return all
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
