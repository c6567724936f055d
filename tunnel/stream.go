package tunnel

import (
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// The stream open protocol (docs/PROTOCOL.md): the first bytes a client
// writes on a new yamux stream name the service it wants, and the first
// bytes the gateway writes back say whether it got it. Raw bytes follow.
//
//	request:  0x01 | name length (1 byte, 1–255) | name
//	response: 0x01 | status (1 byte) | message length (2 bytes, big endian, ≤ 1024) | message (UTF-8)

// ProtocolVersion is the version byte that starts every open request and
// response.
const ProtocolVersion = 0x01

// Subprotocol is the WebSocket subprotocol of Ferry's tunnel.
const Subprotocol = "ferry.v1"

// maxOpenMessage is the longest message an open response carries.
const maxOpenMessage = 1024

// OpenStatus is the gateway's answer to an open request.
type OpenStatus byte

// Open statuses. Values are fixed by docs/PROTOCOL.md.
const (
	OpenOK             OpenStatus = 0 // connected; raw bytes follow
	OpenUnknownService OpenStatus = 1 // no service of that name
	OpenForbidden      OpenStatus = 2 // the credential does not allow it
	OpenRefused        OpenStatus = 3 // the backend refused the connection
	OpenTimeout        OpenStatus = 4 // the backend did not answer in time
	OpenLimit          OpenStatus = 5 // a limit was reached (streams per session...)
	OpenUnreachable    OpenStatus = 6 // any other failure to reach the backend
	OpenBadRequest     OpenStatus = 7 // the open request was malformed
	OpenUnavailable    OpenStatus = 8 // the gateway is shutting down
	OpenBusy           OpenStatus = 9 // the gateway's buffer budget is spent: back off, never open another session for it
)

func (s OpenStatus) String() string {
	switch s {
	case OpenOK:
		return "ok"
	case OpenUnknownService:
		return "unknown service"
	case OpenForbidden:
		return "forbidden"
	case OpenRefused:
		return "connection refused"
	case OpenTimeout:
		return "timeout"
	case OpenLimit:
		return "limit reached"
	case OpenUnreachable:
		return "unreachable"
	case OpenBadRequest:
		return "bad request"
	case OpenUnavailable:
		return "unavailable"
	case OpenBusy:
		return "busy"
	}
	return fmt.Sprintf("status %d", byte(s))
}

// OpenError is a refused stream open: the gateway's status and message.
type OpenError struct {
	Service string
	Status  OpenStatus
	Message string
}

func (e *OpenError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("tunnel: open %s: %s", e.Service, e.Status)
	}
	return fmt.Sprintf("tunnel: open %s: %s: %s", e.Service, e.Status, e.Message)
}

// ErrBadOpen reports a malformed open request or response.
var ErrBadOpen = errors.New("tunnel: malformed stream open")

// AppendOpenRequest appends the open request for service to b.
func AppendOpenRequest(b []byte, service string) ([]byte, error) {
	if len(service) == 0 || len(service) > 255 {
		return b, fmt.Errorf("%w: service name of %d bytes (1 to 255)", ErrBadOpen, len(service))
	}
	b = append(b, ProtocolVersion, byte(len(service)))
	return append(b, service...), nil
}

// ReadOpenRequest reads an open request and returns the service name.
func ReadOpenRequest(r io.Reader) (string, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return "", err
	}
	if hdr[0] != ProtocolVersion {
		return "", fmt.Errorf("%w: version %#x, want %#x", ErrBadOpen, hdr[0], ProtocolVersion)
	}
	if hdr[1] == 0 {
		return "", fmt.Errorf("%w: empty service name", ErrBadOpen)
	}
	name := make([]byte, hdr[1])
	if _, err := io.ReadFull(r, name); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	if !utf8.Valid(name) {
		return "", fmt.Errorf("%w: service name is not UTF-8", ErrBadOpen)
	}
	return string(name), nil
}

// AppendOpenResponse appends an open response to b; msg is cut at 1024
// bytes on a rune boundary.
func AppendOpenResponse(b []byte, status OpenStatus, msg string) []byte {
	if len(msg) > maxOpenMessage {
		cut := maxOpenMessage
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut]
	}
	b = append(b, ProtocolVersion, byte(status), byte(len(msg)>>8), byte(len(msg)))
	return append(b, msg...)
}

// ReadOpenResponse reads an open response.
func ReadOpenResponse(r io.Reader) (OpenStatus, string, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, "", err
	}
	if hdr[0] != ProtocolVersion {
		return 0, "", fmt.Errorf("%w: version %#x, want %#x", ErrBadOpen, hdr[0], ProtocolVersion)
	}
	n := int(hdr[2])<<8 | int(hdr[3])
	if n > maxOpenMessage {
		return 0, "", fmt.Errorf("%w: message of %d bytes (at most %d)", ErrBadOpen, n, maxOpenMessage)
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, "", err
	}
	if !utf8.Valid(msg) {
		return 0, "", fmt.Errorf("%w: message is not UTF-8", ErrBadOpen)
	}
	return OpenStatus(hdr[1]), string(msg), nil
}
