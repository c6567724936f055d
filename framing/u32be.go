package framing

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
)

// bodyChunk is the most a U32BEConn allocates for a message body before
// its bytes arrive: a larger body grows, doubling, as they do, so a peer
// that announces a large message and sends little costs little.
const bodyChunk = 64 << 10

// U32BEConn carries messages of bytes, each after its length as a 4-byte
// big-endian unsigned integer, over a net.Conn (see the package
// documentation for the exact rules).
//
// One Send and one Recv may run at the same time; concurrent Sends are
// serialised, and so are concurrent Recvs. A Send or Recv waiting for
// another gives up when its context ends or the connection is closed.
type U32BEConn struct {
	c core

	// Receive state, under c.recvLock. rbuf[r:w] is read and not yet
	// parsed. hdr[:hn] is the header read so far; once hn is 4, the message
	// has size bytes and body holds those read so far.
	rbuf []byte
	r, w int
	hdr  [4]byte
	hn   int
	size int
	body []byte
	eof  bool // the peer ended the stream after what rbuf holds

	// Send state, under c.sendLock.
	whdr [4]byte
	wbuf []byte // the last small message sent, with its header
}

// NewU32BE returns a U32BEConn that sends and receives messages of at most
// max bytes over conn, not counting the 4-byte length. It panics if max is
// below 1 or above 1<<32-1.
func NewU32BE(conn net.Conn, max int) *U32BEConn {
	if max < 1 || uint64(max) > math.MaxUint32 {
		panic(fmt.Sprintf("framing: NewU32BE: max %d is not in [1, 1<<32-1]", max))
	}
	u := &U32BEConn{}
	u.c.init(conn, max)
	return u
}

// Send writes the length of msg as 4 bytes, big-endian, then msg: with one
// Write when msg is small, else as net.Buffers (one writev on a TCP
// connection, two Writes on others). A message over Max bytes is an error
// matching ErrTooLarge and nothing is sent. Send does not keep msg.
//
// If ctx ends while Send writes, Send returns an error matching ctx.Err().
// When part of the message was written by then (or when a write fails
// after it began), the error also matches ErrBroken, and so do the errors
// of every later Send: the peer holds a partial message, so nothing more
// can be sent on the stream.
func (u *U32BEConn) Send(ctx context.Context, msg []byte) error {
	if len(msg) > u.c.max {
		return tooLarge(false, false, int64(len(msg)), u.c.max)
	}
	if err := u.c.lockSend(ctx); err != nil {
		return err
	}
	defer u.c.sendLock.release()
	if 4+len(msg) <= writeCopyMax {
		buf := binary.BigEndian.AppendUint32(u.wbuf[:0], uint32(len(msg)))
		buf = append(buf, msg...)
		u.wbuf = buf[:0]
		return u.c.write(ctx, nil, buf)
	}
	binary.BigEndian.PutUint32(u.whdr[:], uint32(len(msg)))
	return u.c.write(ctx, u.whdr[:], msg)
}

// Recv returns the next message in a new slice (empty, not nil, for a
// 0-byte message). At the end of the stream between two messages it
// returns io.EOF.
//
// A length over Max or the end of the stream inside a message ends
// receiving: the connection is closed and this Recv and every later one
// return an error matching ErrTooLarge (before any of the body is awaited
// or allocated) or io.ErrUnexpectedEOF.
//
// If ctx ends while Recv waits, Recv returns an error matching ctx.Err();
// what it read of a message is kept, and the next Recv continues it.
func (u *U32BEConn) Recv(ctx context.Context) ([]byte, error) {
	if err := u.c.lockRecv(ctx); err != nil {
		return nil, err
	}
	defer u.c.recvLock.release()
	u.c.rd.watch(ctx)
	msg, err := u.recv(ctx)
	u.c.rd.done()
	return msg, err
}

func (u *U32BEConn) recv(ctx context.Context) ([]byte, error) {
	if u.rbuf == nil {
		u.rbuf = make([]byte, readBufSize)
	}
	for {
		if u.hn < 4 {
			k := copy(u.hdr[u.hn:], u.rbuf[u.r:u.w])
			u.r += k
			u.hn += k
			if u.hn < 4 {
				if err := u.fill(ctx); err != nil {
					return nil, err
				}
				continue
			}
			n := binary.BigEndian.Uint32(u.hdr[:])
			if uint64(n) > uint64(u.c.max) {
				return nil, u.c.failRecv(tooLarge(true, false, int64(n), u.c.max))
			}
			u.size = int(n)
			u.body = make([]byte, 0, min(u.size, bodyChunk))
		}
		if len(u.body) == u.size {
			msg := u.body
			u.body, u.hn, u.size = nil, 0, 0
			return msg, nil
		}
		if len(u.body) == cap(u.body) {
			grown := make([]byte, len(u.body), min(2*cap(u.body), u.size))
			copy(grown, u.body)
			u.body = grown
		}
		if u.r < u.w {
			k := copy(u.body[len(u.body):cap(u.body)], u.rbuf[u.r:u.w])
			u.r += k
			u.body = u.body[:len(u.body)+k]
			continue
		}
		if u.size-len(u.body) < len(u.rbuf) {
			if err := u.fill(ctx); err != nil {
				return nil, err
			}
			continue
		}
		// A large rest of the body is read straight into it.
		if u.eof {
			return nil, u.end()
		}
		n, err := u.c.read(ctx, u.body[len(u.body):cap(u.body)])
		u.body = u.body[:len(u.body)+n]
		if err == io.EOF {
			u.eof = true
		} else if err != nil {
			return nil, err
		}
	}
}

// fill reads into the empty rbuf, or returns Recv's error.
func (u *U32BEConn) fill(ctx context.Context) error {
	if u.eof {
		return u.end()
	}
	n, err := u.c.read(ctx, u.rbuf)
	u.r, u.w = 0, n
	if err == io.EOF {
		u.eof = true
		return nil
	}
	return err
}

// end is Recv's error when the stream ended and more bytes are needed:
// io.EOF between messages, else a protocol error.
func (u *U32BEConn) end() error {
	if u.hn == 0 {
		u.c.rerr = io.EOF
		return io.EOF
	}
	var msg string
	if u.hn < 4 {
		msg = fmt.Sprintf("framing: stream ended %d bytes into a 4-byte message header: %v", u.hn, io.ErrUnexpectedEOF)
	} else {
		msg = fmt.Sprintf("framing: stream ended %d bytes into a message of %d bytes: %v", len(u.body), u.size, io.ErrUnexpectedEOF)
	}
	return u.c.failRecv(&detailError{msg: msg, err: io.ErrUnexpectedEOF})
}

// Close closes the connection; a Send or Recv in progress or waiting
// returns an error. Every call returns the result of the first.
func (u *U32BEConn) Close() error { return u.c.close() }

// CloseWrite half-closes the connection, once a Send in progress is done,
// if it has a CloseWrite method (as *net.TCPConn does); else it returns an
// error matching errors.ErrUnsupported. Later Sends fail.
func (u *U32BEConn) CloseWrite() error { return u.c.closeWrite() }

// Conn returns the underlying connection. Reading or writing it directly
// corrupts the framing; a Send or Recv whose context can end resets the
// conn's write or read deadline when the context interrupts it.
func (u *U32BEConn) Conn() net.Conn { return u.c.nc }

// Max returns the largest message size in bytes.
func (u *U32BEConn) Max() int { return u.c.max }
