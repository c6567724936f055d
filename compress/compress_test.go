package compress

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/klauspost/compress/flate"
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

// TestInflateAnyLimit inflates "Hello" under limits up to math.MaxInt64,
// where limit+1 overflows, and below its size.
func TestInflateAnyLimit(t *testing.T) {
	t.Parallel()
	hello := []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}
	tests := []struct {
		limit   int64
		tooBig  bool
		bufSize int
	}{
		{math.MaxInt64, false, 1000},
		{math.MaxInt64 - 1, false, 1000},
		{math.MaxInt64, false, 1},
		{5, false, 1000},
		{5, false, 5},
		{4, true, 1000},
		{0, true, 1000},
		{-1, true, 1000},
		{math.MinInt64, true, 1000},
	}
	for _, tt := range tests {
		d := NewDecompressor(false)
		if err := d.Begin(append(append([]byte(nil), hello...), deflateTail...), tt.limit); err != nil {
			t.Fatal(err)
		}
		var out []byte
		buf := make([]byte, tt.bufSize)
		var err error
		for i := 0; i < 100; i++ {
			var n int
			n, err = d.Read(buf)
			out = append(out, buf[:n]...)
			if err != nil {
				break
			}
			if n == 0 {
				t.Fatalf("limit %d: Read returned (0, nil)", tt.limit)
			}
		}
		d.End()
		if tt.tooBig {
			if !errors.Is(err, ErrTooBig) || int64(len(out)) > max(tt.limit, 0) {
				t.Errorf("limit %d: %q, %v; want ErrTooBig", tt.limit, out, err)
			}
			continue
		}
		if err != io.EOF || string(out) != "Hello" {
			t.Errorf("limit %d, %d-byte reads: %q, %v", tt.limit, tt.bufSize, out, err)
		}
	}
}

// TestInflateAfterFinalBlock checks what may follow a block with BFINAL
// set. RFC 7692 section 7.2.1 has the sender append an empty stored block
// and strip its last four octets, so after the final block the input (with
// the 00 00 ff ff the receiver appends) is 00 00 ff ff when the block's
// header bits fit in the final block's last octet, or 00 00 00 ff ff when
// they take an octet of their own (section 7.2.3.4). Anything else is
// corrupt.
func TestInflateAfterFinalBlock(t *testing.T) {
	t.Parallel()
	final := unhexBytes("f3 48 cd c9 c9 07 00")                        // "Hello", BFINAL, fixed Huffman
	stored := append(unhexBytes("01 05 00 fa ff"), []byte("Hello")...) // "Hello", BFINAL, stored
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name    string
		payload []byte
		ok      bool
	}{
		{"header octet (RFC 7692 7.2.3.4)", cat(final, []byte{0}), true},
		{"header bits in the final octet", final, true},
		{"stored final block and header octet", cat(stored, []byte{0}), true},
		{"stored final block", stored, true},
		{"a second header octet", cat(final, []byte{0, 0}), false},
		{"header octet not zero", cat(final, []byte{1}), false},
		{"junk after the final block", cat(final, []byte("junk")), false},
		{"another final block", cat(final, final, []byte{0}), false},
		{"whole empty stored block, tail not stripped", cat(final, unhexBytes("00 00 00 ff ff")), false},
		{"sync-flushed block after the final block", cat(final, []byte{0}, unhexBytes("f2 48 cd c9 c9 07 00")), false},
	}
	for _, tt := range tests {
		got, err := inflateAll(t, NewDecompressor(false), tt.payload, 100)
		if tt.ok {
			if err != nil || string(got) != "Hello" {
				t.Errorf("%s: %q, %v", tt.name, got, err)
			}
			continue
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %q, %v; want ErrCorrupt", tt.name, got, err)
		}
	}
	// What real deflaters produce when they end a message with a final
	// block (Close), with and without the header octet.
	msg := protocolText(5000)
	for _, level := range []int{flate.HuffmanOnly, flate.NoCompression, flate.BestSpeed, flate.DefaultCompression, flate.BestCompression} {
		var buf bytes.Buffer
		w, _ := flate.NewWriter(&buf, level)
		w.Write(msg)
		w.Close()
		for _, p := range [][]byte{buf.Bytes(), cat(buf.Bytes(), []byte{0})} {
			got, err := inflateAll(t, NewDecompressor(false), p, 1<<20)
			if err != nil || !bytes.Equal(got, msg) {
				t.Errorf("level %d, %d bytes: %d bytes, %v", level, len(p), len(got), err)
			}
		}
	}
}

// TestTakeoverAfterFinalBlock: a message that ends with a final block
// ends its deflate stream, but with context takeover the window goes on,
// so the next message (a new stream) may refer to it.
func TestTakeoverAfterFinalBlock(t *testing.T) {
	t.Parallel()
	d := NewDecompressor(true)
	for i, p := range [][]byte{unhexBytes("f3 48 cd c9 c9 07 00 00"), unhexBytes("f2 00 11 00 00")} {
		got, err := inflateAll(t, d, p, 100)
		if err != nil || string(got) != "Hello" {
			t.Fatalf("message %d: %q, %v", i, got, err)
		}
	}
}

func unhexBytes(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}
