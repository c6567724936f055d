package compress

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
)

// ErrTooBig is returned when a message inflates past the limit.
var ErrTooBig = errors.New("compress: inflated message over the limit")

// ErrCorrupt wraps errors in the compressed data.
var ErrCorrupt = errors.New("compress: corrupt deflate data")

var inflaterPool sync.Pool // of io.ReadCloser that are flate.Resetter

// windowSize is the largest back-reference of deflate (15 bits).
const windowSize = 32 << 10

// Decompressor inflates the messages one side of a connection receives.
// With context takeover it keeps the peer's window (the last 32 KiB of
// inflated bytes), allocated on the first compressed message; the flate
// reader itself is pooled and held only while a message is read. It is not
// safe for concurrent use.
type Decompressor struct {
	takeover bool
	window   []byte
	src      bytes.Reader
	fr       io.ReadCloser
	left     int64 // bytes the current message may still inflate to
	eof      bool
}

// NewDecompressor returns the decompressor for a receiver that keeps the
// peer's context between messages when takeover is true.
func NewDecompressor(takeover bool) *Decompressor {
	return &Decompressor{takeover: takeover}
}

// Begin starts inflating one message whose compressed payload, with the
// 00 00 ff ff tail already appended, is data (which must stay unchanged
// until End). At most limit bytes may come out.
func (d *Decompressor) Begin(data []byte, limit int64) error {
	d.src.Reset(data)
	d.left = limit
	d.eof = false
	var dict []byte
	if d.takeover {
		dict = d.window
	}
	if fr, ok := inflaterPool.Get().(io.ReadCloser); ok {
		d.fr = fr
		return fr.(flate.Resetter).Reset(&d.src, dict)
	}
	d.fr = flate.NewReaderDict(&d.src, dict)
	return nil
}

// Read returns inflated bytes of the current message; io.EOF at its end,
// ErrTooBig past the limit, an error wrapping ErrCorrupt on bad data. It
// never returns (0, nil) for a non-empty p.
func (d *Decompressor) Read(p []byte) (int, error) {
	if d.eof {
		return 0, io.EOF
	}
	if d.fr == nil {
		return 0, errors.New("compress: Read outside a message")
	}
	if len(p) == 0 {
		return 0, nil
	}
	// Ask for one byte more than the limit allows, to tell "exactly at the
	// limit" from "over it" without producing more than limit+1 bytes.
	if int64(len(p)) > d.left+1 {
		p = p[:d.left+1]
	}
	for {
		n, err := d.fr.Read(p)
		if int64(n) > d.left {
			return 0, ErrTooBig
		}
		d.left -= int64(n)
		if d.takeover && n > 0 {
			d.keep(p[:n])
		}
		switch {
		case err == nil:
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			// The message ends at a sync flush (the tail we appended) or
			// at a final block. Input left over means the data was not
			// one deflate stream.
			if err == io.ErrUnexpectedEOF && d.src.Len() > 0 {
				return n, fmt.Errorf("%w: %v", ErrCorrupt, err)
			}
			d.eof = true
			if n > 0 {
				return n, nil
			}
			return 0, io.EOF
		default:
			return n, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		if n > 0 {
			return n, nil
		}
	}
}

// keep appends inflated bytes to the window, keeping the last 32 KiB.
func (d *Decompressor) keep(p []byte) {
	if d.window == nil {
		d.window = make([]byte, 0, windowSize)
	}
	d.window = appendWindow(d.window, p, windowSize)
}

// End finishes the message and returns the flate reader to the pool.
func (d *Decompressor) End() {
	if d.fr != nil {
		inflaterPool.Put(d.fr)
		d.fr = nil
	}
	d.src.Reset(nil)
}
