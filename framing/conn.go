package framing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// readBufSize is the size of the fixed buffer each connection reads into.
const readBufSize = 4096

// writeCopyMax is the size up to which a Send copies its message (with the
// header or "\n") into a buffer the connection keeps, to write it with one
// Write and no allocation.
const writeCopyMax = 16 << 10

// aLongTimeAgo is a deadline in the past that makes blocked I/O return.
var aLongTimeAgo = time.Unix(1, 0)

// core is what both framings share: the net.Conn and its max, a lock and a
// context watcher per direction, the sticky errors and the close state.
type core struct {
	nc  net.Conn
	max int

	sendLock lock
	wd       watcher
	werr     error // under sendLock: why Sends can no longer write

	recvLock lock
	rd       watcher
	rerr     error // under recvLock: why receiving ended, returned ever after

	closed    chan struct{} // closed by close
	closeOnce sync.Once
	closeErr  error
}

func (c *core) init(nc net.Conn, max int) {
	c.nc = nc
	c.max = max
	c.sendLock = make(lock, 1)
	c.recvLock = make(lock, 1)
	c.wd.init(nc.SetWriteDeadline)
	c.rd.init(nc.SetReadDeadline)
	c.closed = make(chan struct{})
}

// lock is a mutex whose waiters give up when their context ends or the
// connection is closed.
type lock chan struct{}

func (l lock) acquire(ctx context.Context, closed <-chan struct{}, op string) error {
	select {
	case l <- struct{}{}:
		return nil
	default:
	}
	select {
	case l <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctxErr(ctx, op)
	case <-closed:
		return closedErr(op)
	}
}

func (l lock) release() { <-l }

// watcher makes the I/O of one direction return when a context ends, by
// setting that direction's deadline in the past; it is used under that
// direction's lock.
type watcher struct {
	set       func(time.Time) error // the conn's SetReadDeadline or SetWriteDeadline
	interrupt func()                // run by context.AfterFunc
	fired     chan struct{}         // interrupt's deadline is set
	stop      func() bool           // while watching a context
}

func (w *watcher) init(set func(time.Time) error) {
	w.set = set
	w.fired = make(chan struct{}, 1)
	w.interrupt = func() {
		_ = w.set(aLongTimeAgo)
		w.fired <- struct{}{}
	}
}

// watch starts watching ctx, unless it can never end (then the deadline is
// never touched).
func (w *watcher) watch(ctx context.Context) {
	if ctx.Done() == nil || w.stop != nil {
		return
	}
	w.stop = context.AfterFunc(ctx, w.interrupt)
}

// done stops watching and reports whether the context ended while it was
// watched, in which case the deadline it set is reset to none. Calling it
// again (or without watch) reports false.
func (w *watcher) done() bool {
	if w.stop == nil {
		return false
	}
	stop := w.stop
	w.stop = nil
	if stop() {
		return false
	}
	<-w.fired
	_ = w.set(time.Time{})
	return true
}

// lockRecv takes the receive lock for Recv, or returns why Recv cannot
// receive.
func (c *core) lockRecv(ctx context.Context) error {
	if err := c.recvLock.acquire(ctx, c.closed, "receive"); err != nil {
		return err
	}
	var err error
	switch {
	case c.rerr != nil:
		err = c.rerr
	case c.isClosed():
		err = closedErr("receive")
	case ctx.Err() != nil:
		err = ctxErr(ctx, "receive")
	}
	if err != nil {
		c.recvLock.release()
	}
	return err
}

// lockSend takes the send lock for Send, or returns why Send cannot send.
func (c *core) lockSend(ctx context.Context) error {
	if err := c.sendLock.acquire(ctx, c.closed, "send"); err != nil {
		return err
	}
	var err error
	switch {
	case c.werr != nil:
		err = c.werr
	case c.isClosed():
		err = closedErr("send")
	case ctx.Err() != nil:
		err = ctxErr(ctx, "send")
	}
	if err != nil {
		c.sendLock.release()
	}
	return err
}

// read is one Read of the conn for Recv (whose context the receive watcher
// watches). The n bytes read are good whatever the error, which is nil,
// io.EOF at the end of the stream, Recv's error for ctx when it ended, a
// deadline's error (set through Conn), or an I/O error that ends receiving.
func (c *core) read(ctx context.Context, p []byte) (int, error) {
	n, err := c.nc.Read(p)
	if err == nil || err == io.EOF {
		return n, err
	}
	if c.rd.done() {
		return n, ctxErr(ctx, "receive")
	}
	err = fmt.Errorf("framing: receive: %w", err)
	if !isTimeout(err) {
		c.rerr = err
	}
	return n, err
}

// failRecv ends receiving with a protocol error: the conn is closed and
// every later Recv returns err.
func (c *core) failRecv(err error) error {
	c.rerr = err
	_ = c.close()
	return err
}

// write writes hdr and body for Send (under the send lock): with one Write
// when hdr is nil, else as net.Buffers, one writev on a TCP connection.
func (c *core) write(ctx context.Context, hdr, body []byte) error {
	c.wd.watch(ctx)
	var n int64
	var err error
	if hdr == nil {
		var k int
		k, err = c.nc.Write(body)
		n = int64(k)
	} else {
		bufs := net.Buffers{hdr, body}
		n, err = bufs.WriteTo(c.nc)
	}
	fired := c.wd.done()
	if err == nil {
		return nil
	}
	total := int64(len(hdr) + len(body))
	if fired {
		err = ctxErr(ctx, "send")
	} else {
		err = fmt.Errorf("framing: send: %w", err)
	}
	switch {
	case n > 0:
		c.werr = &detailError{
			msg: fmt.Sprintf("framing: send: the stream is broken for writing: an earlier Send stopped after %d of %d bytes (%v)", n, total, err),
			err: ErrBroken,
		}
		return &brokenError{err: err, n: n, total: total}
	case !fired && !isTimeout(err):
		c.werr = err
	}
	return err
}

// brokenError is the error of the Send that broke the stream for writing:
// it matches both its cause and ErrBroken.
type brokenError struct {
	err      error
	n, total int64
}

func (e *brokenError) Error() string {
	return fmt.Sprintf("%v, after %d of %d bytes: the stream is broken for writing", e.err, e.n, e.total)
}

func (e *brokenError) Unwrap() []error { return []error{e.err, ErrBroken} }

// close closes the conn once; every call returns the conn's Close error.
func (c *core) close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.closeErr = c.nc.Close()
	})
	return c.closeErr
}

func (c *core) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// closeWrite half-closes the conn once a Send in progress is done; later
// Sends fail.
func (c *core) closeWrite() error {
	cw, ok := c.nc.(interface{ CloseWrite() error })
	if !ok {
		return fmt.Errorf("framing: CloseWrite: %T cannot half-close: %w", c.nc, errors.ErrUnsupported)
	}
	if err := c.sendLock.acquire(context.Background(), c.closed, "CloseWrite"); err != nil {
		return err
	}
	defer c.sendLock.release()
	if c.werr == nil {
		c.werr = &detailError{msg: "framing: send after CloseWrite", err: net.ErrClosed}
	}
	if err := cw.CloseWrite(); err != nil {
		return fmt.Errorf("framing: CloseWrite: %w", err)
	}
	return nil
}

func ctxErr(ctx context.Context, op string) error {
	return fmt.Errorf("framing: %s: %w", op, ctx.Err())
}

func closedErr(op string) error {
	return fmt.Errorf("framing: %s: %w", op, net.ErrClosed)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
