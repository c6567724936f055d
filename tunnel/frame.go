package tunnel

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"strconv"
)

// Opcode is a WebSocket frame opcode (RFC 6455 section 5.2).
type Opcode byte

// Opcodes defined by RFC 6455 section 11.8.
const (
	OpContinuation Opcode = 0x0
	OpText         Opcode = 0x1
	OpBinary       Opcode = 0x2
	OpClose        Opcode = 0x8
	OpPing         Opcode = 0x9
	OpPong         Opcode = 0xA
)

// MessageType is the type of a data message: MessageText or MessageBinary.
type MessageType = Opcode

// The two data message types.
const (
	MessageText   = OpText
	MessageBinary = OpBinary
)

func (o Opcode) String() string {
	switch o {
	case OpContinuation:
		return "continuation"
	case OpText:
		return "text"
	case OpBinary:
		return "binary"
	case OpClose:
		return "close"
	case OpPing:
		return "ping"
	case OpPong:
		return "pong"
	}
	return "opcode(0x" + strconv.FormatUint(uint64(o), 16) + ")"
}

func (o Opcode) isControl() bool { return o&0x8 != 0 }

func (o Opcode) isReserved() bool {
	switch o {
	case OpContinuation, OpText, OpBinary, OpClose, OpPing, OpPong:
		return false
	}
	return true
}

// maxHeaderSize is the largest frame header: 2 bytes, an 8-byte length and a
// 4-byte masking key.
const maxHeaderSize = 14

// maxControlPayload is the largest payload of a control frame (section 5.5).
const maxControlPayload = 125

// header is a decoded frame header.
type header struct {
	fin    bool
	rsv1   bool
	rsv2   bool
	rsv3   bool
	opcode Opcode
	masked bool
	length int64
	key    uint32 // masking key, as read from the wire in little-endian order
}

// errFrameLength reports a 64-bit payload length with its most significant
// bit set, which section 5.2 forbids.
var errFrameLength = errors.New("tunnel: frame length has the most significant bit set")

// headerSize is the encoded length of h.
func headerSize(h *header) int {
	n := 2
	switch {
	case h.length > 0xFFFF:
		n = 10
	case h.length > 125:
		n = 4
	}
	if h.masked {
		n += 4
	}
	return n
}

// putHeader encodes h into b (which must have room for maxHeaderSize bytes)
// and returns the encoded length.
func putHeader(b []byte, h header) int {
	b0 := byte(h.opcode)
	if h.fin {
		b0 |= 0x80
	}
	if h.rsv1 {
		b0 |= 0x40
	}
	if h.rsv2 {
		b0 |= 0x20
	}
	if h.rsv3 {
		b0 |= 0x10
	}
	b[0] = b0
	var m byte
	if h.masked {
		m = 0x80
	}
	n := 2
	switch {
	case h.length <= 125:
		b[1] = m | byte(h.length)
	case h.length <= 0xFFFF:
		b[1] = m | 126
		binary.BigEndian.PutUint16(b[2:], uint16(h.length))
		n = 4
	default:
		b[1] = m | 127
		binary.BigEndian.PutUint64(b[2:], uint64(h.length))
		n = 10
	}
	if h.masked {
		binary.LittleEndian.PutUint32(b[n:], h.key)
		n += 4
	}
	return n
}

// readHeader reads one frame header from br into h. It peeks before it
// consumes, so a read interrupted by a deadline loses no bytes and can be
// retried. It checks only what the header alone can tell (the length form);
// the connection checks the rest in context.
func readHeader(br *bufio.Reader, h *header) error {
	p, err := br.Peek(2)
	if err != nil {
		if err == io.EOF && len(p) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	b0, b1 := p[0], p[1]
	n := 2
	switch b1 & 0x7F {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	if n > 2 {
		if p, err = br.Peek(n); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	h.fin = b0&0x80 != 0
	h.rsv1 = b0&0x40 != 0
	h.rsv2 = b0&0x20 != 0
	h.rsv3 = b0&0x10 != 0
	h.opcode = Opcode(b0 & 0x0F)
	h.masked = b1&0x80 != 0
	q := p[2:n]
	switch l := b1 & 0x7F; l {
	case 126:
		h.length = int64(binary.BigEndian.Uint16(q))
		q = q[2:]
	case 127:
		u := binary.BigEndian.Uint64(q)
		if u>>63 != 0 {
			return errFrameLength
		}
		h.length = int64(u)
		q = q[8:]
	default:
		h.length = int64(l)
	}
	h.key = 0
	if h.masked {
		h.key = binary.LittleEndian.Uint32(q)
	}
	_, err = br.Discard(n)
	return err
}
