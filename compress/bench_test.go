package compress

import (
	"bytes"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"testing"
)

// payloads are the three kinds the issue names: protocol text (a Redis
// command stream carrying JSON), already-compressed bytes (a deflate
// stream), and random bytes; 16 KiB messages.
func payloads() map[string][][]byte {
	const n, size = 64, 16 << 10
	text := protocolText(n * size)
	// Deflate of varied JSON (random ids and amounts), as a gzip'd
	// response would be.
	var src bytes.Buffer
	r := mrand.New(mrand.NewPCG(1, 2))
	for src.Len() < 6*n*size {
		fmt.Fprintf(&src, `{"id":"%016x","user":"u%d","amount":%d.%02d,"tags":["%x","%x"]}`+"\n", r.Uint64(), r.IntN(1e6), r.IntN(1e5), r.IntN(100), r.Uint32(), r.Uint32())
	}
	var gz bytes.Buffer
	c := NewCompressor(Options{Threshold: -1, Level: 9}, 0, false)
	z, _ := c.Compress(src.Bytes(), nil)
	gz.Write(z)
	c.Done()
	random := make([]byte, n*size)
	rand.Read(random)
	out := map[string][][]byte{}
	for name, all := range map[string][]byte{"text": text, "compressed": gz.Bytes(), "random": random} {
		for i := 0; i < n; i++ {
			out[name] = append(out[name], all[i*size:(i+1)*size])
		}
	}
	return out
}

// BenchmarkCompress compresses 16 KiB messages with context takeover, as a
// connection sends them, and reports the wire ratio; incompressible
// payloads are skipped by Worth, as the connection would.
func BenchmarkCompress(b *testing.B) {
	for name, msgs := range payloads() {
		b.Run(name, func(b *testing.B) {
			c := NewCompressor(Options{}, 0, true)
			var in, out int64
			b.SetBytes(int64(len(msgs[0])))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				m := msgs[i%len(msgs)]
				i++
				in += int64(len(m))
				if !c.Worth(len(m), m) {
					out += int64(len(m))
					continue
				}
				z, err := c.Compress(m, nil)
				if err != nil {
					b.Fatal(err)
				}
				out += int64(len(z))
				c.Done()
			}
			b.ReportMetric(float64(out)/float64(in), "ratio")
		})
	}
}

// BenchmarkDecompress inflates the same messages with context takeover.
func BenchmarkDecompress(b *testing.B) {
	for name, msgs := range payloads() {
		if name == "random" {
			continue // sent uncompressed: nothing to inflate
		}
		b.Run(name, func(b *testing.B) {
			c := NewCompressor(Options{Threshold: -1}, 0, false)
			var zs [][]byte
			for _, m := range msgs {
				z, _ := c.Compress(m, nil)
				zs = append(zs, append(append([]byte(nil), z...), deflateTail...))
				c.Done()
			}
			d := NewDecompressor(false)
			buf := make([]byte, 32<<10)
			b.SetBytes(int64(len(msgs[0])))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := d.Begin(zs[i%len(zs)], 1<<20); err != nil {
					b.Fatal(err)
				}
				i++
				for {
					_, err := d.Read(buf)
					if err != nil {
						if err.Error() != "EOF" {
							b.Fatal(fmt.Sprint(err))
						}
						break
					}
				}
				d.End()
			}
		})
	}
}
