//go:build !js

package client

import (
	"io"
	"net"

	"github.com/ferrygw/ferry/tunnel"
	"github.com/hashicorp/yamux"
)

// The yamux of native builds: hashicorp/yamux, as the gateway runs.
type (
	muxSession = yamux.Session
	muxStream  = yamux.Stream
)

var (
	errMuxTimeout          = yamux.ErrTimeout
	errMuxGoAway           = yamux.ErrRemoteGoAway
	errMuxReset            = yamux.ErrConnectionReset
	errClosed              = net.ErrClosed
	_             net.Conn = (*Conn)(nil)
)

// TunnelConn is the byte stream a tunnel runs on, what Options.Dialer
// returns: a net.Conn (in the browser build, a net.Conn without its
// addresses).
type TunnelConn = net.Conn

func newMux(c io.ReadWriteCloser) (*muxSession, error) {
	return yamux.Client(c, tunnel.MuxConfig(tunnel.DefaultWindow))
}
