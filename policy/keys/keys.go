// Package keys reads, writes and uses the signing keys of in-toto and cosign.
//
// SKELETON: signatures are binding (docs/dev/BRIEF.md); bodies are being written.
package keys

import (
	"crypto"
	"errors"
)

var errTODO = errors.New("keys: not implemented yet")

// Key is a public verification key.
type Key struct {
	ID             string
	Type           string
	Scheme         string
	HashAlgorithms []string
	Public         crypto.PublicKey
}

func ParsePublic(data []byte) (*Key, error)  { return nil, errTODO }
func ParseJSON(raw []byte) (*Key, error)     { return nil, errTODO }
func (k *Key) MarshalJSON() ([]byte, error)  { return nil, errTODO }
func (k *Key) Verify(data, sig []byte) error { return errTODO }
func (k *Key) SameMaterial(o *Key) bool      { return false }

// Signer is a private key together with its public Key.
type Signer struct {
	*Key
	priv crypto.Signer
}

func ParsePrivate(data, passphrase []byte) (*Signer, error)        { return nil, errTODO }
func Generate(typ string, rsaBits int) (*Signer, error)            { return nil, errTODO }
func (s *Signer) Sign(data []byte) ([]byte, error)                 { return nil, errTODO }
func (s *Signer) MarshalPrivate(passphrase []byte) ([]byte, error) { return nil, errTODO }
func (s *Signer) MarshalPublic() ([]byte, error)                   { return nil, errTODO }
