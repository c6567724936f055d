//go:build !js

package ymux_test

import (
	"io"
	"testing"

	"github.com/ferrygw/ferry/tunnel"
	"github.com/ferrygw/ferry/tunnel/ymux"
	"github.com/hashicorp/yamux"
)

// BenchmarkUpload compares this client with hashicorp/yamux's as the
// client of one stream to hashicorp/yamux's server over loopback TCP:
// the same server, writes of 32 KiB, the server discarding.
func BenchmarkUpload(b *testing.B) {
	for _, tc := range []struct {
		name string
		dial func(b *testing.B) func() (io.WriteCloser, error)
	}{
		{"ymux", func(b *testing.B) func() (io.WriteCloser, error) {
			cli, _ := discardPair(b, func(c io.ReadWriteCloser) (any, error) { return ymux.Client(c, tunnel.DefaultWindow) })
			return func() (io.WriteCloser, error) { return cli.(*ymux.Session).OpenStream() }
		}},
		{"hashicorp", func(b *testing.B) func() (io.WriteCloser, error) {
			cli, _ := discardPair(b, func(c io.ReadWriteCloser) (any, error) {
				return yamux.Client(c, tunnel.MuxConfig(tunnel.DefaultWindow))
			})
			return func() (io.WriteCloser, error) { return cli.(*yamux.Session).OpenStream() }
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			open := tc.dial(b)
			st, err := open()
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 32<<10)
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			for b.Loop() {
				if _, err := st.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			st.Close()
		})
	}
}

// discardPair starts a hashicorp/yamux server that discards every stream
// and a client made by mk on a loopback TCP connection to it.
func discardPair(b *testing.B, mk func(io.ReadWriteCloser) (any, error)) (any, *yamux.Session) {
	cc, sc := tcpPair(b)
	srv, err := yamux.Server(sc, tunnel.MuxConfig(tunnel.DefaultWindow))
	if err != nil {
		b.Fatal(err)
	}
	cli, err := mk(cc)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cc.Close()
		srv.Close()
	})
	go func() {
		for {
			st, err := srv.AcceptStream()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, st) }()
		}
	}()
	return cli, srv
}
