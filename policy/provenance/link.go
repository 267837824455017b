package provenance

import (
	"encoding/json"
	"fmt"
	"sort"

	"tollgate.dev/tollgate/policy/attest"
	"tollgate.dev/tollgate/policy/envelope"
	"tollgate.dev/tollgate/policy/intoto"
)

// linkPredicate is https://in-toto.io/attestation/link/v0.3.
type linkPredicate struct {
	Name        string          `json:"name"`
	Command     []string        `json:"command,omitempty"`
	Materials   []linkMaterial  `json:"materials,omitempty"`
	Byproducts  json.RawMessage `json:"byproducts,omitempty"`
	Environment json.RawMessage `json:"environment,omitempty"`
}

type linkMaterial struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// LinkStatement turns a signed link (Metablock or DSSE) into a Statement with a link v0.3
// predicate about subjects. The link's signatures are not checked here: the Statement is
// signed anew by whoever attests it.
func LinkStatement(subjects []Subject, linkFile []byte) ([]byte, error) {
	env, err := envelope.Parse(linkFile)
	if err != nil {
		return nil, fmt.Errorf("reading link: %w", err)
	}
	l, err := intoto.ParseLink(env)
	if err != nil {
		return nil, fmt.Errorf("reading link: %w", err)
	}
	p := linkPredicate{Name: l.Name, Command: l.Command}
	mats := l.Materials()
	names := make([]string, 0, len(mats))
	for n := range mats {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p.Materials = append(p.Materials, linkMaterial{Name: n, Digest: mats[n]})
	}
	if isObject(l.Byproducts) {
		p.Byproducts = l.Byproducts
	}
	if isObject(l.Environment) {
		p.Environment = l.Environment
	}
	return Statement(attest.PredicateLinkV03, subjects, p)
}

func isObject(raw json.RawMessage) bool {
	return len(raw) > 1 && raw[0] == '{' && string(raw) != "{}"
}
