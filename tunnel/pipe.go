//go:build !js

package tunnel

import (
	"errors"
	"io"
	"net"
	"sync"
)

const (
	smallCopy = 8 << 10
	largeCopy = 256 << 10
)

var largeCopyPool = sync.Pool{New: func() any { b := make([]byte, largeCopy); return &b }}

// CopyGrant bounds the bulk buffers that Pipe's copies hold at once.
// TryAcquire reports, without blocking, whether one more may be taken;
// Release gives one back.
type CopyGrant interface {
	TryAcquire() bool
	Release()
}

// copyAdaptive copies src to dst until EOF, switching between a small
// buffer and a pooled large one as the traffic asks (and as grant, when
// not nil, allows). It takes the large one when a read fills the small
// one, and gives it back as soon as a read leaves it partly empty: the
// source had no more for now, and the next read, which may wait for as
// long as the stream stays idle, goes to the small buffer. So a stream
// that carried a burst never sits idle holding 256 KiB (it did when the
// burst's last read was 8 KiB or more: scripts/bench-tunnel -tests idle,
// "used, 5 s on", 704 KiB of heap per stream); in bulk, the read after
// each partial one is 8 KiB, and a full one takes the large buffer back.
func copyAdaptive(dst io.Writer, src io.Reader, grant CopyGrant) (int64, error) {
	small := make([]byte, smallCopy)
	buf := small
	var large *[]byte
	giveBack := func() {
		largeCopyPool.Put(large)
		large = nil
		if grant != nil {
			grant.Release()
		}
	}
	defer func() {
		if large != nil {
			giveBack()
		}
	}()
	var total int64
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return total, werr
			}
			total += int64(n)
		}
		if err != nil {
			if err == io.EOF {
				return total, nil
			}
			return total, err
		}
		switch {
		case large == nil && n == len(buf) && (grant == nil || grant.TryAcquire()):
			large = largeCopyPool.Get().(*[]byte)
			buf = *large
		case large != nil && n < len(buf):
			giveBack()
			buf = small
		}
	}
}

// Aborter is a connection that can be ended with a reset, which tells
// its peer the stream was cut off rather than ended: a client's stream
// (client.Conn, an exposer's client.ExposedConn) or the gateway's stream
// toward an exposer, whose far end must not take a cut-off transfer for a
// whole one.
type Aborter interface {
	Abort()
}

// abortOrClose aborts c when it is an Aborter and closes it otherwise.
func abortOrClose(c net.Conn) {
	if a, ok := c.(Aborter); ok {
		a.Abort()
		return
	}
	_ = c.Close()
}

// halfCloser is a connection whose sending half can be closed alone.
type halfCloser interface {
	CloseWrite() error
}

// Pipe copies bytes both ways between a and b until both directions end,
// passing each end of file on as a half-close, and returns the first error
// that was not a normal end. Each direction reads into 8 KiB, and into a
// pooled 256 KiB buffer from a read that fills the small one (a bulk
// transfer) until one leaves the large one partly empty, so idle streams
// stay small, streams that went idle after a burst too, and busy ones
// make few, large writes (scripts/bench-tunnel shows the CPU per MB).
func Pipe(a, b net.Conn) error { return PipeLimited(a, b, nil) }

// PipeLimited is Pipe with the bulk buffers of both directions taken
// from grant, which may be shared by many pipes.
func PipeLimited(a, b net.Conn, grant CopyGrant) error {
	errc := make(chan error, 2)
	copyHalf := func(dst, src net.Conn) {
		_, err := copyAdaptive(dst, src, grant)
		if hc, ok := dst.(halfCloser); ok && err == nil {
			_ = hc.CloseWrite()
		} else if err == nil {
			// No half-close: end both directions.
			_ = dst.Close()
			_ = src.Close()
		} else {
			// The copy failed: end both directions. dst is reset (a TCP
			// peer with SO_LINGER 0, an Aborter by Abort), so it cannot
			// take the bytes it got for a complete message; src too when
			// it is an Aborter, since what it still sends has nowhere to
			// go (a TCP peer's unread bytes make its close a reset).
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			abortOrClose(dst)
			abortOrClose(src)
		}
		errc <- err
	}
	go copyHalf(a, b)
	go copyHalf(b, a)
	err1, err2 := <-errc, <-errc
	for _, err := range []error{err1, err2} {
		if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
			return err
		}
	}
	return nil
}
