package framing

import (
	"bytes"
	"context"
	"strconv"
	"testing"
)

// newLoopLines returns a LinesConn that receives lines of size bytes, ended
// by "\n", forever.
func newLoopLines(size int) *LinesConn {
	line := append(bytes.Repeat([]byte("x"), size), '\n')
	block := bytes.Repeat(line, max(1, (64<<10)/len(line)))
	return NewLines(&fakeConn{r: &loopReader{data: block}}, max(size, 1))
}

// newLoopU32BE returns a U32BEConn that receives messages of size bytes
// forever.
func newLoopU32BE(size int) *U32BEConn {
	msg := u32(string(make([]byte, size)))
	block := bytes.Repeat(msg, max(1, (64<<10)/len(msg)))
	return NewU32BE(&fakeConn{r: &loopReader{data: block}}, max(size, 1))
}

func BenchmarkLinesRecv(b *testing.B) {
	for _, size := range []int{16, 1024, 64 << 10} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			l := newLoopLines(size)
			ctx := context.Background()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := l.Recv(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkLinesSend(b *testing.B) {
	for _, size := range []int{16, 1024, 64 << 10} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			l := NewLines(&fakeConn{}, size)
			msg := string(bytes.Repeat([]byte("x"), size))
			ctx := context.Background()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if err := l.Send(ctx, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkU32BERecv(b *testing.B) {
	for _, size := range []int{16, 1024, 64 << 10, 1 << 20} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			u := newLoopU32BE(size)
			ctx := context.Background()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := u.Recv(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkU32BESend(b *testing.B) {
	for _, size := range []int{16, 1024, 64 << 10, 1 << 20} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			u := NewU32BE(&fakeConn{}, size)
			msg := make([]byte, size)
			ctx := context.Background()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if err := u.Send(ctx, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestAllocs pins the allocations of the hot paths, with a context that
// cannot end: none to send a small message, the message itself to receive
// one.
func TestAllocs(t *testing.T) {
	ctx := context.Background()
	lines, u := newLoopLines(100), newLoopU32BE(100)
	lsend, usend := NewLines(&fakeConn{}, 100), NewU32BE(&fakeConn{}, 100)
	bmsg := bytes.Repeat([]byte("x"), 100)
	msg := string(bmsg)
	cases := []struct {
		name string
		f    func() error
		want float64
	}{
		{"LinesConn.Send", func() error { return lsend.Send(ctx, msg) }, 0},
		{"U32BEConn.Send", func() error { return usend.Send(ctx, bmsg) }, 0},
		{"LinesConn.Recv", func() error { _, err := lines.Recv(ctx); return err }, 1},
		{"U32BEConn.Recv", func() error { _, err := u.Recv(ctx); return err }, 1},
	}
	for _, tc := range cases {
		var err error
		allocs := testing.AllocsPerRun(100, func() {
			if e := tc.f(); e != nil {
				err = e
			}
		})
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if allocs != tc.want {
			t.Errorf("%s: %v allocations, want %v", tc.name, allocs, tc.want)
		}
	}
}
