package tunnel

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/ferrygw/ferry/compress"
)

// BenchmarkEcho measures round trips through an echoing server over
// loopback TCP: a client writes a message and reads it back. Compare with
// BenchmarkRawTCPEcho, the same workload on bare TCP.
func BenchmarkEcho(b *testing.B) {
	for _, size := range []int{64, 64 << 10} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			client, server := dialPair(b)
			ctx := context.Background()
			go echoLoop(server)
			msg := make([]byte, size)
			buf := make([]byte, 0, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if err := client.Write(ctx, MessageBinary, msg); err != nil {
					b.Fatal(err)
				}
				var err error
				if _, buf, err = client.ReadAppend(ctx, buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

func BenchmarkRawTCPEcho(b *testing.B) {
	for _, size := range []int{64, 64 << 10} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			a, s := tcpPair(b)
			go func() {
				buf := make([]byte, size)
				for {
					if _, err := readFull(s, buf); err != nil {
						return
					}
					if _, err := s.Write(buf); err != nil {
						return
					}
				}
			}()
			msg := make([]byte, size)
			buf := make([]byte, size)
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := a.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := readFull(a, buf); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

func readFull(c net.Conn, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := c.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func BenchmarkUTF8(b *testing.B) {
	ascii := []byte(strings.Repeat("GET /index.html HTTP/1.1\r\n", 2000))
	mixed := []byte(strings.Repeat("κόσμε ferry ", 2000))
	for _, tc := range []struct {
		name string
		p    []byte
	}{{"ascii", ascii}, {"mixed", mixed}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.p)))
			var v utf8Validator
			for b.Loop() {
				v.reset()
				if !v.write(tc.p) {
					b.Fatal("invalid")
				}
			}
		})
	}
}

// BenchmarkUTF8Invalid validates multi-byte text whose last byte is
// invalid, the case that costs most: all of it is checked before the
// failure shows. Its time per byte must not grow with the size.
func BenchmarkUTF8Invalid(b *testing.B) {
	unit := []byte("κόσμε ферри 渡し船 🚢 ")
	for _, size := range []int{64 << 10, 1 << 20} {
		p := bytes.Repeat(unit, size/len(unit)+1)
		p = p[:runeBoundary(p[:size-1])]
		p = append(p, 0xff)
		b.Run(strconv.Itoa(size>>10)+"KiB", func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			var v utf8Validator
			for b.Loop() {
				v.reset()
				if v.write(p) {
					b.Fatal("invalid text accepted")
				}
			}
		})
	}
}

// BenchmarkCompressedEcho is BenchmarkEcho with permessage-deflate on
// protocol text (context takeover both ways), and on random bytes, which
// the compressor must skip.
func BenchmarkCompressedEcho(b *testing.B) {
	var text bytes.Buffer
	for i := 0; text.Len() < 64<<10; i++ {
		fmt.Fprintf(&text, `{"id":%d,"user":"user%d","op":"SET","ok":true,"ts":"2026-11-26T16:%02d:00Z"}`+"\n", i*31, i%113, i%60)
	}
	random := make([]byte, 64<<10)
	rand.Read(random)
	for _, tc := range []struct {
		name string
		msg  []byte
	}{{"json", text.Bytes()[:64<<10]}, {"random", random}} {
		b.Run(tc.name, func(b *testing.B) {
			client, server := dialPair(b)
			client.enableCompression(compress.Params{}, compress.Options{})
			server.enableCompression(compress.Params{}, compress.Options{})
			ctx := context.Background()
			go echoLoop(server)
			buf := make([]byte, 0, len(tc.msg))
			b.SetBytes(int64(len(tc.msg)))
			b.ReportAllocs()
			for b.Loop() {
				if err := client.Write(ctx, MessageBinary, tc.msg); err != nil {
					b.Fatal(err)
				}
				var err error
				if _, buf, err = client.ReadAppend(ctx, buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// echoLoop sends every message c reads back to its peer, until an error.
func echoLoop(c *Conn) {
	ctx := context.Background()
	var buf []byte
	for {
		typ, p, err := c.ReadAppend(ctx, buf[:0])
		if err != nil {
			return
		}
		buf = p
		if c.Write(ctx, typ, p) != nil {
			return
		}
	}
}
