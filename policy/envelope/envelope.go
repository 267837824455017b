// Package envelope handles the two signature wrappers of in-toto metadata: DSSE envelopes
// and legacy Metablocks.
//
// SKELETON: signatures are binding (docs/dev/BRIEF.md); bodies are being written.
package envelope

import (
	"errors"

	"tollgate.dev/tollgate/policy/keys"
)

var errTODO = errors.New("envelope: not implemented yet")

const PayloadTypeInToto = "application/vnd.in-toto+json"

type Format int

const (
	Metablock Format = iota + 1
	DSSE
)

type Signature struct {
	KeyID string
	Sig   []byte
}

type Signed struct {
	Format      Format
	PayloadType string
	Payload     []byte
	Signatures  []Signature
}

func Parse(data []byte) (*Signed, error)                                         { return nil, errTODO }
func (s *Signed) Verify(trusted []*keys.Key, threshold int) ([]*keys.Key, error) { return nil, errTODO }
func (s *Signed) Sign(signers ...*keys.Signer) error                             { return errTODO }
func (s *Signed) Marshal() ([]byte, error)                                       { return nil, errTODO }
func NewDSSE(payloadType string, payload []byte) *Signed {
	return &Signed{Format: DSSE, PayloadType: payloadType, Payload: payload}
}
func NewMetablock(signed any) (*Signed, error) { return nil, errTODO }
