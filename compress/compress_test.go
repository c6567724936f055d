package compress

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func inflateAll(t testing.TB, d *Decompressor, payload []byte, limit int64) ([]byte, error) {
	t.Helper()
	data := append(append([]byte(nil), payload...), deflateTail...)
	if err := d.Begin(data, limit); err != nil {
		return nil, err
	}
	defer d.End()
	var out bytes.Buffer
	buf := make([]byte, 1000)
	for {
		n, err := d.Read(buf)
		out.Write(buf[:n])
		if err == io.EOF {
			return out.Bytes(), nil
		}
		if err != nil {
			return out.Bytes(), err
		}
		if n == 0 {
			t.Fatal("Read returned (0, nil)")
		}
	}
}

// TestRFC7692Vectors inflates the examples of RFC 7692 section 7.2.3.
func TestRFC7692Vectors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		payloads [][]byte // successive messages on one connection
		takeover bool
	}{
		{"hello", [][]byte{{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}}, false},
		{"shared window", [][]byte{{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}, {0xf2, 0x00, 0x11, 0x00, 0x00}}, true},
		{"no compression block", [][]byte{{0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00}}, false},
		{"bfinal block", [][]byte{{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}}, false},
		{"two blocks", [][]byte{{0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDecompressor(tt.takeover)
			for i, p := range tt.payloads {
				got, err := inflateAll(t, d, p, 100)
				if err != nil || string(got) != "Hello" {
					t.Fatalf("message %d: %q, %v", i, got, err)
				}
			}
		})
	}
	// Our compressor's output for "Hello" inflates back, and with context
	// takeover the second "Hello" is a back-reference, shorter than the
	// first.
	c := NewCompressor(Options{Threshold: -1}, 0, true)
	d := NewDecompressor(true)
	var sizes []int
	hello := "Hello, this is Ferry speaking, over a tunnel of WebSocket. "
	for i := 0; i < 2; i++ {
		z, err := c.Compress([]byte(hello), nil)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(z))
		got, err := inflateAll(t, d, z, 100)
		c.Done()
		if err != nil || string(got) != hello {
			t.Fatalf("round trip %d: %q, %v", i, got, err)
		}
	}
	if sizes[1] >= sizes[0] {
		t.Errorf("second Hello took %d bytes, first %d: no shared window", sizes[1], sizes[0])
	}
}

func protocolText(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "*3\r\n$3\r\nSET\r\n$8\r\nuser:%03d\r\n$40\r\n{\"name\":\"user %d\",\"active\":true,\"n\":%d}\r\n", i%1000, i, i*7)
	}
	return b.Bytes()[:n]
}

// TestRoundTrip compresses streams of messages with and without context
// takeover and every window size, and inflates them back.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	random := make([]byte, 100000)
	rand.Read(random)
	for _, takeover := range []bool{true, false} {
		for bits := 8; bits <= 15; bits++ {
			t.Run(fmt.Sprintf("takeover=%v/bits=%d", takeover, bits), func(t *testing.T) {
				t.Parallel()
				c := NewCompressor(Options{Threshold: -1}, bits, takeover)
				d := NewDecompressor(takeover)
				text := protocolText(300000)
				for i, size := range []int{0, 1, 100, 5000, 70000, 300000} {
					msg := text[i*17 : i*17+size]
					if i == 3 {
						msg = random[:size]
					}
					z, err := c.Compress(msg, nil)
					if err != nil {
						t.Fatal(err)
					}
					got, err := inflateAll(t, d, z, int64(size))
					c.Done()
					if err != nil || !bytes.Equal(got, msg) {
						t.Fatalf("message %d (%d bytes): got %d bytes, %v", i, size, len(got), err)
					}
				}
			})
		}
	}
}

// TestStreamingAndIdleRelease compresses a message in pieces, releases the
// flate state as an idle sender does, and resumes from the dictionary.
func TestStreamingAndIdleRelease(t *testing.T) {
	t.Parallel()
	c := NewCompressor(Options{}, 0, true)
	d := NewDecompressor(true)
	text := protocolText(50000)
	send := func(msg []byte, pieces int) []byte {
		c.Begin()
		var z []byte
		step := len(msg)/pieces + 1
		for p := msg; len(p) > 0; {
			n := min(step, len(p))
			out, err := c.Write(p[:n])
			if err != nil {
				t.Fatal(err)
			}
			z = append(z, out...)
			p = p[n:]
		}
		out, err := c.End()
		if err != nil {
			t.Fatal(err)
		}
		z = append(z, out...)
		c.Done()
		return z
	}
	for round := 0; round < 3; round++ {
		msg := text[round*1000 : round*1000+20000]
		z := send(msg, 5)
		got, err := inflateAll(t, d, z, 1<<20)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("round %d: %d bytes, %v", round, len(got), err)
		}
		if !c.Held() {
			t.Fatal("takeover compressor released its state right after a message")
		}
		if !c.ReleaseIfIdle() {
			t.Fatal("first idle check after a message released the state")
		}
		if c.ReleaseIfIdle() || c.Held() {
			t.Fatal("second idle check kept the state")
		}
	}
}

func TestInflateLimits(t *testing.T) {
	t.Parallel()
	// A bomb: 10 MiB of zeros compresses to about 10 KiB.
	c := NewCompressor(Options{Threshold: -1}, 0, false)
	bomb, err := c.Compress(make([]byte, 10<<20), nil)
	if err != nil {
		t.Fatal(err)
	}
	bomb = append([]byte(nil), bomb...)
	c.Done()
	d := NewDecompressor(false)
	got, err := inflateAll(t, d, bomb, 1<<20)
	if !errors.Is(err, ErrTooBig) {
		t.Fatalf("bomb: err = %v", err)
	}
	if len(got) > 1<<20 {
		t.Fatalf("bomb produced %d bytes past a 1 MiB limit", len(got))
	}
	// Exactly at the limit is fine.
	if got, err := inflateAll(t, d, bomb, 10<<20); err != nil || len(got) != 10<<20 {
		t.Fatalf("at the limit: %d bytes, %v", len(got), err)
	}
	// Corrupt data: a block of reserved type 3.
	if _, err := inflateAll(t, d, []byte{0xff, 0xff, 0xff}, 100); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt: err = %v", err)
	}
}

func TestWorth(t *testing.T) {
	t.Parallel()
	c := NewCompressor(Options{}, 0, true)
	random := make([]byte, 8192)
	rand.Read(random)
	tests := []struct {
		name string
		p    []byte
		want bool
	}{
		{"short", []byte(strings.Repeat("a", 255)), false},
		{"text", protocolText(4096), true},
		{"random", random, false},
	}
	for _, tt := range tests {
		if got := c.Worth(len(tt.p), tt.p); got != tt.want {
			t.Errorf("%s: Worth = %v, want %v", tt.name, got, tt.want)
		}
	}
	if !NewCompressor(Options{Threshold: -1}, 0, true).Worth(2, []byte("ab")) {
		t.Error("negative threshold does not compress short messages")
	}
}

// TestPooledWriterForgetsDictionary: a writer that resumed one connection
// from its dictionary and went back to the pool must not carry that
// dictionary into another connection's messages.
func TestPooledWriterForgetsDictionary(t *testing.T) {
	text := protocolText(20000)
	a := NewCompressor(Options{Threshold: -1}, 0, true)
	a.Compress(text[:10000], nil)
	a.Done()
	a.ReleaseIfIdle()
	a.ReleaseIfIdle() // back to the pool, dictionary kept
	a.Compress(text[10000:], nil)
	a.Done()
	a.ReleaseIfIdle()
	a.ReleaseIfIdle() // the writer that had the dictionary is pooled again
	b := NewCompressor(Options{Threshold: -1}, 0, false)
	z, err := b.Compress(text[10000:12000], nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := inflateAll(t, NewDecompressor(false), z, 1<<20)
	b.Done()
	if err != nil || !bytes.Equal(got, text[10000:12000]) {
		t.Fatalf("fresh decompressor read %d bytes, %v", len(got), err)
	}
}
