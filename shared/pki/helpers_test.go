package pki

import "encoding/pem"

// decodeCert returns the DER of the next CERTIFICATE block and the rest.
func decodeCert(data []byte) ([]byte, []byte) {
	for {
		b, rest := pem.Decode(data)
		if b == nil {
			return nil, nil
		}
		if b.Type == "CERTIFICATE" {
			return b.Bytes, rest
		}
		data = rest
	}
}
