package tunnel

import (
	"encoding/binary"
	"errors"
	"strconv"
	"unicode/utf8"
)

// StatusCode is a WebSocket close status code (RFC 6455 section 7.4).
type StatusCode uint16

// Close codes of RFC 6455 section 7.4.1, and the 44xx codes Ferry uses to
// tell a browser why its credential was refused.
const (
	StatusNormalClosure      StatusCode = 1000
	StatusGoingAway          StatusCode = 1001
	StatusProtocolError      StatusCode = 1002
	StatusUnsupportedData    StatusCode = 1003
	StatusNoStatusRcvd       StatusCode = 1005 // never on the wire
	StatusAbnormalClosure    StatusCode = 1006 // never on the wire
	StatusInvalidPayload     StatusCode = 1007
	StatusPolicyViolation    StatusCode = 1008
	StatusMessageTooBig      StatusCode = 1009
	StatusMandatoryExtension StatusCode = 1010
	StatusInternalError      StatusCode = 1011
	StatusServiceRestart     StatusCode = 1012
	StatusTryAgainLater      StatusCode = 1013
	StatusBadGateway         StatusCode = 1014
	StatusTLSHandshake       StatusCode = 1015 // never on the wire
)

func (s StatusCode) String() string {
	switch s {
	case StatusNormalClosure:
		return "normal closure"
	case StatusGoingAway:
		return "going away"
	case StatusProtocolError:
		return "protocol error"
	case StatusUnsupportedData:
		return "unsupported data"
	case StatusNoStatusRcvd:
		return "no status"
	case StatusAbnormalClosure:
		return "abnormal closure"
	case StatusInvalidPayload:
		return "invalid payload"
	case StatusPolicyViolation:
		return "policy violation"
	case StatusMessageTooBig:
		return "message too big"
	case StatusMandatoryExtension:
		return "mandatory extension"
	case StatusInternalError:
		return "internal error"
	case StatusServiceRestart:
		return "service restart"
	case StatusTryAgainLater:
		return "try again later"
	case StatusBadGateway:
		return "bad gateway"
	case StatusTLSHandshake:
		return "TLS handshake"
	}
	return "status " + strconv.Itoa(int(s))
}

// validWireCode reports whether code may appear in a close frame: 1000–1003,
// 1007–1014 and the registered and private ranges 3000–4999. 1004–1006, 1015,
// 0–999 and 1016–2999 may not.
func validWireCode(code StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003:
		return true
	case code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// CloseError is the error a Conn returns once the connection is closed: the
// code and reason of the close frame received, or, when the connection
// failed, the code Ferry sent and why. Code is StatusNoStatusRcvd when the
// peer's close frame had no payload and StatusAbnormalClosure when the
// connection ended without a close frame.
type CloseError struct {
	Code   StatusCode
	Reason string
	// Local is true when this side sent the close code (a protocol failure
	// it detected, or its own Close), false when the peer sent it.
	Local bool
}

func (e *CloseError) Error() string {
	who := "peer"
	if e.Local {
		who = "local"
	}
	if e.Reason == "" {
		return "tunnel: websocket closed by " + who + ": " + strconv.Itoa(int(e.Code)) + " " + e.Code.String()
	}
	return "tunnel: websocket closed by " + who + ": " + strconv.Itoa(int(e.Code)) + " " + e.Code.String() + ": " + e.Reason
}

// CloseStatus returns the close code carried by err or any error it wraps,
// or 0 when err is not a *CloseError.
func CloseStatus(err error) StatusCode {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return 0
}

// parseClosePayload decodes a close frame's payload (section 5.5.1). An
// empty payload means StatusNoStatusRcvd. A one-byte payload, a code that may
// not be sent, or a reason that is not UTF-8 is an error with the code the
// connection must be failed with.
func parseClosePayload(p []byte) (StatusCode, string, error) {
	switch len(p) {
	case 0:
		return StatusNoStatusRcvd, "", nil
	case 1:
		return 0, "", &CloseError{Code: StatusProtocolError, Reason: "close frame payload of 1 byte", Local: true}
	}
	code := StatusCode(binary.BigEndian.Uint16(p))
	if !validWireCode(code) {
		return 0, "", &CloseError{Code: StatusProtocolError, Reason: "invalid close code " + strconv.Itoa(int(code)), Local: true}
	}
	reason := p[2:]
	if !utf8.Valid(reason) {
		return 0, "", &CloseError{Code: StatusInvalidPayload, Reason: "close reason is not UTF-8", Local: true}
	}
	return code, string(reason), nil
}

// putClosePayload writes a close payload for code and reason into b (at
// least 125 bytes) and returns its length. The reason is cut at a rune
// boundary to fit the 125-byte limit of control frames. StatusNoStatusRcvd
// yields an empty payload.
func putClosePayload(b []byte, code StatusCode, reason string) int {
	if code == StatusNoStatusRcvd || code == 0 {
		return 0
	}
	binary.BigEndian.PutUint16(b, uint16(code))
	max := maxControlPayload - 2
	if len(reason) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut]
	}
	return 2 + copy(b[2:], reason)
}
