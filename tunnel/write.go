//go:build !js

package tunnel

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
)

// errCloseSent is returned for a write after our close frame went out.
var errCloseSent = errors.New("tunnel: close frame already sent")

// writeChunk is the size of the pooled buffer that small frames are
// assembled in and that a client masks large payloads through.
const writeChunk = 64<<10 + maxHeaderSize

// copyLimit is the largest server frame assembled by copying; larger ones
// go out with their header in one writev, without a copy.
const copyLimit = 8 << 10

var writeBufPool = sync.Pool{New: func() any { b := make([]byte, writeChunk); return &b }}

// Write sends p as one message of type typ (MessageText or MessageBinary) in
// one frame. Text must be UTF-8; Write does not check (the peer will).
func (c *Conn) Write(ctx context.Context, typ MessageType, p []byte) error {
	if typ != MessageText && typ != MessageBinary {
		return fmt.Errorf("tunnel: write of %v: not a data message type", typ)
	}
	return c.writeMessage(ctx, typ, p, nil)
}

// writeParts sends p followed by q as one binary message without joining
// them first (the yamux byte stream's header and body).
func (c *Conn) writeParts(ctx context.Context, p, q []byte) error {
	return c.writeMessage(ctx, MessageBinary, p, q)
}

// writeMessage sends p followed by q (q may be nil) as one message in one
// frame, compressed when that pays: the threshold applies to the whole
// message, the entropy estimate to its longer part (a yamux body rather
// than its 12-byte header).
//
// A compressed message takes the frame lock before it is compressed. With
// context takeover, compressing advances the history that the peer's
// decompressor must follow, so once it ran the message must reach the
// wire: a context that ends while another frame (a control frame, a write
// stuck on a peer that does not read) holds the lock then fails the call
// before the compressor is touched, and the connection stays usable. What
// can still fail after compressing, a write, closes the connection (with
// a *CloseError saying why), as any failed write does. The price is that
// control frames wait for the compression of the message ahead of them as
// well as for its write.
func (c *Conn) writeMessage(ctx context.Context, typ MessageType, p, q []byte) error {
	if err := c.msgMu.acquire(ctx, c.closed); err != nil {
		return c.lockErr(err)
	}
	defer c.msgMu.release()
	sample := p
	if len(q) > len(p) {
		sample = q
	}
	if c.comp != nil && c.comp.Worth(len(p)+len(q), sample) {
		if err := c.lockFrame(ctx); err != nil {
			return err
		}
		z, err := c.comp.Compress(p, q)
		if err == nil {
			err = c.writeFrameHeld(ctx, true, typ, true, z, nil)
		} else {
			err = c.compressFailed(err)
		}
		c.frameMu.release()
		c.comp.Done()
		c.armIdle()
		return err
	}
	return c.writeFrame(ctx, true, typ, false, p, q)
}

// compressFailed closes the connection after the compressor failed while
// its history may have moved: the peer could not follow what comes next.
// Called with the frame lock held, so no close frame can be sent.
func (c *Conn) compressFailed(err error) error {
	c.closeTCP(&CloseError{Code: StatusAbnormalClosure, Reason: "compressor failed: " + err.Error(), Local: true})
	return fmt.Errorf("tunnel: compress: %w", err)
}

// compressIdle is how long a sender with context takeover keeps its flate
// state after its last compressed message.
const compressIdle = 500 * time.Millisecond

// armIdle schedules the release of the compressor's flate state once the
// connection stops sending. Called under msgMu.
func (c *Conn) armIdle() {
	if c.idleArmed || !c.comp.Held() {
		return
	}
	c.idleArmed = true
	c.idleMu.Lock()
	defer c.idleMu.Unlock()
	if c.idleTimer == nil {
		c.idleTimer = time.AfterFunc(compressIdle, c.releaseIdle)
		return
	}
	c.idleTimer.Reset(compressIdle)
}

// releaseIdle runs on the idle timer's goroutine. It reads idleTimer under
// idleMu when it could not take msgMu, which is what orders it after the
// assignment in armIdle.
func (c *Conn) releaseIdle() {
	if !c.msgMu.tryAcquire() {
		c.idleMu.Lock()
		c.idleTimer.Reset(compressIdle) // a message is being written
		c.idleMu.Unlock()
		return
	}
	defer c.msgMu.release()
	select {
	case <-c.closed:
		c.idleArmed = false
		return
	default:
	}
	if c.comp.ReleaseIfIdle() {
		c.idleTimer.Reset(compressIdle)
		return
	}
	c.idleArmed = false
}

// Writer returns a writer for one message of type typ, sent as one frame
// per Write call (zero-length writes are skipped) and ended by Close, which
// sends the final frame. Other writers wait until it is closed; control
// frames may go out in between. Every Write and Close uses ctx.
//
// A message cannot be resumed: when a Write or Close fails after part of
// the message reached the wire or the compressor's history, the peer could
// not follow the rest of the stream, so the connection is closed. A writer
// that fails before any of that leaves the connection usable; Close must
// still be called to let the next writer go.
func (c *Conn) Writer(ctx context.Context, typ MessageType) (*MessageWriter, error) {
	if typ != MessageText && typ != MessageBinary {
		return nil, fmt.Errorf("tunnel: writer of %v: not a data message type", typ)
	}
	if err := c.msgMu.acquire(ctx, c.closed); err != nil {
		return nil, c.lockErr(err)
	}
	w := &c.writer
	w.ctx = ctx
	w.op = typ
	w.open = true
	w.started = false
	w.compress = false
	w.dirty = false
	return w, nil
}

// MessageWriter streams one message as fragments; see Conn.Writer.
type MessageWriter = messageWriter

type messageWriter struct {
	c        *Conn
	ctx      context.Context
	op       Opcode // opcode of the next frame: the type, then continuation
	open     bool
	started  bool // the first Write decided on compression
	compress bool
	dirty    bool // the compressor took bytes of this message
}

// Write sends p as one fragment of the message. A compressed message takes
// the frame lock before compressing p, as Conn.Write does.
func (w *messageWriter) Write(p []byte) (int, error) {
	if !w.open {
		return 0, errors.New("tunnel: write to a closed message writer")
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := len(p)
	c := w.c
	if !w.started {
		// The first piece decides: a streamed message is compressed when
		// its first piece would be.
		w.started = true
		if c.comp != nil && c.comp.Worth(len(p), p) {
			w.compress = true
			c.comp.Begin()
		}
	}
	if !w.compress {
		if err := c.writeFrame(w.ctx, false, w.op, false, p, nil); err != nil {
			return 0, w.abandon(err)
		}
		w.op = OpContinuation
		return n, nil
	}
	if err := c.lockFrame(w.ctx); err != nil {
		return 0, w.abandon(err)
	}
	defer c.frameMu.release()
	w.dirty = true
	z, err := c.comp.Write(p)
	if err != nil {
		return 0, c.compressFailed(err)
	}
	if len(z) == 0 {
		return n, nil // the compressor holds it for now
	}
	if err := c.writeFrameHeld(w.ctx, false, w.op, w.op != OpContinuation, z, nil); err != nil {
		return 0, err
	}
	w.op = OpContinuation
	return n, nil
}

// Close sends the message's final frame and lets the next writer go.
func (w *messageWriter) Close() error {
	if !w.open {
		return errors.New("tunnel: message writer closed twice")
	}
	w.open = false
	c := w.c
	defer c.msgMu.release()
	if !w.compress {
		if err := c.writeFrame(w.ctx, true, w.op, false, nil, nil); err != nil {
			return w.abandon(err)
		}
		return nil
	}
	defer func() { c.comp.Done(); c.armIdle() }()
	if err := c.lockFrame(w.ctx); err != nil {
		return w.abandon(err)
	}
	defer c.frameMu.release()
	z, err := c.comp.End()
	if err != nil {
		return c.compressFailed(err)
	}
	return c.writeFrameHeld(w.ctx, true, w.op, w.op != OpContinuation, z, nil)
}

// abandon handles a Write or Close that failed to send a frame (the lock
// was not had, or the write failed, which closed the connection already).
// When part of the message is on the wire or in the compressor's history,
// the connection is closed: the next message would be read as this one's
// continuation, or inflated against a history the peer never saw. After
// our close frame the closing handshake goes on instead.
func (w *messageWriter) abandon(err error) error {
	if (w.op != OpContinuation && !w.dirty) || errors.Is(err, errCloseSent) {
		return err
	}
	w.c.closeTCP(&CloseError{Code: StatusAbnormalClosure, Reason: "message left unfinished: " + err.Error(), Local: true})
	return err
}

// writeFrame writes one data frame. Small frames are assembled with their
// header in a pooled buffer and written with one call; a server's large
// payload goes out with its header in one writev; a client masks through the
// pooled buffer without touching p.
func (c *Conn) writeFrame(ctx context.Context, fin bool, op Opcode, rsv1 bool, p, q []byte) error {
	if err := c.lockFrame(ctx); err != nil {
		return err
	}
	defer c.frameMu.release()
	return c.writeFrameHeld(ctx, fin, op, rsv1, p, q)
}

// lockFrame takes the frame lock for a data frame, giving up when ctx ends
// or the connection closes. Once our close frame is out, or the connection
// has ended, it returns the connection's error (errCloseSent while the
// closing handshake runs) without the lock.
func (c *Conn) lockFrame(ctx context.Context) error {
	if err := c.frameMu.acquire(ctx, c.closed); err != nil {
		return c.lockErr(err)
	}
	if !c.closeSent && !isDone(c.closed) {
		return nil
	}
	c.frameMu.release()
	if err := c.getErr(); err != nil {
		return err
	}
	if c.closeSent {
		return errCloseSent
	}
	return ErrClosed
}

// isDone reports whether ch is closed, without blocking.
func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// writeFrameHeld writes one data frame under the frame lock; a failed write
// closes the connection, whose stream position is lost.
func (c *Conn) writeFrameHeld(ctx context.Context, fin bool, op Opcode, rsv1 bool, p, q []byte) error {
	stop := c.watchWrite(ctx)
	err := c.writeFrameLocked(fin, op, rsv1, p, q)
	if err != nil {
		err = c.ctxErr(ctx, stop, err)
		c.closeTCP(&CloseError{Code: StatusAbnormalClosure, Reason: "write failed: " + err.Error(), Local: true})
		return err
	}
	if stop != nil {
		stop()
	}
	return nil
}

// writeFrameLocked writes one frame whose payload is p followed by q (q
// may be nil), so that a caller with a payload in two pieces needs no copy
// to join them.
func (c *Conn) writeFrameLocked(fin bool, op Opcode, rsv1 bool, p, q []byte) error {
	h := header{fin: fin, rsv1: rsv1, opcode: op, length: int64(len(p) + len(q)), masked: c.client}
	if c.client {
		h.key = uint32(c.rng.Uint64())
	}
	hn := putHeader(c.whdr[:], h)
	if !c.client && int64(hn)+h.length > copyLimit {
		c.wvArr[0], c.wvArr[1], c.wvArr[2] = c.whdr[:hn], p, q
		c.wv = c.wvArr[:]
		n, err := c.wv.WriteTo(c.nc)
		c.wireOut.Add(n)
		c.wvArr[1], c.wvArr[2] = nil, nil
		return err
	}
	bp := writeBufPool.Get().(*[]byte)
	defer writeBufPool.Put(bp)
	buf := *bp
	n := copy(buf, c.whdr[:hn])
	key := h.key
	for {
		m := copy(buf[n:], p)
		p = p[m:]
		if len(p) == 0 && len(q) > 0 {
			k := copy(buf[n+m:], q)
			q = q[k:]
			m += k
		}
		if c.client {
			key = mask(buf[n:n+m], key)
		}
		w, err := c.nc.Write(buf[:n+m])
		c.wireOut.Add(int64(w))
		if err != nil {
			return err
		}
		if len(p) == 0 && len(q) == 0 {
			return nil
		}
		n = 0
	}
}

// writeControl sends one control frame (payload at most 125 bytes).
func (c *Conn) writeControl(ctx context.Context, op Opcode, p []byte) error {
	if len(p) > maxControlPayload {
		return fmt.Errorf("tunnel: %v payload of %d bytes is over 125", op, len(p))
	}
	if err := c.frameMu.acquire(ctx, c.closed); err != nil {
		return c.lockErr(err)
	}
	defer c.frameMu.release()
	if c.closeSent {
		return errCloseSent
	}
	if op == OpClose {
		c.closeSent = true
	}
	stop := c.watchWrite(ctx)
	h := header{fin: true, opcode: op, length: int64(len(p)), masked: c.client}
	if c.client {
		h.key = uint32(c.rng.Uint64())
	}
	n := putHeader(c.wctrl[:], h)
	m := copy(c.wctrl[n:], p)
	if c.client {
		mask(c.wctrl[n:n+m], h.key)
	}
	w, err := c.nc.Write(c.wctrl[:n+m])
	c.wireOut.Add(int64(w))
	if err != nil {
		err = c.ctxErr(ctx, stop, err)
		c.closeTCP(&CloseError{Code: StatusAbnormalClosure, Reason: "write failed: " + err.Error(), Local: true})
		return err
	}
	if stop != nil {
		stop()
	}
	return nil
}

// writeClose sends our close frame once, giving up after closeTimeout.
func (c *Conn) writeClose(code StatusCode, reason string) error {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	var p [maxControlPayload]byte
	n := putClosePayload(p[:], code, reason)
	return c.writeControl(ctx, OpClose, p[:n])
}

// Ping sends a ping and waits for the matching pong. A reader must be
// running for the pong to be seen.
func (c *Conn) Ping(ctx context.Context) error {
	id := c.pingSeq.Add(1)
	var p [8]byte
	binary.BigEndian.PutUint64(p[:], id)
	ch := make(chan struct{})
	c.pingMu.Lock()
	select {
	case <-c.closed:
		c.pingMu.Unlock()
		return c.lockErr(ErrClosed)
	default:
	}
	if c.pings == nil {
		c.pings = make(map[uint64]chan struct{})
	}
	c.pings[id] = ch
	c.pingMu.Unlock()
	defer func() {
		c.pingMu.Lock()
		delete(c.pings, id)
		c.pingMu.Unlock()
	}()
	if err := c.writeControl(ctx, OpPing, p[:]); err != nil {
		return err
	}
	select {
	case <-ch:
		select {
		case <-c.closed:
			return c.lockErr(ErrClosed)
		default:
			return nil
		}
	case <-ctx.Done():
		return fmt.Errorf("tunnel: ping: %w", ctx.Err())
	}
}

// gotPong wakes the Ping waiting for this payload; unsolicited pongs are
// ignored (section 5.5.3).
func (c *Conn) gotPong(p []byte) {
	if len(p) != 8 {
		return
	}
	id := binary.BigEndian.Uint64(p)
	c.pingMu.Lock()
	if ch, ok := c.pings[id]; ok {
		close(ch)
		delete(c.pings, id)
	}
	c.pingMu.Unlock()
}
