//go:build !js

package client

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// PinnedTLS returns TLS settings that accept exactly the server
// certificate whose SHA-256 fingerprint (hex, colons allowed) is given, as
// printed by `ferry serve -self-signed`. The pin replaces chain
// verification: the certificate is trusted because it is the one expected.
func PinnedTLS(fingerprint string) (*tls.Config, error) {
	want, err := hex.DecodeString(strings.ReplaceAll(strings.ToLower(strings.TrimSpace(fingerprint)), ":", ""))
	if err != nil || len(want) != sha256.Size {
		return nil, errors.New("client: a pin is the 64 hex digits of a SHA-256 fingerprint")
	}
	return &tls.Config{
		InsecureSkipVerify: true, // replaced by the check below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("server sent no certificate")
			}
			got := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if !bytes.Equal(got[:], want) {
				return &PinMismatchError{Got: hex.EncodeToString(got[:])}
			}
			return nil
		},
	}, nil
}

// PinMismatchError is a server certificate whose fingerprint is not the
// pin; the Session treats it as permanent (a *CertificateError).
type PinMismatchError struct {
	Got string // the certificate's SHA-256 fingerprint, hex
}

func (e *PinMismatchError) Error() string {
	return fmt.Sprintf("its SHA-256 fingerprint %s does not match the pin", e.Got)
}
