package client

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrygw/ferry/tunnel"
)

// Conn is one stream to a service: a net.Conn whose CloseWrite ends the
// sending half (the backend reads end of file while this side can still
// read what it sends back) and whose Read reports ErrTunnelLost when the
// tunnel dies under it (tunnel.Stream).
//
// A Conn keeps its tunnel up after the gateway began to drain it, until
// the Conn ends: Close, or end of file read and CloseWrite called, or a
// reset.
type Conn struct {
	tunnel.Stream
	service string
	end     func()      // told once when the stream has ended
	finSeen func() bool // whether the gateway's FIN came (nil: unknown)
	reset   func()      // resets the stream on both sides (nil: the tunnel cannot)
	bytes   *counters   // the Session's payload counts

	mu      sync.Mutex
	closed  bool
	readEOF bool       // Read returned end of file
	wrote   bool       // CloseWrite was called
	ended   bool       // end was called
	readers int        // Reads in progress; guarded by mu
	idle    *sync.Cond // signalled when readers drops to 0
}

// counters are a Session's payload bytes, read and written by its Conns.
type counters struct{ in, out atomic.Uint64 }

func newConn(st *muxStream, service string, end func(), bytes *counters) *Conn {
	c := &Conn{Stream: tunnel.Stream{Stream: st}, service: service, end: end, bytes: bytes}
	c.idle = sync.NewCond(&c.mu)
	return c
}

// ErrTunnelLost is returned by a stream's Read in place of end of file
// when the tunnel died before the stream ended.
var ErrTunnelLost = tunnel.ErrTunnelLost

// finish calls end once; c.mu is held and is released while end runs.
func (c *Conn) finish() {
	if c.ended {
		return
	}
	c.ended = true
	c.mu.Unlock()
	c.end()
	c.mu.Lock()
}

// Read reads from the stream; after Close, and in a Read that Close
// interrupted, it returns net.ErrClosed.
func (c *Conn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, errClosed
	}
	c.readers++
	c.mu.Unlock()
	n, err := c.Stream.Stream.Read(p)
	fin := c.finSeen != nil && c.finSeen()
	switch {
	case err == io.EOF && !fin && c.Stream.Session().IsClosed():
		err = ErrTunnelLost // the tunnel ended before the stream did
	case err != nil && err != io.EOF && fin && !errors.Is(err, errMuxReset) && !errors.Is(err, errMuxTimeout):
		// yamux's Read also sends a window update, which fails once the
		// tunnel is closing: with the stream's FIN in, what is left to
		// read is whole, so that failure is no reason to stop reading.
		if n == 0 {
			err = io.EOF
		} else {
			err = nil
		}
	}
	c.bytes.in.Add(uint64(n))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.readers--; c.readers == 0 {
		c.idle.Broadcast()
	}
	if c.closed {
		return 0, errClosed
	}
	if err == io.EOF {
		c.readEOF = true
	}
	if (c.readEOF && c.wrote) || errors.Is(err, errMuxReset) {
		c.finish()
	}
	return n, err
}

// Write writes to the stream.
func (c *Conn) Write(p []byte) (int, error) {
	n, err := c.Stream.Write(p)
	c.bytes.out.Add(uint64(n))
	return n, err
}

// CloseWrite ends the sending half: the backend reads end of file.
func (c *Conn) CloseWrite() error {
	err := c.Stream.CloseWrite()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wrote = true
	if c.readEOF {
		c.finish()
	}
	return err
}

// Close closes the stream both ways and makes Reads in progress return.
// It sends FIN, so that what was written reaches the backend, and then
// reads and drops what the backend still sends, for up to closeDrain in
// the background, so that the gateway is not left blocked on a full
// window; the gateway ends the backend connection when it sees FIN and
// the backend stops. A backend that is still sending after closeDrain (a
// download given up on) would keep the gateway and itself blocked on the
// stream for as long as the tunnel lives: the stream is then reset on
// both sides (yamux's RST), which ends the backend connection
// (docs/PROTOCOL.md, "Closing a stream").
func (c *Conn) Close() error {
	if !c.markClosed() {
		return nil
	}
	err := c.Stream.CloseWrite()
	_ = c.SetReadDeadline(time.Unix(1, 0)) // wakes Reads in progress
	go c.endAfterReaders(true)
	return err
}

// Abort ends the stream at once, both ways, with a reset when the tunnel
// can send one (else it is Close): the gateway resets the backend
// connection, what the backend still sends is dropped, and what was
// written and has not reached the backend yet may be lost, as with a TCP
// reset. tunnel.Pipe calls it when a copy failed: ferry forward, when
// the local connection was reset, ends the backend's at once instead of
// draining it.
func (c *Conn) Abort() {
	if c.reset == nil {
		_ = c.Close()
		return
	}
	if !c.markClosed() {
		return
	}
	c.reset()
	_ = c.SetReadDeadline(time.Unix(1, 0)) // wakes Reads in progress
	go c.endAfterReaders(false)
}

// markClosed marks c closed and reports whether it was open.
func (c *Conn) markClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.closed = true
	return true
}

// endAfterReaders ends the stream once the Reads in progress have
// returned, after draining what the backend still sends (for up to
// closeDrain, then resetting the stream) when drain is set and the end of
// file was not read.
func (c *Conn) endAfterReaders(drain bool) {
	c.mu.Lock()
	for c.readers > 0 {
		c.idle.Wait()
	}
	readEOF := c.readEOF
	c.mu.Unlock()
	if drain && !readEOF {
		_ = c.SetReadDeadline(time.Now().Add(closeDrain))
		if _, err := io.Copy(io.Discard, c.Stream.Stream); err != nil && c.reset != nil {
			c.reset()
		}
	}
	c.mu.Lock()
	c.finish()
	c.mu.Unlock()
}

// closeDrain is how long a closed Conn reads and drops what the backend
// still sends before it resets the stream.
var closeDrain = 5 * time.Second

// Service returns the service this stream reaches.
func (c *Conn) Service() string { return c.service }
