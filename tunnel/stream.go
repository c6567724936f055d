package tunnel

import (
	"errors"
	"io"
	"strconv"
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
	OpenOK             OpenStatus = 0  // connected; raw bytes follow
	OpenUnknownService OpenStatus = 1  // no service of that name
	OpenForbidden      OpenStatus = 2  // the credential does not allow it
	OpenRefused        OpenStatus = 3  // the backend refused the connection
	OpenTimeout        OpenStatus = 4  // the backend did not answer in time
	OpenLimit          OpenStatus = 5  // a limit was reached (streams per session...)
	OpenUnreachable    OpenStatus = 6  // any other failure to reach the backend
	OpenBadRequest     OpenStatus = 7  // the open request was malformed
	OpenUnavailable    OpenStatus = 8  // the gateway is shutting down
	OpenBusy           OpenStatus = 9  // the gateway's buffer budget is spent: back off, never open another session for it
	OpenNotExposed     OpenStatus = 10 // no client exposes the service right now
)

// RegisterVersion is the version byte of an exposer's registration
// request (docs/PROTOCOL.md §6): a version 1 gateway answers it with
// status 7, so it is never taken for an open.
const RegisterVersion = 0x02

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
	case OpenNotExposed:
		return "not exposed"
	}
	return "status " + strconv.Itoa(int(s))
}

// OpenError is a refused stream open: the gateway's status and message.
type OpenError struct {
	Service string
	Status  OpenStatus
	Message string
}

func (e *OpenError) Error() string {
	if e.Message == "" {
		return "tunnel: open " + e.Service + ": " + e.Status.String()
	}
	return "tunnel: open " + e.Service + ": " + e.Status.String() + ": " + e.Message
}

// ErrBadOpen reports a malformed open request or response.
var ErrBadOpen = errors.New("tunnel: malformed stream open")

// AppendOpenRequest appends the open request for service to b.
func AppendOpenRequest(b []byte, service string) ([]byte, error) {
	if len(service) == 0 || len(service) > 255 {
		return b, badOpen("service name of " + strconv.Itoa(len(service)) + " bytes (1 to 255)")
	}
	b = append(b, ProtocolVersion, byte(len(service)))
	return append(b, service...), nil
}

// AppendRegisterRequest appends an exposer's registration of service
// under exposer ID id (1 to 255 bytes each) to b.
func AppendRegisterRequest(b []byte, service, id string) ([]byte, error) {
	if len(service) == 0 || len(service) > 255 {
		return b, badOpen("service name of " + strconv.Itoa(len(service)) + " bytes (1 to 255)")
	}
	if len(id) == 0 || len(id) > 255 {
		return b, badOpen("exposer ID of " + strconv.Itoa(len(id)) + " bytes (1 to 255)")
	}
	b = append(b, RegisterVersion, byte(len(service)))
	b = append(b, service...)
	b = append(b, byte(len(id)))
	return append(b, id...), nil
}

// Request is what the first bytes of a client-opened stream ask for: a
// stream to Service, or, with Register set, to expose Service under
// ExposerID.
type Request struct {
	Service   string
	Register  bool
	ExposerID string
}

// ReadOpenRequest reads an open request (version 1 only) and returns the
// service name: what an exposer reads on a gateway-opened stream.
func ReadOpenRequest(r io.Reader) (string, error) {
	var v [1]byte
	if _, err := io.ReadFull(r, v[:]); err != nil {
		return "", err
	}
	if v[0] != ProtocolVersion {
		return "", badOpen("version " + hexByte(v[0]) + ", want " + hexByte(ProtocolVersion))
	}
	return readName(r, "service name")
}

// ReadRequest reads an open request or a registration: what the gateway
// reads on a client-opened stream.
func ReadRequest(r io.Reader) (Request, error) {
	var v [1]byte
	if _, err := io.ReadFull(r, v[:]); err != nil {
		return Request{}, err
	}
	switch v[0] {
	case ProtocolVersion:
		name, err := readName(r, "service name")
		return Request{Service: name}, err
	case RegisterVersion:
		name, err := readName(r, "service name")
		if err != nil {
			return Request{}, err
		}
		id, err := readName(r, "exposer ID")
		return Request{Service: name, Register: true, ExposerID: id}, err
	}
	return Request{}, badOpen("version " + hexByte(v[0]) + ", want " + hexByte(ProtocolVersion) + " or " + hexByte(RegisterVersion))
}

// readName reads a length byte (1 to 255) and that many bytes of UTF-8.
func readName(r io.Reader, what string) (string, error) {
	var n [1]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	if n[0] == 0 {
		return "", badOpen("empty " + what)
	}
	name := make([]byte, n[0])
	if _, err := io.ReadFull(r, name); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	if !utf8.Valid(name) {
		return "", badOpen(what + " is not UTF-8")
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
		return 0, "", badOpen("version " + hexByte(hdr[0]) + ", want " + hexByte(ProtocolVersion))
	}
	n := int(hdr[2])<<8 | int(hdr[3])
	if n > maxOpenMessage {
		return 0, "", badOpen("message of " + strconv.Itoa(int(n)) + " bytes (at most " + strconv.Itoa(maxOpenMessage) + ")")
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, "", err
	}
	if !utf8.Valid(msg) {
		return 0, "", badOpen("message is not UTF-8")
	}
	return OpenStatus(hdr[1]), string(msg), nil
}

// badOpen is ErrBadOpen with what was wrong.
type badOpen string

func (e badOpen) Error() string { return ErrBadOpen.Error() + ": " + string(e) }
func (e badOpen) Unwrap() error { return ErrBadOpen }

// hexByte formats b as 0x followed by its hex digits, as %#x does.
func hexByte(b byte) string { return "0x" + strconv.FormatUint(uint64(b), 16) }
