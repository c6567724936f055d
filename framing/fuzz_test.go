package framing

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"unicode/utf8"
)

// countReader counts the bytes read from r.
type countReader struct {
	r io.Reader
	n int
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// FuzzLines feeds arbitrary bytes, in reads of at most chunk bytes (0: no
// limit), to a LinesConn whose max is 1 to 32. Every message must be at
// most max bytes of valid UTF-8 without "\n", be the next line of the
// input (ended by "\n", "\r\n" or the end), and the end must be the one
// the next line calls for; the reader never reads more than max+2 bytes
// past the last message besides its buffer.
func FuzzLines(f *testing.F) {
	f.Add(uint8(4), uint8(0), []byte("ab\r\ncd\n"))
	f.Add(uint8(1), uint8(1), []byte("a\r\r\nb"))
	f.Add(uint8(0), uint8(3), []byte("xy\n"))
	f.Add(uint8(31), uint8(0), []byte("日本語\n\xff\n"))
	f.Fuzz(func(t *testing.T, m, chunk uint8, data []byte) {
		max := int(m%32) + 1
		cr := &countReader{r: bytes.NewReader(data)}
		l := NewLines(&fakeConn{r: cr, chunk: int(chunk)}, max)
		pos := 0
		for {
			msg, err := l.Recv(context.Background())
			if cr.n > pos+max+2+readBufSize {
				t.Fatalf("read %d bytes, %d past the last message", cr.n, cr.n-pos)
			}
			if err != nil {
				checkLinesEnd(t, data[pos:], max, err)
				if _, again := l.Recv(context.Background()); again != err {
					t.Fatalf("Recv after %v: %v", err, again)
				}
				return
			}
			if len(msg) > max || !utf8.ValidString(msg) || bytes.IndexByte([]byte(msg), '\n') >= 0 {
				t.Fatalf("message %q (max %d)", msg, max)
			}
			rest := data[pos:]
			if !bytes.HasPrefix(rest, []byte(msg)) {
				t.Fatalf("message %q, input at %d is %q", msg, pos, rest)
			}
			pos += len(msg)
			switch rest = data[pos:]; {
			case bytes.HasPrefix(rest, []byte("\n")):
				pos++
			case bytes.HasPrefix(rest, []byte("\r\n")):
				pos += 2
			case len(rest) != 0:
				t.Fatalf("message %q is followed by %q", msg, rest)
			}
		}
	})
}

// checkLinesEnd checks that err is what the rest of the input calls for.
func checkLinesEnd(t *testing.T, rest []byte, max int, err error) {
	t.Helper()
	line := rest
	if i := bytes.IndexByte(rest, '\n'); i >= 0 {
		line = bytes.TrimSuffix(rest[:i], []byte("\r"))
	}
	switch {
	case len(rest) == 0:
		if err != io.EOF {
			t.Fatalf("at the end: %v", err)
		}
	case len(line) > max:
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("line %q over max %d: %v", line, max, err)
		}
	case !utf8.Valid(line):
		if !errors.Is(err, ErrInvalidUTF8) {
			t.Fatalf("invalid line %q: %v", line, err)
		}
	default:
		t.Fatalf("line %q: %v", line, err)
	}
}

// FuzzU32BE feeds arbitrary bytes, in reads of at most chunk bytes (0: no
// limit), to a U32BEConn whose max is 1 to 16. Every message must be at
// most max bytes, the messages re-encoded must be the start of the input,
// and the end must be the one the rest of the input calls for.
func FuzzU32BE(f *testing.F) {
	f.Add(uint8(4), uint8(0), u32("ab", "", "abcd"))
	f.Add(uint8(0), uint8(1), append(u32("a"), 0, 0, 0))
	f.Add(uint8(2), uint8(2), u32("abc"))
	f.Add(uint8(15), uint8(3), u32("0123456789abcdef")[:10])
	f.Fuzz(func(t *testing.T, m, chunk uint8, data []byte) {
		max := int(m%16) + 1
		u := NewU32BE(&fakeConn{r: bytes.NewReader(data), chunk: int(chunk)}, max)
		var enc []byte
		for {
			msg, err := u.Recv(context.Background())
			if err != nil {
				checkU32BEEnd(t, data[len(enc):], max, err)
				if _, again := u.Recv(context.Background()); again != err {
					t.Fatalf("Recv after %v: %v", err, again)
				}
				return
			}
			if len(msg) > max {
				t.Fatalf("message of %d bytes, max %d", len(msg), max)
			}
			enc = append(enc, u32(string(msg))...)
			if !bytes.HasPrefix(data, enc) {
				t.Fatalf("messages re-encoded are not the input's start:\n% x\n% x", enc, data)
			}
		}
	})
}

// checkU32BEEnd checks that err is what the rest of the input calls for.
func checkU32BEEnd(t *testing.T, rest []byte, max int, err error) {
	t.Helper()
	switch {
	case len(rest) == 0:
		if err != io.EOF {
			t.Fatalf("at the end: %v", err)
		}
	case len(rest) < 4:
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("partial header % x: %v", rest, err)
		}
	case uint64(binary.BigEndian.Uint32(rest)) > uint64(max):
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("header % x over max %d: %v", rest[:4], max, err)
		}
	case 4+int(binary.BigEndian.Uint32(rest)) > len(rest):
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("partial message % x: %v", rest, err)
		}
	default:
		t.Fatalf("rest % x: %v", rest, err)
	}
}
