package keys

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
)

// securesystemslib's encrypted key files (in-toto-keygen -p -t ed25519|ecdsa) are
//
//	hex(salt) @@@@ iterations @@@@ hex(hmac) @@@@ hex(iv) @@@@ hex(ciphertext)
//
// with key = PBKDF2-HMAC-SHA256(passphrase, salt, iterations, 32 bytes), ciphertext =
// AES-256-CTR(key, iv, json.dumps(key dict)) and hmac = HMAC-SHA256(key, ciphertext).
// (securesystemslib/rsa_keys.py: _generate_derived_key, _encrypt, _decrypt.)
const (
	sslibDelimiter  = "@@@@"
	sslibSaltSize   = 16
	sslibIterations = 100000 // securesystemslib settings.PBKDF2_ITERATIONS
	// sslibMaxIterations bounds the work a hostile file can demand.
	sslibMaxIterations = 2_000_000
)

// isSSLibEncrypted reports whether data has the shape of a securesystemslib encrypted key.
func isSSLibEncrypted(data []byte) bool {
	return bytes.Count(data, []byte(sslibDelimiter)) == 4
}

func sslibDerive(passphrase, salt []byte, iterations int) ([]byte, error) {
	return pbkdf2.Key(sha256.New, string(passphrase), salt, iterations, 32)
}

// sslibDecrypt opens a securesystemslib encrypted key, checking the HMAC before
// decrypting so a wrong passphrase is reported as such.
func sslibDecrypt(data, passphrase []byte) ([]byte, error) {
	parts := strings.Split(string(data), sslibDelimiter)
	if len(parts) != 5 {
		return nil, errors.New("malformed securesystemslib encrypted key")
	}
	salt, err1 := hex.DecodeString(parts[0])
	iterations, err2 := strconv.Atoi(parts[1])
	mac, err3 := hex.DecodeString(parts[2])
	iv, err4 := hex.DecodeString(parts[3])
	ct, err5 := hex.DecodeString(parts[4])
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil || len(iv) != aes.BlockSize || len(salt) == 0 {
		return nil, errors.New("malformed securesystemslib encrypted key")
	}
	if iterations < 1 || iterations > sslibMaxIterations {
		return nil, errors.New("securesystemslib encrypted key has an unsupported iteration count")
	}
	key, err := sslibDerive(passphrase, salt, iterations)
	if err != nil {
		return nil, errors.New("deriving the key encryption key failed")
	}
	h := hmac.New(sha256.New, key)
	h.Write(ct)
	if !hmac.Equal(h.Sum(nil), mac) {
		return nil, ErrWrongPassphrase
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	plain := make([]byte, len(ct))
	cipher.NewCTR(block, iv).XORKeyStream(plain, ct)
	return plain, nil
}

// sslibEncrypt writes plain in securesystemslib's encrypted form, as Python would.
func sslibEncrypt(plain, passphrase []byte) ([]byte, error) {
	salt := make([]byte, sslibSaltSize)
	iv := make([]byte, aes.BlockSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	if _, err := rand.Read(iv); err != nil {
		return nil, err
	}
	key, err := sslibDerive(passphrase, salt, sslibIterations)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	ct := make([]byte, len(plain))
	cipher.NewCTR(block, iv).XORKeyStream(ct, plain)
	h := hmac.New(sha256.New, key)
	h.Write(ct)
	out := strings.Join([]string{
		hex.EncodeToString(salt), strconv.Itoa(sslibIterations), hex.EncodeToString(h.Sum(nil)),
		hex.EncodeToString(iv), hex.EncodeToString(ct),
	}, sslibDelimiter)
	return []byte(out), nil
}
