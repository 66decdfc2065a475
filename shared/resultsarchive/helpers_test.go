package resultsarchive

import (
	"encoding/hex"
	"encoding/pem"
)

func hexs(b []byte) string { return hex.EncodeToString(b) }

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
