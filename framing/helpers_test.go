package framing

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/testnet"
)

// transports are the ways tests join two conns: in memory, over loopback
// TCP, and in memory with every Read returning at most one byte (so that
// every message is split everywhere).
var transports = []struct {
	name string
	pair func(testing.TB) (local, peer net.Conn)
}{
	{"pipe", pipePair},
	{"tcp", tcpPair},
	{"bytewise", func(t testing.TB) (net.Conn, net.Conn) {
		a, b := pipePair(t)
		return oneByteConn{a}, b
	}},
}

func pipePair(t testing.TB) (net.Conn, net.Conn) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (net.Conn, net.Conn) { return testnet.TCPPair(t) }

// oneByteConn reads at most one byte at a time.
type oneByteConn struct{ net.Conn }

func (c oneByteConn) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return c.Conn.Read(p)
}

// countConn counts the bytes read from its conn; waitRead waits for a
// count.
type countConn struct {
	net.Conn
	mu      sync.Mutex
	n       int64
	changed chan struct{} // closed and replaced by every Read
}

func newCountConn(c net.Conn) *countConn {
	return &countConn{Conn: c, changed: make(chan struct{})}
}

func (c *countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.n += int64(n)
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	return n, err
}

func (c *countConn) count() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (c *countConn) waitRead(t testing.TB, n int64) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		got, ch := c.n, c.changed
		c.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("read %d bytes, want %d", got, n)
		}
	}
}

// recConn records the Writes to its conn.
type recConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (c *recConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, bytes.Clone(p))
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *recConn) takeWrites() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.writes
	c.writes = nil
	return w
}

// hookConn tells when a Read or a Write begins, on channels of capacity
// 1 (either may be nil).
type hookConn struct {
	net.Conn
	reading, writing chan struct{}
}

func (c *hookConn) Read(p []byte) (int, error) {
	select {
	case c.reading <- struct{}{}:
	default:
	}
	return c.Conn.Read(p)
}

func (c *hookConn) Write(p []byte) (int, error) {
	select {
	case c.writing <- struct{}{}:
	default:
	}
	return c.Conn.Write(p)
}

// fakeConn is a net.Conn without a network: Read takes at most chunk bytes
// at a time from r (io.EOF when it ends), Write discards. Deadlines are
// ignored, which is right for tests whose contexts never end.
type fakeConn struct {
	r     io.Reader
	chunk int
}

func (c *fakeConn) Read(p []byte) (int, error) {
	if c.chunk > 0 && len(p) > c.chunk {
		p = p[:c.chunk]
	}
	return c.r.Read(p)
}

func (c *fakeConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *fakeConn) Close() error                     { return nil }
func (c *fakeConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *fakeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *fakeConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

// loopReader reads data over and over, forever.
type loopReader struct {
	data []byte
	pos  int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := copy(p, r.data[r.pos:])
	r.pos = (r.pos + n) % len(r.data)
	return n, nil
}

// writeAndClose writes data to c, then closes it (unless keepOpen), in a
// goroutine that the returned function waits for.
func writeAndClose(c net.Conn, data []byte, keepOpen bool) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = c.Write(data)
		if !keepOpen {
			c.Close()
		}
	}()
	return func() {
		c.Close()
		<-done
	}
}

// readAll reads c to its end in a goroutine; the returned function waits
// for the end and returns what was read.
func readAll(c net.Conn) (wait func() []byte) {
	ch := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(c)
		ch <- b
	}()
	return func() []byte { return <-ch }
}

// u32 returns the u32be framing of msgs.
func u32(msgs ...string) []byte {
	var b []byte
	for _, m := range msgs {
		b = append(b, byte(len(m)>>24), byte(len(m)>>16), byte(len(m)>>8), byte(len(m)))
		b = append(b, m...)
	}
	return b
}

// isClosedErr reports whether err is that of I/O on a conn closed on this
// side.
func isClosedErr(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe)
}
