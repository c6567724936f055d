//go:build !js

package tunnel

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"time"
)

// NetConn returns a net.Conn whose reads are the payloads of the binary
// messages received, as one byte stream, and whose every Write is sent as
// one binary message. A text message fails the connection with 1003.
//
// Deadlines apply to the TCP connection: a read deadline that expires
// returns os.ErrDeadlineExceeded and the read may be retried, except while
// a compressed message or a control frame's payload is being read, which
// cannot be resumed: then the connection ends. A write deadline that
// expires mid-frame closes the connection for the same reason. Close runs the closing handshake with 1000.
// Reads return io.EOF after a normal closure (1000 or 1001, or no status).
func (c *Conn) NetConn() net.Conn { return &netConn{c: c} }

type netConn struct {
	c *Conn
	// r is true while a message's payload is being read.
	r bool
}

var _ net.Conn = (*netConn)(nil)

func (n *netConn) Read(p []byte) (int, error) {
	c := n.c
	if len(p) == 0 {
		return 0, nil
	}
	if err := c.readMu.acquire(context.Background(), c.closed); err != nil {
		return 0, n.mapErr(c.lockErr(err))
	}
	defer c.readMu.release()
	for {
		if !n.r {
			if err := c.beginMessage(); err != nil {
				return 0, n.mapErr(err)
			}
			if c.rmsg != OpBinary {
				return 0, n.mapErr(c.fail(StatusUnsupportedData, "text message on a binary stream"))
			}
			n.r = true
		}
		m, err := c.readPayload(p)
		if err == io.EOF {
			n.r = false
			if m > 0 {
				return m, nil
			}
			continue
		}
		if err != nil {
			return m, n.mapErr(err)
		}
		if m > 0 {
			return m, nil
		}
	}
}

func (n *netConn) Write(p []byte) (int, error) {
	if err := n.c.Write(context.Background(), MessageBinary, p); err != nil {
		return 0, n.mapErr(err)
	}
	return len(p), nil
}

// mapErr gives net.Conn meanings: io.EOF for a normal close, deadlines as
// os.ErrDeadlineExceeded.
func (n *netConn) mapErr(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return os.ErrDeadlineExceeded
	}
	switch CloseStatus(err) {
	case StatusNormalClosure, StatusGoingAway, StatusNoStatusRcvd:
		var ce *CloseError
		if errors.As(err, &ce) && !ce.Local {
			return io.EOF
		}
	}
	return err
}

func (n *netConn) Close() error {
	err := n.c.Close(StatusNormalClosure, "")
	if errors.Is(err, ErrClosed) {
		return net.ErrClosed
	}
	return nil
}

func (n *netConn) LocalAddr() net.Addr                { return n.c.nc.LocalAddr() }
func (n *netConn) RemoteAddr() net.Addr               { return n.c.nc.RemoteAddr() }
func (n *netConn) SetDeadline(t time.Time) error      { return n.c.nc.SetDeadline(t) }
func (n *netConn) SetReadDeadline(t time.Time) error  { return n.c.nc.SetReadDeadline(t) }
func (n *netConn) SetWriteDeadline(t time.Time) error { return n.c.nc.SetWriteDeadline(t) }
