//go:build !js

package tunnel

import (
	"context"
	"encoding/binary"
	"net"
)

// yamuxHeaderSize is the size of a yamux frame header (yamux spec.md):
// version, type, flags (2), stream ID (4), length (4).
const yamuxHeaderSize = 12

// yamuxTypeData is the frame type whose length counts body bytes.
const yamuxTypeData = 0

// StreamConn returns the byte stream that a yamux session runs on: reads
// are the payloads of binary messages, in order, as one stream; writes are
// gathered until they hold whole yamux frames and sent as one binary
// message per frame, since yamux writes a frame's header and body with two
// calls. A peer must still treat the payloads as one byte stream.
func (c *Conn) StreamConn() net.Conn {
	return &streamConn{netConn: netConn{c: c}}
}

type streamConn struct {
	netConn
	hdr  [yamuxHeaderSize]byte // a data frame's header, held for its body
	held bool                  // hdr holds a header; need is its body size
	buf  []byte                // a frame being gathered
	need int                   // bytes still missing from the frame
	sent int64                 // messages sent (for tests)
}

// Write gathers yamux frames and sends each whole frame as one message. It
// is called by yamux's single send loop only.
func (s *streamConn) Write(p []byte) (int, error) {
	n := len(p)
	// yamux's send loop writes a data frame's 12-byte header alone, then
	// its body alone: keep the header and send both as one message
	// without copying the body.
	if s.held {
		if len(p) == s.need {
			s.held, s.need = false, 0
			s.sent++
			return n, s.mapErr(s.c.writeParts(context.Background(), s.hdr[:], p))
		}
		// Any other split: gather it the slow way.
		s.held = false
		s.buf = append(s.buf[:0], s.hdr[:]...)
	} else if s.need == 0 && len(s.buf) == 0 && len(p) == yamuxHeaderSize {
		if body := frameBody(p); body > 0 {
			copy(s.hdr[:], p)
			s.held, s.need = true, body
			return n, nil
		}
	}
	for len(p) > 0 {
		if s.need == 0 && len(s.buf) == 0 && len(p) >= yamuxHeaderSize {
			// Fast path: p starts with a frame that is whole in p.
			if size := yamuxHeaderSize + frameBody(p); len(p) >= size {
				if err := s.send(p[:size]); err != nil {
					return 0, err
				}
				p = p[size:]
				continue
			}
		}
		if len(s.buf) < yamuxHeaderSize {
			k := min(yamuxHeaderSize-len(s.buf), len(p))
			s.buf = append(s.buf, p[:k]...)
			p = p[k:]
			if len(s.buf) < yamuxHeaderSize {
				break
			}
			s.need = frameBody(s.buf)
		}
		k := min(s.need, len(p))
		s.buf = append(s.buf, p[:k]...)
		s.need -= k
		p = p[k:]
		if s.need == 0 {
			err := s.send(s.buf)
			s.buf = nil // rare: do not keep a frame-sized buffer per session
			if err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

// frameBody returns the number of body bytes that follow a yamux header.
func frameBody(hdr []byte) int {
	if hdr[1] != yamuxTypeData {
		return 0
	}
	return int(binary.BigEndian.Uint32(hdr[8:12]))
}

func (s *streamConn) send(p []byte) error {
	s.sent++
	return s.mapErr(s.c.writeParts(context.Background(), p, nil))
}
