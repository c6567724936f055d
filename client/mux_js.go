//go:build js

package client

import (
	"errors"
	"io"
	"time"

	"github.com/ferrygw/ferry/tunnel"
	"github.com/ferrygw/ferry/tunnel/ymux"
)

// The yamux of the browser build: tunnel/ymux, which speaks the same wire
// as hashicorp/yamux with none of fmt, log and net (which cost about a
// fifth of client.wasm's compressed weight).
type (
	muxSession = ymux.Session
	muxStream  = ymux.Stream
)

var (
	errMuxTimeout = ymux.ErrTimeout
	errMuxGoAway  = ymux.ErrRemoteGoAway
	errMuxReset   = ymux.ErrConnectionReset
	// errClosed is returned by a Conn's Read after its Close (net.ErrClosed
	// in native builds).
	errClosed = errors.New("use of closed network connection")
)

// TunnelConn is the byte stream a tunnel runs on, what Options.Dialer
// returns: what the browser build needs of a net.Conn, without its
// addresses and so without package net.
type TunnelConn interface {
	io.ReadWriteCloser
	SetDeadline(t time.Time) error
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
}

func newMux(c io.ReadWriteCloser) (*muxSession, error) {
	return ymux.Client(c, tunnel.DefaultWindow)
}
