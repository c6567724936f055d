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
	data     []byte // the current message's input, as given to Begin
	src      bytes.Reader
	fr       io.ReadCloser
	left     int64 // bytes the current message may still inflate to, >= 0
	eof      bool
}

// NewDecompressor returns the decompressor for a receiver that keeps the
// peer's context between messages when takeover is true.
func NewDecompressor(takeover bool) *Decompressor {
	return &Decompressor{takeover: takeover}
}

// Begin starts inflating one message whose compressed payload, with the
// 00 00 ff ff tail already appended, is data (which must stay unchanged
// until End). At most limit bytes may come out, for any limit up to
// math.MaxInt64; a negative limit is 0.
func (d *Decompressor) Begin(data []byte, limit int64) error {
	d.data = data
	d.src.Reset(data)
	d.left = max(limit, 0)
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
	// Compared as len(p)-1 > left (len(p) >= 1 here), since left+1
	// overflows when the limit is math.MaxInt64.
	if int64(len(p))-1 > d.left {
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
			// The message ends at a sync flush (the tail we appended: the
			// flate reader runs out of input looking for the next block)
			// or at a final block (io.EOF), after which only the empty
			// stored block of RFC 7692 section 7.2.1 may follow; see
			// afterFinal. Other input left over means the data was not
			// one deflate stream.
			if err == io.ErrUnexpectedEOF && d.src.Len() > 0 {
				return n, fmt.Errorf("%w: %v", ErrCorrupt, err)
			}
			if err == io.EOF && !afterFinal(d.data[len(d.data)-d.src.Len():]) {
				return n, fmt.Errorf("%w: data after the final block", ErrCorrupt)
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
	d.data = nil
}

// finalTail is what is left of a message's input after a block with
// BFINAL set, when the header of the empty stored block that RFC 7692
// section 7.2.1 has the sender append took an octet of its own (the 0x00
// of section 7.2.3.4), followed by the 00 00 ff ff that the receiver
// appends. When those 3 header bits fit in the final block's last octet,
// only the receiver's 00 00 ff ff is left. klauspost/compress/flate and
// zlib (Z_FINISH) leave one or the other, and the flate reader consumes
// no input past the octet that ends the final block.
var finalTail = []byte{0x00, 0x00, 0x00, 0xff, 0xff}

// afterFinal reports whether rest, the input left after a final block, is
// all that may follow one: the empty stored block's remains (finalTail or
// its last 4 bytes). A deflate stream ends at its final block, so anything
// else (data, another block) is corrupt.
//
// With context takeover the window still carries over: the next message
// is inflated as a new deflate stream whose dictionary is the window, so
// a peer that ends its messages with final blocks (RFC 7692 section
// 7.2.3.4) and starts a new stream preset with its history interoperates.
func afterFinal(rest []byte) bool {
	return bytes.Equal(rest, finalTail) || bytes.Equal(rest, finalTail[1:])
}
