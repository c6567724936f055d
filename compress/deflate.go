package compress

import (
	"bytes"
	"errors"
	"sync"

	kcompress "github.com/klauspost/compress"
	"github.com/klauspost/compress/flate"
)

// deflateTail is the empty stored block that a sync flush ends with; RFC
// 7692 section 7.2.1 strips it from every compressed message.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff}

// resumeDictSize is how much of what was sent an idle sender keeps, with
// context takeover, to seed its next compressor (capped by the window):
// history enough for protocol messages of a few KiB, cheap to index when
// the compressor resumes, and small to keep per idle connection.
const resumeDictSize = 4 << 10

// deflater is a flate writer and its output buffer, pooled together.
type deflater struct {
	fw  *flate.Writer
	out bytes.Buffer
}

// The pools are per level and window, since a flate.Writer is fixed to
// both; index [level][bits-8].
var deflaterPools [10][8]sync.Pool

func getDeflater(level, bits int) *deflater {
	p := &deflaterPools[level][bits-8]
	if d, ok := p.Get().(*deflater); ok {
		d.out.Reset()
		return d
	}
	d := &deflater{}
	var err error
	if bits == 15 {
		d.fw, err = flate.NewWriter(&d.out, level)
	} else {
		// klauspost's custom window goes down to 32 bytes, so 8 bits (256
		// bytes), which zlib cannot produce, is honoured exactly.
		d.fw, err = flate.NewWriterWindow(&d.out, 1<<bits)
	}
	if err != nil {
		panic("compress: " + err.Error()) // level and bits are checked by NewCompressor
	}
	return d
}

func putDeflater(level, bits int, d *deflater) {
	if d.out.Cap() > 1<<20 {
		d.out = bytes.Buffer{} // do not pool huge buffers
	}
	deflaterPools[level][bits-8].Put(d)
}

// Compressor compresses the messages one side of a connection sends. It is
// not safe for concurrent use; the connection's writer lock guards it.
type Compressor struct {
	level     int
	bits      int
	takeover  bool
	threshold int

	d    *deflater // held between messages only with context takeover
	dict []byte    // with takeover: the tail of what was sent, while d is released
	uses uint64    // messages compressed, read by the idle check
	seen uint64    // uses at the last idle check
}

// NewCompressor returns the compressor for a sender whose window is limited
// to maxWindowBits (0 means 15) and that keeps context between messages
// when takeover is true.
func NewCompressor(opts Options, maxWindowBits int, takeover bool) *Compressor {
	level := opts.Level
	if level < flate.BestSpeed || level > flate.BestCompression {
		level = DefaultLevel
	}
	if maxWindowBits < 8 || maxWindowBits > 15 {
		maxWindowBits = 15
	}
	threshold := opts.Threshold
	if threshold == 0 {
		threshold = DefaultThreshold
	}
	return &Compressor{level: level, bits: maxWindowBits, takeover: takeover, threshold: threshold}
}

// Worth reports whether a message of size bytes is worth compressing: at
// least the threshold long and, by a cheap entropy estimate of sample (its
// start, or its main part), not already compressed, encrypted or random.
// The estimate looks at 1 KiB at most; on an incompressible message the
// whole check costs about a microsecond (go test -bench Compress/random
// ./compress).
func (c *Compressor) Worth(size int, sample []byte) bool {
	if size < c.threshold {
		return false
	}
	if len(sample) > 1<<10 {
		sample = sample[:1<<10]
	}
	return kcompress.Estimate(sample) >= 0.1 || len(sample) < 64
}

// Begin starts a compressed message.
func (c *Compressor) Begin() {
	if c.d != nil {
		return
	}
	c.d = getDeflater(c.level, c.bits)
	// Always ResetDict: a flate.Writer's Reset re-applies the last
	// dictionary it was given, which a pooled writer may carry from
	// another connection.
	var dict []byte
	if c.takeover {
		dict = c.dict
	}
	c.d.fw.ResetDict(&c.d.out, dict)
}

// Write compresses p as part of the current message and returns the
// compressed bytes produced so far, valid until the next call.
func (c *Compressor) Write(p []byte) ([]byte, error) {
	c.d.out.Reset()
	if _, err := c.d.fw.Write(p); err != nil {
		return nil, err
	}
	if c.takeover {
		c.remember(p)
	}
	return c.d.out.Bytes(), nil
}

// End finishes the message: it flushes, strips the 00 00 ff ff tail and
// returns the last compressed bytes, valid until the next call. Without
// context takeover the flate state goes back to the pool at once.
func (c *Compressor) End() ([]byte, error) {
	c.d.out.Reset()
	if err := c.d.fw.Flush(); err != nil {
		return nil, err
	}
	b := c.d.out.Bytes()
	if !bytes.HasSuffix(b, deflateTail) {
		return nil, errors.New("compress: flush did not end with a sync marker")
	}
	c.uses++
	return b[:len(b)-len(deflateTail)], nil
}

// Done must be called after the bytes End returned were written. Without
// context takeover it returns the flate state to the pool.
func (c *Compressor) Done() {
	if !c.takeover && c.d != nil {
		putDeflater(c.level, c.bits, c.d)
		c.d = nil
	}
}

// Compress compresses a whole message, p followed by q (q may be nil),
// and returns the payload to send, valid until the next call; call Done
// after writing it.
func (c *Compressor) Compress(p, q []byte) ([]byte, error) {
	c.Begin()
	c.d.out.Reset()
	for _, b := range [2][]byte{p, q} {
		if len(b) == 0 {
			continue
		}
		if _, err := c.d.fw.Write(b); err != nil {
			return nil, err
		}
		if c.takeover {
			c.remember(b)
		}
	}
	if err := c.d.fw.Flush(); err != nil {
		return nil, err
	}
	c.uses++
	b := c.d.out.Bytes()
	if !bytes.HasSuffix(b, deflateTail) {
		return nil, errors.New("compress: flush did not end with a sync marker")
	}
	return b[:len(b)-len(deflateTail)], nil
}

// remember keeps the tail of what was sent, to seed the compressor after
// an idle release.
func (c *Compressor) remember(p []byte) {
	max := resumeDictSize
	if w := 1 << c.bits; w < max {
		max = w
	}
	c.dict = appendWindow(c.dict, p, max)
}

// appendWindow appends p to w and keeps only the last max bytes.
func appendWindow(w, p []byte, max int) []byte {
	if len(p) >= max {
		return append(w[:0], p[len(p)-max:]...)
	}
	if len(w)+len(p) > max {
		drop := len(w) + len(p) - max
		w = w[:copy(w, w[drop:])]
	}
	return append(w, p...)
}

// ReleaseIfIdle gives the flate state back to the pool when no message was
// compressed since the previous call, keeping only the dictionary to
// resume from. It reports whether state is still held (so the caller
// checks again later). Call it under the same lock as the other methods.
func (c *Compressor) ReleaseIfIdle() (held bool) {
	if c.d == nil {
		return false
	}
	if c.uses != c.seen {
		c.seen = c.uses
		return true
	}
	putDeflater(c.level, c.bits, c.d)
	c.d = nil
	return false
}

// Held reports whether the compressor holds flate state now.
func (c *Compressor) Held() bool { return c.d != nil }
