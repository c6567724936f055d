// Package testnet holds network helpers that tests of several packages
// share.
package testnet

import (
	"net"
	"testing"
)

// TCPPair returns the two ends of a loopback TCP connection, closed when
// the test ends.
func TCPPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		a.Close()
		t.Fatal(r.err)
	}
	t.Cleanup(func() { a.Close(); r.c.Close() })
	return a, r.c
}

// ServeOnce starts a TCP server on 127.0.0.1 that runs handle on its
// first connection, and returns its address; the listener is closed when
// the test ends, and handle must close the connection.
func ServeOnce(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		handle(c)
	}()
	return ln.Addr().String()
}

// Firehose starts a TCP server on 127.0.0.1 that sends to its first
// connection until a write fails, and returns its address and a channel
// that gets that failure. It stops when the test ends.
func Firehose(t testing.TB) (string, <-chan error) {
	t.Helper()
	ended := make(chan error, 1)
	addr := ServeOnce(t, func(c net.Conn) {
		defer c.Close()
		chunk := make([]byte, 64<<10)
		for {
			if _, err := c.Write(chunk); err != nil {
				ended <- err
				return
			}
		}
	})
	return addr, ended
}
