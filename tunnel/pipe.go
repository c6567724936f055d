package tunnel

import (
	"errors"
	"io"
	"net"
)

// halfCloser is a connection whose sending half can be closed alone.
type halfCloser interface {
	CloseWrite() error
}

// Pipe copies bytes both ways between a and b until both directions end,
// passing each end of file on as a half-close, and returns the first error
// that was not a normal end. Buffers are 32 KiB per direction.
func Pipe(a, b net.Conn) error {
	errc := make(chan error, 2)
	copyHalf := func(dst, src net.Conn) {
		_, err := io.Copy(dst, src)
		if hc, ok := dst.(halfCloser); ok && err == nil {
			_ = hc.CloseWrite()
		} else {
			// No half-close, or the copy failed: end both directions.
			_ = dst.Close()
			_ = src.Close()
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
