package tunnel

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"math"
	"strconv"
	"strings"
	"testing"
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// TestRFCVectors decodes the examples of RFC 6455 section 5.7.
func TestRFCVectors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		wire    string
		fin     bool
		op      Opcode
		masked  bool
		payload []byte
	}{
		{"unmasked text", "81 05 48 65 6c 6c 6f", true, OpText, false, []byte("Hello")},
		{"masked text", "81 85 37 fa 21 3d 7f 9f 4d 51 58", true, OpText, true, []byte("Hello")},
		{"first fragment", "01 03 48 65 6c", false, OpText, false, []byte("Hel")},
		{"last fragment", "80 02 6c 6f", true, OpContinuation, false, []byte("lo")},
		{"unmasked ping", "89 05 48 65 6c 6c 6f", true, OpPing, false, []byte("Hello")},
		{"masked pong", "8a 85 37 fa 21 3d 7f 9f 4d 51 58", true, OpPong, true, []byte("Hello")},
		{"256 bytes binary", "82 7e 01 00" + strings.Repeat("00", 256), true, OpBinary, false, make([]byte, 256)},
		{"64 KiB binary", "82 7f 00 00 00 00 00 01 00 00" + strings.Repeat("00", 65536), true, OpBinary, false, make([]byte, 65536)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wire := unhex(tt.wire)
			br := bufio.NewReader(bytes.NewReader(wire))
			var h header
			if err := readHeader(br, &h); err != nil {
				t.Fatal(err)
			}
			if h.fin != tt.fin || h.opcode != tt.op || h.masked != tt.masked || h.length != int64(len(tt.payload)) {
				t.Fatalf("header = %+v", h)
			}
			p := make([]byte, h.length)
			if _, err := br.Read(p); err != nil && len(p) > 0 {
				t.Fatal(err)
			}
			if h.masked {
				mask(p, h.key)
			}
			if !bytes.Equal(p, tt.payload) {
				t.Fatalf("payload = %x, want %x", p, tt.payload)
			}
			// Encoding the same header gives the same bytes.
			var buf [maxHeaderSize]byte
			n := putHeader(buf[:], h)
			if !bytes.Equal(buf[:n], wire[:n]) {
				t.Fatalf("putHeader = %x, want %x", buf[:n], wire[:n])
			}
		})
	}
}

// TestHeaderRoundTrip covers the three length forms at their boundaries.
func TestHeaderRoundTrip(t *testing.T) {
	t.Parallel()
	for _, n := range []int64{0, 1, 125, 126, 127, 65535, 65536, 1 << 32, math.MaxInt64} {
		for _, masked := range []bool{false, true} {
			h := header{fin: true, opcode: OpBinary, masked: masked, length: n, key: 0x3d21fa37}
			if !masked {
				h.key = 0
			}
			var buf [maxHeaderSize]byte
			m := putHeader(buf[:], h)
			want := 2
			switch {
			case n > 65535:
				want += 8
			case n > 125:
				want += 2
			}
			if masked {
				want += 4
			}
			if m != want {
				t.Errorf("len %d masked %v: header of %d bytes, want %d", n, masked, m, want)
			}
			var got header
			if err := readHeader(bufio.NewReader(bytes.NewReader(buf[:m])), &got); err != nil {
				t.Fatal(err)
			}
			if got != h {
				t.Errorf("round trip of %+v gave %+v", h, got)
			}
		}
	}
}

func TestHeaderLengthMSB(t *testing.T) {
	t.Parallel()
	wire := unhex("82 7f 80 00 00 00 00 00 00 00")
	var h header
	if err := readHeader(bufio.NewReader(bytes.NewReader(wire)), &h); err != errFrameLength {
		t.Fatalf("err = %v, want errFrameLength", err)
	}
}

func TestMask(t *testing.T) {
	t.Parallel()
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	k := uint32(key[0]) | uint32(key[1])<<8 | uint32(key[2])<<16 | uint32(key[3])<<24
	for _, n := range []int{0, 1, 3, 7, 8, 9, 63, 64, 65, 1000} {
		for split := 0; split <= n; split += 1 + n/5 {
			data := make([]byte, n)
			for i := range data {
				data[i] = byte(i * 7)
			}
			want := append([]byte(nil), data...)
			maskBytewise(want, key, 0)
			got := append([]byte(nil), data...)
			k2 := mask(got[:split], k)
			mask(got[split:], k2)
			if !bytes.Equal(got, want) {
				t.Fatalf("n=%d split=%d: mask differs from the byte loop", n, split)
			}
		}
	}
}

func BenchmarkMask(b *testing.B) {
	for _, size := range []int{64, 4096, 65536} {
		buf := make([]byte, size)
		b.Run("word/"+strconv.Itoa(size), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				mask(buf, 0x3d21fa37)
			}
		})
		b.Run("bytewise/"+strconv.Itoa(size), func(b *testing.B) {
			b.SetBytes(int64(size))
			key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
			for b.Loop() {
				maskBytewise(buf, key, 0)
			}
		})
	}
}

func BenchmarkFrameHeader(b *testing.B) {
	var buf [maxHeaderSize]byte
	h := header{fin: true, opcode: OpBinary, masked: true, length: 70000, key: 1}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			putHeader(buf[:], h)
		}
	})
	n := putHeader(buf[:], h)
	r := bytes.NewReader(buf[:n])
	br := bufio.NewReader(r)
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		var got header
		for b.Loop() {
			r.Reset(buf[:n])
			br.Reset(r)
			if err := readHeader(br, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
}
