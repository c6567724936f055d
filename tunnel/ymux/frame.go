// Package ymux speaks the client side of yamux's wire protocol (the
// spec.md of github.com/hashicorp/yamux, version 0) with none of fmt, log,
// net or reflect, so that the browser build of Ferry's client stays small:
// with hashicorp/yamux and what it links, client.wasm.gz weighed 188 KB
// more (go run ./wasm/build -sizes, before and after). Native builds keep hashicorp/yamux
// on both sides; the gateway's yamux is the peer this package is tested
// against.
//
// It does what Ferry's client needs and nothing more: open streams, write
// within the peer's window and grant its own, half-close with FIN, read a
// peer's FIN and RST, ping, and honour a GoAway. Streams the peer opens
// are refused with RST. Its API mirrors the part of hashicorp/yamux that
// the client calls, errors included, so that one client serves both
// builds: in particular a stream of a session that ended reads end of file
// as in hashicorp/yamux, and tunnel.Stream tells that apart.
package ymux

import (
	"encoding/binary"
	"errors"
	"strconv"
)

// The frame header (spec.md, "Framing"): version, type, flags (2 bytes),
// stream ID (4), length (4), big endian.
const headerSize = 12

const protoVersion = 0

// Frame types.
const (
	typeData         = 0 // length bytes of payload follow
	typeWindowUpdate = 1 // length is a delta to the receiver's send window
	typePing         = 2 // stream 0; length is an opaque value to echo
	typeGoAway       = 3 // stream 0; length is the reason: goAway*
)

// Flags.
const (
	flagSYN = 1 << 0 // opens a stream, or a ping request
	flagACK = 1 << 1 // acknowledges a stream, or a ping answer
	flagFIN = 1 << 2 // half-closes a stream
	flagRST = 1 << 3 // resets a stream
)

// GoAway reasons.
const (
	goAwayNormal   = 0
	goAwayProtocol = 1
	goAwayInternal = 2
)

// initialWindow is every stream's window in both directions when it opens
// (spec.md, "Flow Control").
const initialWindow = 256 << 10

// header is one frame's header.
type header struct {
	typ, flags uint16
	stream     uint32
	length     uint32
}

// ErrProtocol is the error a session ends with when the peer breaks the
// protocol (an unknown version or type, data past a window).
var ErrProtocol = errors.New("yamux: protocol error")

// parseHeader decodes the header in b, which holds headerSize bytes.
func parseHeader(b []byte) (header, error) {
	h := header{
		typ:    uint16(b[1]),
		flags:  binary.BigEndian.Uint16(b[2:]),
		stream: binary.BigEndian.Uint32(b[4:]),
		length: binary.BigEndian.Uint32(b[8:]),
	}
	if b[0] != protoVersion {
		return h, &protocolError{"version " + strconv.Itoa(int(b[0]))}
	}
	if h.typ > typeGoAway {
		return h, &protocolError{"frame type " + strconv.Itoa(int(h.typ))}
	}
	if (h.typ == typePing || h.typ == typeGoAway) != (h.stream == 0) {
		return h, &protocolError{"frame type " + strconv.Itoa(int(h.typ)) + " on stream " + strconv.FormatUint(uint64(h.stream), 10)}
	}
	return h, nil
}

// put encodes h into b, which holds headerSize bytes.
func (h header) put(b []byte) {
	b[0] = protoVersion
	b[1] = byte(h.typ)
	binary.BigEndian.PutUint16(b[2:], h.flags)
	binary.BigEndian.PutUint32(b[4:], h.stream)
	binary.BigEndian.PutUint32(b[8:], h.length)
}

// protocolError is ErrProtocol with what broke it.
type protocolError struct{ what string }

func (e *protocolError) Error() string { return ErrProtocol.Error() + ": " + e.what }
func (e *protocolError) Unwrap() error { return ErrProtocol }

// Errors with hashicorp/yamux's meanings.
var (
	// ErrSessionShutdown: the session has ended.
	ErrSessionShutdown = errors.New("session shutdown")
	// ErrRemoteGoAway: the peer sent GoAway and takes no new streams.
	ErrRemoteGoAway = errors.New("remote end is not accepting connections")
	// ErrConnectionReset: the peer reset the stream.
	ErrConnectionReset = errors.New("connection reset")
	// ErrStreamsExhausted: every stream ID has been used.
	ErrStreamsExhausted = errors.New("streams exhausted")
	// ErrStreamClosed: a write after Close.
	ErrStreamClosed = errors.New("stream closed")
	// ErrTimeout: a deadline passed. It is a timeout in the sense of
	// net.Error (its Timeout method reports true).
	ErrTimeout error = timeoutError{}
)

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o deadline reached" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
