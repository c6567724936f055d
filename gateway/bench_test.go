package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
)

// BenchmarkTunnel measures, in one process, a stream through the client
// session and the gateway to a TCP echo backend: bulk echo of 64 KiB
// chunks (MB/s) and 64-byte round trips, with compression on and off, and
// raw TCP to the same backend as the baseline. scripts/bench-tunnel does
// the same across processes, against a relay chain and chisel.
func BenchmarkTunnel(b *testing.B) {
	backend := echoBackend(b)
	dialRaw := func() (net.Conn, error) { return net.Dial("tcp", backend) }
	setups := []struct {
		name string
		dial func(b *testing.B) func() (net.Conn, error)
	}{
		{"raw", func(*testing.B) func() (net.Conn, error) { return dialRaw }},
	}
	for _, comp := range []bool{true, false} {
		setups = append(setups, struct {
			name string
			dial func(b *testing.B) func() (net.Conn, error)
		}{fmt.Sprintf("ferry-compression=%v", comp), func(b *testing.B) func() (net.Conn, error) {
			g := startGateway(b, baseConfig(fmt.Sprintf("[compression]\nenabled = %v\n[services.tcpecho]\nbackend = %q\npublic = true\n", comp, backend)))
			s := connect(b, g.url, nil)
			return func() (net.Conn, error) { return s.Dial(context.Background(), "tcpecho") }
		}})
	}
	for _, st := range setups {
		b.Run(st.name+"/bulk", func(b *testing.B) {
			c, err := st.dial(b)()
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			chunk := make([]byte, 64<<10)
			for i := range chunk {
				chunk[i] = byte(i * 7) // compressible, like protocol traffic
			}
			done := make(chan error, 1)
			go func() {
				_, err := io.CopyN(io.Discard, c, int64(b.N)*int64(len(chunk)))
				done <- err
			}()
			b.SetBytes(int64(len(chunk)))
			for i := 0; i < b.N; i++ {
				if _, err := c.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
		b.Run(st.name+"/rt64", func(b *testing.B) {
			c, err := st.dial(b)()
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			msg := make([]byte, 64)
			buf := make([]byte, 64)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rt/s")
		})
	}
}
