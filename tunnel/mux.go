//go:build !js

package tunnel

import (
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"
)

// yamuxHeaderSize is the size of a yamux frame header (yamux spec.md):
// version, type, flags (2), stream ID (4), length (4).
const yamuxHeaderSize = 12

// yamux frame types and flags (yamux spec.md).
const (
	yamuxTypeData         = 0 // the length counts body bytes
	yamuxTypeWindowUpdate = 1
	yamuxFlagRST          = 0x8
)

// StreamConn returns the byte stream that a yamux session runs on: reads
// are the payloads of binary messages, in order, as one stream; writes are
// gathered until they hold whole yamux frames and sent as one binary
// message per frame, since yamux writes a frame's header and body with two
// calls. A peer must still treat the payloads as one byte stream.
func (c *Conn) StreamConn() *MuxConn {
	return &streamConn{netConn: netConn{c: c}}
}

// MuxConn is the byte stream of Conn.StreamConn, a net.Conn for yamux with
// two additions: ResetStream and KeepAlive.
type MuxConn = streamConn

type streamConn struct {
	netConn
	hdr  [yamuxHeaderSize]byte // a data frame's header, held for its body
	held bool                  // hdr holds a header; need is its body size
	buf  []byte                // a frame being gathered
	need int                   // bytes still missing from the frame
	sent int64                 // messages sent (for tests)

	// The read side, used by yamux's receive loop only: where the
	// incoming byte stream is in its frames, so that frames of our own
	// (resets) can be slipped in between two of the peer's.
	rhdr  [yamuxHeaderSize]byte
	rhn   int   // bytes of the current frame's header seen
	rbody int64 // body bytes of the current frame still to come

	injMu   sync.Mutex
	inj     []byte      // frames to hand yamux before the next peer frame
	injWait atomic.Bool // inj is not empty

	// Progress, for KeepAlive: reads that returned bytes, messages sent.
	reads, writes atomic.Uint64
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
			err := s.c.writeParts(context.Background(), s.hdr[:], p)
			s.writes.Add(1)
			return n, s.mapErr(err)
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

// Read reads the peer's byte stream for yamux, handing it first, between
// two of the peer's frames, any frame that ResetStream queued.
func (s *streamConn) Read(p []byte) (int, error) {
	if s.injWait.Load() && s.rhn == 0 && s.rbody == 0 {
		s.injMu.Lock()
		n := copy(p, s.inj)
		s.inj = s.inj[n:]
		if len(s.inj) == 0 {
			s.inj = nil
			s.injWait.Store(false)
		}
		s.injMu.Unlock()
		if n > 0 {
			return n, nil
		}
	}
	n, err := s.netConn.Read(p)
	if n > 0 {
		s.reads.Add(1)
		s.track(p[:n])
	}
	return n, err
}

// track follows the peer's frames through bytes just read.
func (s *streamConn) track(p []byte) {
	for len(p) > 0 {
		if s.rbody > 0 {
			k := int(min(int64(len(p)), s.rbody))
			s.rbody -= int64(k)
			p = p[k:]
			continue
		}
		k := copy(s.rhdr[s.rhn:], p)
		s.rhn += k
		p = p[k:]
		if s.rhn == yamuxHeaderSize {
			s.rhn = 0
			s.rbody = int64(frameBody(s.rhdr[:]))
		}
	}
}

// ResetStream resets yamux stream id on both ends, the reset that yamux
// v0.1.2 has no method for: it sends the peer a window update with the
// RST flag (yamux spec.md), and hands the same frame to this side's yamux
// as if the peer had sent it, between two of the peer's frames, so that
// this side forgets the stream and drops whatever it buffered for it.
// The local half takes effect when the next bytes arrive from the peer.
// A stream that is already gone on either side ignores it.
func (s *streamConn) ResetStream(id uint32) error {
	var f [yamuxHeaderSize]byte
	f[1] = yamuxTypeWindowUpdate
	binary.BigEndian.PutUint16(f[2:4], yamuxFlagRST)
	binary.BigEndian.PutUint32(f[4:8], id)
	s.injMu.Lock()
	s.inj = append(s.inj, f[:]...)
	s.injWait.Store(true)
	s.injMu.Unlock()
	// A whole message of its own: yamux's send loop never leaves part of
	// a frame on the wire between two messages.
	return s.mapErr(s.c.writeParts(context.Background(), f[:], nil))
}

// Err returns why the WebSocket ended (a *CloseError), or nil while it
// is open.
func (s *streamConn) Err() error { return s.c.Err() }

// CloseTunnel closes the WebSocket with code and reason, within the close
// timeout; it is how the owner of a yamux session ends it with a code of
// its choosing.
// Close is what yamux calls when its session ends. The close code belongs
// to the owner of the WebSocket, which closes it first with what happened
// (a normal end, a shutdown, a keepalive timeout): when it has, Close only
// lets go. When yamux ended on its own first, the tunnel is closed with
// 1011 "yamux session ended", never with 1000, the code of a normal end.
func (s *streamConn) Close() error {
	s.c.CloseWithin(StatusInternalError, MuxEndedReason, closeTimeout)
	return nil
}

// MuxEndedReason is the close reason of a tunnel whose yamux session ended
// before its owner closed it.
const MuxEndedReason = "yamux session ended"

func (s *streamConn) CloseTunnel(code uint16, reason string) {
	s.c.CloseWithin(StatusCode(code), reason, closeTimeout)
}

func (s *streamConn) send(p []byte) error {
	s.sent++
	err := s.c.writeParts(context.Background(), p, nil)
	s.writes.Add(1)
	return s.mapErr(err)
}
