package framing

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"unicode/utf8"
)

// LinesConn carries messages of UTF-8 text, each ended by "\n", over a
// net.Conn (see the package documentation for the exact rules).
//
// One Send and one Recv may run at the same time; concurrent Sends are
// serialised, and so are concurrent Recvs. A Send or Recv waiting for
// another gives up when its context ends or the connection is closed.
type LinesConn struct {
	c core

	// Receive state, under c.recvLock. rbuf[r:w] is read and not yet
	// scanned; line holds the start of a line that did not end in what was
	// read (at most max+1 bytes: max and a "\r" that may precede "\n").
	rbuf []byte
	r, w int
	line []byte
	eof  bool // the peer ended the stream after what rbuf and line hold

	wbuf []byte // under c.sendLock: the last message sent, with its "\n"
}

// NewLines returns a LinesConn that sends and receives messages of at most
// max bytes over conn, not counting the "\n" (and a "\r" before it on
// receive). It panics if max is below 1.
func NewLines(conn net.Conn, max int) *LinesConn {
	if max < 1 {
		panic(fmt.Sprintf("framing: NewLines: max %d is below 1", max))
	}
	l := &LinesConn{}
	l.c.init(conn, max)
	return l
}

// Send writes msg and "\n" with one Write. A message over Max bytes, with a
// "\n" in it, or not valid UTF-8 is an error (matching ErrTooLarge,
// ErrNewline or ErrInvalidUTF8) and nothing is sent. A message that ends
// in "\r" arrives without it.
//
// If ctx ends while Send writes, Send returns an error matching ctx.Err().
// When part of the message was written by then (or when a write fails
// after it began), the error also matches ErrBroken, and so do the errors
// of every later Send: the peer holds a partial line, so nothing more can
// be sent on the stream.
func (l *LinesConn) Send(ctx context.Context, msg string) error {
	if len(msg) > l.c.max {
		return tooLarge(false, false, int64(len(msg)), l.c.max)
	}
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		return &detailError{
			msg: fmt.Sprintf("framing: message to send contains a newline (at offset %d of %d)", i, len(msg)),
			err: ErrNewline,
		}
	}
	if !utf8.ValidString(msg) {
		return invalidUTF8(false, firstInvalid([]byte(msg)), len(msg))
	}
	if err := l.c.lockSend(ctx); err != nil {
		return err
	}
	defer l.c.sendLock.release()
	buf := append(l.wbuf[:0], msg...)
	buf = append(buf, '\n')
	if len(buf) <= writeCopyMax {
		l.wbuf = buf[:0] // kept for the next Send; a larger one is let go
	}
	return l.c.write(ctx, nil, buf)
}

// Recv returns the next message, without its "\n" and the "\r" before it,
// if any. At the end of the stream a last line without "\n" is returned
// as it is, then Recv returns io.EOF.
//
// A message over Max bytes or not valid UTF-8 ends receiving: the
// connection is closed and this Recv and every later one return an error
// matching ErrTooLarge or ErrInvalidUTF8. Recv never holds more than Max+1
// bytes of a line besides its fixed read buffer.
//
// If ctx ends while Recv waits, Recv returns an error matching ctx.Err();
// what it read of a message is kept, and the next Recv continues it.
func (l *LinesConn) Recv(ctx context.Context) (string, error) {
	if err := l.c.lockRecv(ctx); err != nil {
		return "", err
	}
	defer l.c.recvLock.release()
	l.c.rd.watch(ctx)
	msg, err := l.recv(ctx)
	l.c.rd.done()
	return msg, err
}

func (l *LinesConn) recv(ctx context.Context) (string, error) {
	if l.rbuf == nil {
		l.rbuf = make([]byte, readBufSize)
	}
	for {
		msg, ok, err := l.scan()
		switch {
		case err == io.EOF:
			l.c.rerr = io.EOF
			return "", io.EOF
		case err != nil:
			return "", l.c.failRecv(err)
		case ok:
			return msg, nil
		}
		// scan left rbuf empty.
		n, err := l.c.read(ctx, l.rbuf)
		l.r, l.w = 0, n
		if err == io.EOF {
			l.eof = true
		} else if err != nil {
			return "", err
		}
	}
}

// scan returns the next message if what was read holds it, else it keeps
// what was read in line, leaving rbuf empty. At the end of the stream it
// returns the last line or io.EOF.
func (l *LinesConn) scan() (string, bool, error) {
	buf := l.rbuf[l.r:l.w]
	i := bytes.IndexByte(buf, '\n')
	if i < 0 {
		n := len(l.line) + len(buf)
		if n-1 > l.c.max { // not n > max+1, which overflows for the largest max
			return "", false, tooLarge(true, true, int64(n), l.c.max)
		}
		l.line = append(l.line, buf...)
		l.r, l.w = 0, 0
		if !l.eof {
			return "", false, nil
		}
		if len(l.line) == 0 {
			return "", false, io.EOF
		}
		msg, err := l.message(l.line, false)
		l.resetLine()
		return msg, err == nil, err
	}
	l.r += i + 1
	if len(l.line) == 0 {
		msg, err := l.message(buf[:i], true)
		return msg, err == nil, err
	}
	if n := len(l.line) + i; n-1 > l.c.max {
		last := l.line[len(l.line)-1]
		if i > 0 {
			last = buf[i-1]
		}
		if last == '\r' {
			n--
		}
		return "", false, tooLarge(true, false, int64(n), l.c.max)
	}
	l.line = append(l.line, buf[:i]...)
	msg, err := l.message(l.line, true)
	l.resetLine()
	return msg, err == nil, err
}

// message checks a received line (ended by "\n" if terminated) and returns
// it as a message.
func (l *LinesConn) message(p []byte, terminated bool) (string, error) {
	if terminated && len(p) > 0 && p[len(p)-1] == '\r' {
		p = p[:len(p)-1]
	}
	if len(p) > l.c.max {
		return "", tooLarge(true, false, int64(len(p)), l.c.max)
	}
	if !utf8.Valid(p) {
		return "", invalidUTF8(true, firstInvalid(p), len(p))
	}
	return string(p), nil
}

// resetLine empties line, letting a large one go.
func (l *LinesConn) resetLine() {
	if cap(l.line) > writeCopyMax {
		l.line = nil
	} else {
		l.line = l.line[:0]
	}
}

// firstInvalid returns the offset of the first byte of p that is not part
// of valid UTF-8.
func firstInvalid(p []byte) int {
	for i := 0; i < len(p); {
		r, size := utf8.DecodeRune(p[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(p)
}

// Close closes the connection; a Send or Recv in progress or waiting
// returns an error. Every call returns the result of the first.
func (l *LinesConn) Close() error { return l.c.close() }

// CloseWrite half-closes the connection, once a Send in progress is done,
// if it has a CloseWrite method (as *net.TCPConn does); else it returns an
// error matching errors.ErrUnsupported. Later Sends fail.
func (l *LinesConn) CloseWrite() error { return l.c.closeWrite() }

// Conn returns the underlying connection. Reading or writing it directly
// corrupts the framing; a Send or Recv whose context can end resets the
// conn's write or read deadline when the context interrupts it.
func (l *LinesConn) Conn() net.Conn { return l.c.nc }

// Max returns the largest message size in bytes.
func (l *LinesConn) Max() int { return l.c.max }
