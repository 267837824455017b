package envelope

import "strconv"

// pae is DSSE v1's pre-authentication encoding, the bytes a DSSE signature covers:
//
//	"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body
//
// with SP one space and LEN the byte length in ASCII decimal without leading zeros.
// (https://github.com/secure-systems-lab/dsse/blob/master/protocol.md)
//
// It is written here rather than taken from go-securesystemslib's dsse package, which
// would link golang.org/x/crypto/ssh into the offline verifier for these few lines.
func pae(payloadType string, payload []byte) []byte {
	const prefix = "DSSEv1 "
	b := make([]byte, 0, len(prefix)+2*20+3+len(payloadType)+len(payload))
	b = append(b, prefix...)
	b = strconv.AppendInt(b, int64(len(payloadType)), 10)
	b = append(b, ' ')
	b = append(b, payloadType...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(payload)), 10)
	b = append(b, ' ')
	return append(b, payload...)
}
