//go:build !js

package tunnel

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/ferrygw/ferry/compress"
)

// Read reads the next data message whole, answering pings and handling a
// close frame on the way. It returns a *CloseError once the connection is
// closed.
func (c *Conn) Read(ctx context.Context) (MessageType, []byte, error) {
	return c.ReadAppend(ctx, nil)
}

// ReadAppend reads the next data message and appends its payload to dst,
// so a caller that reuses dst reads without allocating.
func (c *Conn) ReadAppend(ctx context.Context, dst []byte) (MessageType, []byte, error) {
	if err := c.readMu.acquire(ctx, c.closed); err != nil {
		return 0, dst, c.lockErr(err)
	}
	defer c.readMu.release()
	c.rctx = ctx
	stop := c.watchRead(ctx)
	typ, dst, err := c.readMessage(dst)
	return typ, dst, c.ctxErr(ctx, stop, err)
}

func (c *Conn) readMessage(dst []byte) (MessageType, []byte, error) {
	if err := c.beginMessage(); err != nil {
		return 0, dst, err
	}
	typ := c.rmsg
	if c.rcomp {
		for {
			if cap(dst)-len(dst) < 512 {
				grown := make([]byte, len(dst), 2*cap(dst)+4096)
				copy(grown, dst)
				dst = grown
			}
			n, err := c.readInflated(dst[len(dst):cap(dst)])
			dst = dst[:len(dst)+n]
			if err == io.EOF {
				return typ, dst, nil
			}
			if err != nil {
				return 0, dst, err
			}
		}
	}
	for {
		if c.rremain > 0 {
			n := len(dst)
			var err error
			if dst, err = c.appendFrame(dst); err != nil {
				return 0, dst, c.readErr(err)
			}
			if err := c.consumed(dst[n:]); err != nil {
				return 0, dst[:n], err
			}
		}
		if c.rfin {
			if err := c.endMessage(); err != nil {
				return 0, dst, err
			}
			return typ, dst, nil
		}
		if err := c.nextFrame(); err != nil {
			return 0, dst, err
		}
	}
}

// appendFrame appends the rest of the current frame's payload, as it is on
// the wire, to dst. On error dst comes back unchanged.
//
// The buffer grows as bytes arrive, at most 64 KiB ahead of them, so a
// frame header that announces a huge payload and then stalls costs the
// peer as much as it costs us.
func (c *Conn) appendFrame(dst []byte) ([]byte, error) {
	start := len(dst)
	for need := int(c.rremain); need > 0; {
		chunk := min(need, 64<<10)
		n := len(dst)
		if cap(dst)-n < chunk {
			grown := make([]byte, n, max(2*cap(dst), n+chunk))
			copy(grown, dst)
			dst = grown
		}
		dst = dst[:n+chunk]
		if _, err := io.ReadFull(c.br, dst[n:]); err != nil {
			return dst[:start], err
		}
		need -= chunk
	}
	return dst, nil
}

// Reader returns the next data message as a stream. The reader is valid
// until the next call to Reader, Read or ReadAppend, which discard what it
// left unread; it reads with ctx.
func (c *Conn) Reader(ctx context.Context) (MessageType, io.Reader, error) {
	if err := c.readMu.acquire(ctx, c.closed); err != nil {
		return 0, nil, c.lockErr(err)
	}
	defer c.readMu.release()
	c.rctx = ctx
	stop := c.watchRead(ctx)
	err := c.beginMessage()
	if err = c.ctxErr(ctx, stop, err); err != nil {
		return 0, nil, err
	}
	c.msgReader.ctx = ctx
	c.msgReader.done = false
	return c.rmsg, &c.msgReader, nil
}

// messageReader streams one message's payload.
type messageReader struct {
	c    *Conn
	ctx  context.Context
	done bool
}

func (r *messageReader) Read(p []byte) (int, error) {
	c := r.c
	if r.done {
		return 0, io.EOF
	}
	if err := c.readMu.acquire(r.ctx, c.closed); err != nil {
		return 0, c.lockErr(err)
	}
	defer c.readMu.release()
	c.rctx = r.ctx
	stop := c.watchRead(r.ctx)
	n, err := c.readPayload(p)
	if err == io.EOF {
		r.done = true
		if cerr := c.ctxErr(r.ctx, stop, nil); cerr != nil {
			return n, cerr
		}
		return n, io.EOF
	}
	return n, c.ctxErr(r.ctx, stop, err)
}

// readPayload reads message payload into p, crossing frame boundaries. It
// returns io.EOF at the end of the message and never (0, nil) for a
// non-empty p.
func (c *Conn) readPayload(p []byte) (int, error) {
	if c.rmsg == 0 {
		return 0, io.EOF
	}
	if c.rcomp {
		if len(p) == 0 {
			return 0, nil
		}
		return c.readInflated(p)
	}
	for c.rremain == 0 {
		if c.rfin {
			if err := c.endMessage(); err != nil {
				return 0, err
			}
			return 0, io.EOF
		}
		if err := c.nextFrame(); err != nil {
			return 0, err
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	if int64(len(p)) > c.rremain {
		p = p[:c.rremain]
	}
	n, err := c.br.Read(p)
	if n > 0 {
		if cerr := c.consumed(p[:n]); cerr != nil {
			return 0, cerr
		}
	}
	if err != nil {
		return n, c.readErr(err)
	}
	if c.rremain == 0 && c.rfin {
		if err := c.endMessage(); err != nil {
			return n, err
		}
		return n, io.EOF
	}
	return n, nil
}

// consumed unmasks and validates payload bytes just read from the frame.
func (c *Conn) consumed(p []byte) error {
	c.rremain -= int64(len(p))
	if c.rh.masked {
		c.rkey = mask(p, c.rkey)
	}
	if c.rmsg == OpText && !c.rutf8.write(p) {
		return c.fail(StatusInvalidPayload, "text message is not valid UTF-8")
	}
	return nil
}

// beginMessage skips what is left of the previous message and reads frames
// up to the first frame of the next data message.
func (c *Conn) beginMessage() error {
	if err := c.getErr(); err != nil {
		return err
	}
	if c.rmsg != 0 {
		if err := c.skipMessage(); err != nil {
			return err
		}
	}
	if err := c.nextFrame(); err != nil {
		return err
	}
	if c.rcomp {
		return c.loadCompressed()
	}
	return nil
}

// zbufPool holds buffers for compressed payloads.
var zbufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// deflateTail is appended to a compressed message before inflating it
// (RFC 7692 section 7.2.2).
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff}

// loadCompressed reads every frame of a compressed message (answering
// control frames in between), appends the deflate tail and starts
// inflating. The wire size is bounded by the read limit in nextFrame, the
// inflated size by the decompressor.
func (c *Conn) loadCompressed() error {
	c.zbuf = zbufPool.Get().(*[]byte)
	buf := (*c.zbuf)[:0]
	for {
		n := len(buf)
		var err error
		if buf, err = c.appendFrame(buf); err != nil {
			*c.zbuf = buf[:0]
			return c.fatalReadErr(err)
		}
		if c.rh.masked {
			c.rkey = mask(buf[n:], c.rkey)
		}
		c.rremain = 0
		if c.rfin {
			break
		}
		if err := c.nextFrame(); err != nil {
			*c.zbuf = buf[:0]
			return c.fatalReadErr(err)
		}
	}
	buf = append(buf, deflateTail...)
	*c.zbuf = buf
	if err := c.decomp.Begin(buf, c.readLimit.Load()); err != nil {
		return c.fail(StatusInvalidPayload, "corrupt compressed message: "+err.Error())
	}
	return nil
}

// readInflated reads inflated bytes of the current compressed message.
func (c *Conn) readInflated(p []byte) (int, error) {
	n, err := c.decomp.Read(p)
	if n > 0 && c.rmsg == OpText && !c.rutf8.write(p[:n]) {
		return 0, c.fail(StatusInvalidPayload, "text message is not valid UTF-8")
	}
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF:
		if eerr := c.endMessage(); eerr != nil {
			return n, eerr
		}
		return n, io.EOF
	case errors.Is(err, compress.ErrTooBig):
		return 0, c.fail(StatusMessageTooBig, fmt.Sprintf("message inflates past the %d-byte limit", c.readLimit.Load()))
	default:
		return 0, c.fail(StatusInvalidPayload, "corrupt compressed message")
	}
}

// skipMessage discards the rest of the message being read.
func (c *Conn) skipMessage() error {
	var buf [512]byte
	for c.rmsg != 0 {
		if _, err := c.readPayload(buf[:]); err != nil && err != io.EOF {
			return err
		}
	}
	return nil
}

// discardMessage reads and drops one whole message (used while closing).
func (c *Conn) discardMessage() error {
	if err := c.beginMessage(); err != nil {
		return err
	}
	return c.skipMessage()
}

func (c *Conn) endMessage() error {
	if c.rmsg == OpText && !c.rutf8.complete() {
		return c.fail(StatusInvalidPayload, "text message ends inside a UTF-8 sequence")
	}
	c.rmsg = 0
	if c.rcomp {
		c.rcomp = false
		c.decomp.End()
		if cap(*c.zbuf) <= 1<<20 {
			*c.zbuf = (*c.zbuf)[:0]
			zbufPool.Put(c.zbuf)
		}
		c.zbuf = nil
	}
	return nil
}

// nextFrame reads frame headers, handling control frames, until a data frame
// that belongs in the current state: a new message's first frame between
// messages, a continuation inside one. It checks every rule of RFC 6455
// section 5 that a header can break.
func (c *Conn) nextFrame() error {
	for {
		h := &c.rh
		if err := readHeader(c.br, h); err != nil {
			if err == errFrameLength {
				return c.fail(StatusProtocolError, "frame length has the most significant bit set")
			}
			return c.readErr(err)
		}
		c.wireIn.Add(int64(headerSize(h)) + h.length)
		if h.length > int64(c.br.Size()) && c.br.Size() < bulkReadBuf && !h.opcode.isControl() {
			c.growReadBuf()
		}
		if h.rsv2 || h.rsv3 {
			return c.fail(StatusProtocolError, "reserved bits RSV2/RSV3 set; no extension uses them")
		}
		if h.rsv1 {
			switch {
			case c.decomp == nil:
				return c.fail(StatusProtocolError, "reserved bit RSV1 set without a negotiated extension")
			case h.opcode.isControl():
				return c.fail(StatusProtocolError, "RSV1 set on a control frame")
			case h.opcode == OpContinuation:
				return c.fail(StatusProtocolError, "RSV1 set on a continuation frame")
			}
		}
		if h.opcode.isReserved() {
			return c.fail(StatusProtocolError, fmt.Sprintf("reserved opcode %#x", byte(h.opcode)))
		}
		if h.masked == c.client {
			if c.client {
				return c.fail(StatusProtocolError, "server frame is masked")
			}
			return c.fail(StatusProtocolError, "client frame is not masked")
		}
		if h.opcode.isControl() {
			if !h.fin {
				return c.fail(StatusProtocolError, "fragmented control frame")
			}
			if h.length > maxControlPayload {
				return c.fail(StatusProtocolError, "control frame payload over 125 bytes")
			}
			if err := c.handleControl(); err != nil {
				return err
			}
			continue
		}
		if h.opcode == OpContinuation {
			if c.rmsg == 0 {
				return c.fail(StatusProtocolError, "continuation frame without a message to continue")
			}
		} else {
			if c.rmsg != 0 {
				return c.fail(StatusProtocolError, "new data frame inside a fragmented message")
			}
			c.rmsg = h.opcode
			c.rmsgLen = 0
			c.rutf8.reset()
			c.rcomp = h.rsv1
		}
		c.rmsgLen += h.length
		if c.rmsgLen > c.readLimit.Load() || c.rmsgLen < 0 {
			return c.fail(StatusMessageTooBig, fmt.Sprintf("message over the %d-byte limit", c.readLimit.Load()))
		}
		c.rremain = h.length
		c.rkey = h.key
		c.rfin = h.fin
		return nil
	}
}

// handleControl reads the payload of the control frame whose header is in
// c.rh and acts on it: a ping is answered, a pong wakes Ping, a close frame
// runs our side of the closing handshake.
func (c *Conn) handleControl() error {
	h := &c.rh
	p := c.rctrl[:h.length]
	if _, err := io.ReadFull(c.br, p); err != nil {
		return c.fatalReadErr(err)
	}
	if h.masked {
		mask(p, h.key)
	}
	switch h.opcode {
	case OpPing:
		if err := c.writePong(p); err != nil {
			return err
		}
	case OpPong:
		c.gotPong(p)
	case OpClose:
		code, reason, err := parseClosePayload(p)
		if err != nil {
			var ce *CloseError
			errors.As(err, &ce)
			return c.fail(ce.Code, ce.Reason)
		}
		return c.peerClosed(code, reason)
	}
	return nil
}

// writePong answers a ping. The pong waits for the frame lock, which a
// data frame stuck on a peer that does not read may hold, for at most
// closeTimeout and never past the context of the read that found the ping:
// when the reader gives up first, its context's error is returned (and,
// as for any read that its context ended, the connection is closed). A pong that cannot go out within closeTimeout means our writes
// are stuck, and the connection is closed (1006, we cannot send a close
// frame past the stuck write).
func (c *Conn) writePong(p []byte) error {
	rctx := c.rctx
	if rctx == nil {
		rctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(rctx, closeTimeout)
	defer cancel()
	err := c.writeControl(ctx, OpPong, p)
	switch {
	case err == nil || errors.Is(err, errCloseSent):
		return nil
	case rctx.Err() != nil:
		return rctx.Err()
	case errors.Is(err, context.DeadlineExceeded):
		c.closeTCP(&CloseError{Code: StatusAbnormalClosure, Reason: fmt.Sprintf("a pong could not be sent within %v", closeTimeout), Local: true})
		return c.getErr()
	}
	return c.readErr(err)
}

// peerClosed answers the peer's close frame by echoing its code, then ends
// TCP: the server at once, a client after waiting briefly for the server to
// do it (section 7.1.1).
func (c *Conn) peerClosed(code StatusCode, reason string) error {
	cerr := &CloseError{Code: code, Reason: reason}
	c.closeRcvdOnce.Do(func() { close(c.closeRcvd) })
	echo := code
	_ = c.writeClose(echo, "")
	if c.client {
		_ = c.nc.SetReadDeadline(time.Now().Add(time.Second))
		_, _ = io.Copy(io.Discard, c.br)
	}
	c.closeTCP(cerr)
	return c.getErr()
}

// fail fails the connection (section 7.1.7): it sends a close frame with
// code and reason, stops writing, drains briefly so the peer can read the
// close frame before TCP ends, and closes. It returns the *CloseError that
// every later call gets.
func (c *Conn) fail(code StatusCode, reason string) error {
	cerr := &CloseError{Code: code, Reason: reason, Local: true}
	c.setErr(cerr)
	_ = c.writeClose(code, reason)
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.Copy(io.Discard, io.LimitReader(c.br, 1<<20))
	c.closeTCP(cerr)
	return c.getErr()
}

// readErr turns an error from the TCP connection into the Conn's error: a
// deadline stays a deadline (the read can be retried); anything else ends
// the connection, as 1006 when no close frame came first.
func (c *Conn) readErr(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if e := c.getErr(); e != nil {
			return e
		}
		return err
	}
	if e := c.getErr(); e != nil {
		return e
	}
	var reason string
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		reason = "connection ended without a close frame"
	case errors.Is(err, net.ErrClosed):
		reason = "connection closed"
	default:
		reason = err.Error()
	}
	c.closeTCP(&CloseError{Code: StatusAbnormalClosure, Reason: reason, Local: true})
	return c.getErr()
}

// fatalReadErr is readErr for a read whose partial progress cannot be kept
// (a control payload, a compressed message being gathered): a deadline
// ends the connection too, since the stream position is lost.
func (c *Conn) fatalReadErr(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) && c.getErr() == nil {
		c.closeTCP(&CloseError{Code: StatusAbnormalClosure, Reason: "read deadline inside a frame that cannot be resumed", Local: true})
		return c.getErr()
	}
	return c.readErr(err)
}

// lockErr maps a failure to take a lock to the Conn's error.
func (c *Conn) lockErr(err error) error {
	if errors.Is(err, ErrClosed) {
		if e := c.getErr(); e != nil {
			return e
		}
	}
	return err
}

// bulkReadBuf is the size of the read buffer of a Conn that has carried a
// data frame larger than its handshake's 4 KiB one. A frame header is read
// by filling the buffer, so one read call then takes the header and up to
// this much payload with it: a yamux frame of a busy stream (tens of KiB)
// costs one read rather than a 4 KiB fill and a second read for the rest
// (larger payloads are still read straight into the caller's buffer).
// Idle tunnels, which never carry a large frame, keep the small buffer.
const bulkReadBuf = 32 << 10

// growReadBuf reads on through a bulkReadBuf buffer; the bytes the old
// one holds are read through it first. Called with the read lock held.
func (c *Conn) growReadBuf() {
	if c.br.Buffered() == 0 {
		c.br = bufio.NewReaderSize(c.nc, bulkReadBuf)
		return
	}
	c.br = bufio.NewReaderSize(c.br, bulkReadBuf)
}
