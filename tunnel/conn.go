//go:build !js

package tunnel

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrygw/ferry/compress"
)

// DefaultReadLimit is the largest message a Conn accepts when no limit is
// set: 16 MiB, the gateway's default max_message_size.
const DefaultReadLimit = 16 << 20

// closeTimeout bounds each step of the closing handshake: sending our close
// frame, waiting for the peer's, and waiting for the server to end TCP.
const closeTimeout = 5 * time.Second

// ErrClosed is returned by operations on a Conn that this side has closed.
var ErrClosed = errors.New("tunnel: use of closed websocket")

// Conn is one WebSocket connection, from Accept or Dial.
//
// One goroutine may read at a time (Read, ReadAppend, Reader and the reader
// it returns). Writes (Write, Writer, Ping, Close) are safe from any number
// of goroutines: messages are serialised whole, and control frames may go
// out between the fragments of a message being streamed. Ping and the
// closing handshake need a reader to be running to see the peer's answer.
type Conn struct {
	nc          net.Conn
	br          *bufio.Reader
	client      bool
	subprotocol string
	readLimit   atomic.Int64

	// Reading; guarded by readMu.
	readMu    lock
	rh        header
	rremain   int64  // payload bytes left in the current frame
	rkey      uint32 // masking key at the current payload position
	rfin      bool   // the current frame ends its message
	rmsg      Opcode // type of the message being read, 0 between messages
	rmsgLen   int64  // payload bytes of the message read so far
	rutf8     utf8Validator
	rctrl     [maxControlPayload]byte
	rctx      context.Context // the context of the read in progress, under readMu
	msgReader messageReader
	rcomp     bool    // the message being read is compressed
	zbuf      *[]byte // its compressed payload, pooled

	// Compression (RFC 7692), nil when not negotiated. decomp is guarded
	// by readMu, comp by msgMu.
	params    compress.Params
	comp      *compress.Compressor
	decomp    *compress.Decompressor
	idleMu    sync.Mutex  // orders idleTimer's creation before the timer's own Reset
	idleTimer *time.Timer // gives comp's flate state back when idle
	idleArmed bool        // guarded by msgMu

	// Writing. msgMu is held for a whole data message, frameMu for a frame.
	msgMu   lock
	frameMu lock
	whdr    [maxHeaderSize]byte
	wv      net.Buffers
	wvArr   [3][]byte
	rng     *mrand.ChaCha8 // masking keys (client); guarded by frameMu
	writer  messageWriter
	wctrl   [maxHeaderSize + maxControlPayload]byte
	pingSeq atomic.Uint64
	pingMu  sync.Mutex
	pings   map[uint64]chan struct{}
	// closeSent is set, under frameMu, once our close frame is on the wire.
	closeSent bool

	// Bytes on the wire, frame headers included: read counts each frame
	// as its header is parsed, written each write to the connection.
	wireIn, wireOut atomic.Int64

	closeRcvd     chan struct{} // closed when the peer's close frame is read
	closeRcvdOnce sync.Once
	closed        chan struct{} // closed when the TCP connection is closed
	closeOnce     sync.Once
	errMu         sync.Mutex
	err           error // why the connection ended; set once
}

func newConn(nc net.Conn, br *bufio.Reader, client bool, subprotocol string, readLimit int64) *Conn {
	if readLimit <= 0 {
		readLimit = DefaultReadLimit
	}
	if br == nil {
		br = bufio.NewReaderSize(nc, 4096)
	}
	c := &Conn{
		nc:          nc,
		br:          br,
		client:      client,
		subprotocol: subprotocol,
		readMu:      newLock(),
		msgMu:       newLock(),
		frameMu:     newLock(),
		closeRcvd:   make(chan struct{}),
		closed:      make(chan struct{}),
	}
	c.readLimit.Store(readLimit)
	c.msgReader.c = c
	c.writer.c = c
	if client {
		var seed [32]byte
		_, _ = rand.Read(seed[:]) // never fails (crypto/rand)
		c.rng = mrand.NewChaCha8(seed)
	}
	return c
}

// enableCompression sets up permessage-deflate with the negotiated
// parameters, each side compressing with its own window and takeover.
func (c *Conn) enableCompression(p compress.Params, opts compress.Options) {
	c.params = p
	if c.client {
		c.comp = compress.NewCompressor(opts, p.ClientMaxWindowBits, !p.ClientNoContextTakeover)
		c.decomp = compress.NewDecompressor(!p.ServerNoContextTakeover)
	} else {
		c.comp = compress.NewCompressor(opts, p.ServerMaxWindowBits, !p.ServerNoContextTakeover)
		c.decomp = compress.NewDecompressor(!p.ClientNoContextTakeover)
	}
}

// WireBytes returns the bytes of WebSocket frames read and written so far,
// headers included and after compression: a frame counts as read once its
// header is.
func (c *Conn) WireBytes() (in, out int64) { return c.wireIn.Load(), c.wireOut.Load() }

// Compression returns the negotiated permessage-deflate parameters, and
// false when the extension is not in use.
func (c *Conn) Compression() (compress.Params, bool) { return c.params, c.comp != nil }

// Subprotocol returns the subprotocol the handshake selected, or "".
func (c *Conn) Subprotocol() string { return c.subprotocol }

// LocalAddr returns the local network address.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// RemoteAddr returns the peer's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// SetReadLimit sets the largest message, in bytes, that the Conn accepts; a
// larger one fails the connection with 1009. Zero or less restores the
// default.
func (c *Conn) SetReadLimit(n int64) {
	if n <= 0 {
		n = DefaultReadLimit
	}
	c.readLimit.Store(n)
}

// lock is a mutex whose acquisition gives up when a context ends or the
// connection closes, so a stuck peer cannot wedge a caller.
type lock chan struct{}

func newLock() lock { return make(lock, 1) }

func (l lock) acquire(ctx context.Context, closed <-chan struct{}) error {
	select {
	case l <- struct{}{}:
		return nil
	default:
	}
	select {
	case l <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-closed:
		return ErrClosed
	}
}

func (l lock) tryAcquire() bool {
	select {
	case l <- struct{}{}:
		return true
	default:
		return false
	}
}

func (l lock) release() { <-l }

// aLongTimeAgo is a deadline in the past that makes blocked I/O return.
var aLongTimeAgo = time.Unix(1, 0)

// watchRead makes a read on the TCP connection return when ctx ends. It
// returns a stop function that reports whether ctx ended the read (then the
// connection is no longer usable), or nil when ctx can never end, which
// costs nothing.
func (c *Conn) watchRead(ctx context.Context) func() bool {
	if ctx.Done() == nil {
		return nil
	}
	return context.AfterFunc(ctx, func() { _ = c.nc.SetReadDeadline(aLongTimeAgo) })
}

// watchWrite is watchRead for writes.
func (c *Conn) watchWrite(ctx context.Context) func() bool {
	if ctx.Done() == nil {
		return nil
	}
	return context.AfterFunc(ctx, func() { _ = c.nc.SetWriteDeadline(aLongTimeAgo) })
}

// ctxErr turns an I/O error caused by ctx ending into ctx's error, closing
// the connection, whose stream position is now lost.
func (c *Conn) ctxErr(ctx context.Context, stop func() bool, err error) error {
	if stop == nil {
		return err
	}
	if !stop() { // the AfterFunc ran: ctx ended the I/O
		cerr := fmt.Errorf("tunnel: %w", ctx.Err())
		c.closeTCP(cerr)
		return cerr
	}
	return err
}

// setErr records why the connection ended, keeping the first reason.
func (c *Conn) setErr(err error) error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if c.err == nil {
		c.err = err
	}
	return c.err
}

func (c *Conn) getErr() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

// closeTCP closes the TCP connection once, recording err as the reason.
func (c *Conn) closeTCP(err error) {
	c.setErr(err)
	c.closeOnce.Do(func() {
		_ = c.nc.Close()
		close(c.closed) // an armed idle timer sees it and stops
		c.pingMu.Lock()
		for id, ch := range c.pings {
			close(ch)
			delete(c.pings, id)
		}
		c.pingMu.Unlock()
	})
}

// CloseNow closes the TCP connection without a closing handshake.
func (c *Conn) CloseNow() error {
	c.closeTCP(&CloseError{Code: StatusAbnormalClosure, Reason: "closed without handshake", Local: true})
	return nil
}

// Close runs the closing handshake of RFC 6455 section 7: it sends a close
// frame with code and reason (cut to fit 123 bytes), waits up to 5 seconds
// for the peer's close frame (reading and discarding data if no other
// goroutine is reading), and closes the TCP connection. The server closes
// TCP first; a client waits briefly for it. Close returns nil when the
// handshake completed.
func (c *Conn) Close(code StatusCode, reason string) error {
	if !validWireCode(code) {
		return fmt.Errorf("tunnel: close code %d may not be sent", uint16(code))
	}
	err := c.writeClose(code, reason)
	if err != nil && !errors.Is(err, errCloseSent) {
		c.closeTCP(&CloseError{Code: code, Reason: reason, Local: true})
		return err
	}
	timer := time.NewTimer(closeTimeout)
	defer timer.Stop()
	if c.readMu.tryAcquire() {
		// Nobody is reading: read until the peer's close frame arrives.
		_ = c.nc.SetReadDeadline(time.Now().Add(closeTimeout))
		for {
			if err := c.discardMessage(); err != nil {
				break
			}
		}
		c.readMu.release()
	} else {
		select {
		case <-c.closeRcvd:
			if c.client {
				// The reader waits for the server to end TCP first.
				select {
				case <-c.closed:
				case <-timer.C:
				}
			}
		case <-c.closed:
		case <-timer.C:
		}
	}
	c.closeTCP(&CloseError{Code: code, Reason: reason, Local: true})
	select {
	case <-c.closeRcvd:
		return nil
	default:
		return fmt.Errorf("tunnel: peer did not answer the close frame")
	}
}

// Done returns a channel closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.closed }

// Err returns why the connection ended, or nil while it is open.
func (c *Conn) Err() error { return c.getErr() }
