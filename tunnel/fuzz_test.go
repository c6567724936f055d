package tunnel

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ferrygw/ferry/compress"
)

// memConn is an in-memory net.Conn: reads come from a fixed byte string,
// writes are kept (the close frames a fuzzed peer provokes).
type memConn struct {
	r *bytes.Reader
	w bytes.Buffer
}

func (m *memConn) Read(p []byte) (int, error)       { return m.r.Read(p) }
func (m *memConn) Write(p []byte) (int, error)      { return m.w.Write(p) }
func (m *memConn) Close() error                     { return nil }
func (m *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (m *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (m *memConn) SetDeadline(time.Time) error      { return nil }
func (m *memConn) SetReadDeadline(time.Time) error  { return nil }
func (m *memConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzReadFrames feeds arbitrary bytes to a Conn as the peer's frames, as
// server and as client: reading must never panic, every message read must
// respect the rules (text is UTF-8, size within the limit), and the
// connection must end with a close code or an ordinary I/O end.
func FuzzReadFrames(f *testing.F) {
	f.Add(false, unhex("81 85 37 fa 21 3d 7f 9f 4d 51 58"))
	f.Add(true, unhex("81 05 48 65 6c 6c 6f"))
	f.Add(true, unhex("01 03 48 65 6c 89 00 80 02 6c 6f"))
	f.Add(false, rawFrame(true, 0, OpClose, true, closePayload(1000, "bye")))
	f.Add(false, rawFrame(false, 0, OpText, true, []byte("\xce")))
	f.Add(true, unhex("82 7f 80 00 00 00 00 00 00 01"))
	f.Add(true, unhex("82 7e 01 00"))
	f.Add(false, rawFrame(true, 0, OpPing, true, []byte("ping")))
	f.Fuzz(func(t *testing.T, client bool, data []byte) {
		mc := &memConn{r: bytes.NewReader(data)}
		c := newConn(mc, bufio.NewReaderSize(mc, 64), client, "", 4096)
		readAllChecked(t, c, len(data)+1)
	})
}

// readAllChecked reads messages until the Conn fails and checks each: the
// 4096-byte limit holds, text is UTF-8, at most maxMsgs arrive, and the
// end is a *CloseError.
func readAllChecked(t *testing.T, c *Conn, maxMsgs int) {
	for i := 0; ; i++ {
		typ, p, err := c.Read(context.Background())
		if err != nil {
			var ce *CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("Read error %v is not a *CloseError", err)
			}
			return
		}
		if len(p) > 4096 {
			t.Fatalf("message of %d bytes passed the 4096-byte limit", len(p))
		}
		if typ == MessageText && !utf8.Valid(p) {
			t.Fatalf("invalid UTF-8 text accepted: %q", p)
		}
		if i >= maxMsgs {
			t.Fatalf("more than %d messages from this input", maxMsgs)
		}
	}
}

// FuzzHandshakeRequest parses arbitrary bytes as an HTTP request and checks
// it as an opening handshake: no panic, and an accepted request really is a
// valid handshake.
func FuzzHandshakeRequest(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"))
	f.Add([]byte("GET /tunnel HTTP/1.1\r\nHost: x\r\nUpgrade: foo, WebSocket\r\nConnection: keep-alive,upgrade\r\nSec-WebSocket-Key: xqBt3ImNzJbYqRINxEFlkg==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ferry.v1, ferry.token.abc\r\n\r\n"))
	f.Add([]byte("POST / HTTP/1.0\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nSec-WebSocket-Version: 8\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			return
		}
		key, herr := checkRequest(req)
		_ = selectSubprotocol(req.Header, []string{"ferry.v1"})
		if herr != nil {
			if herr.Status < 400 || herr.Reason == "" {
				t.Fatalf("refusal without a status or reason: %+v", herr)
			}
			return
		}
		if req.Method != http.MethodGet || !headerHasToken(req.Header, "Upgrade", "websocket") || len(acceptKey(key)) != 28 {
			t.Fatalf("accepted an invalid handshake: %q", data)
		}
	})
}

// FuzzClosePayload checks the close payload parser: a payload it accepts
// has a code that may be sent and a UTF-8 reason, and encodes back to the
// same bytes.
func FuzzClosePayload(f *testing.F) {
	f.Add(closePayload(1000, "bye"))
	f.Add([]byte{})
	f.Add([]byte{3})
	f.Add(closePayload(1005, ""))
	f.Add(closePayload(4999, "κόσμε"))
	f.Add(closePayload(1000, "\xff"))
	f.Fuzz(func(t *testing.T, p []byte) {
		if len(p) > maxControlPayload {
			return
		}
		code, reason, err := parseClosePayload(p)
		if err != nil {
			if c := CloseStatus(err); c != StatusProtocolError && c != StatusInvalidPayload {
				t.Fatalf("error with code %d", c)
			}
			return
		}
		if len(p) == 0 {
			if code != StatusNoStatusRcvd {
				t.Fatalf("empty payload gave %d", code)
			}
			return
		}
		if !validWireCode(code) || !utf8.ValidString(reason) {
			t.Fatalf("accepted code %d reason %q", code, reason)
		}
		var buf [maxControlPayload]byte
		n := putClosePayload(buf[:], code, reason)
		if !bytes.Equal(buf[:n], p) {
			t.Fatalf("re-encoded %x, want %x", buf[:n], p)
		}
	})
}

// FuzzUTF8 compares the incremental validator, fed in two pieces, with the
// standard library.
func FuzzUTF8(f *testing.F) {
	f.Add([]byte("κόσμε"), 3)
	f.Add([]byte("\xed\xa0\x80"), 1)
	f.Add([]byte("\xf4\x90\x80\x80"), 2)
	f.Add(bytes.Repeat([]byte("aé"), 100), 101)
	f.Fuzz(func(t *testing.T, p []byte, cut int) {
		if cut < 0 || cut > len(p) {
			cut = len(p) / 2
		}
		var v utf8Validator
		got := v.write(p[:cut]) && v.write(p[cut:]) && v.complete()
		if want := utf8.Valid(p); got != want {
			t.Fatalf("validator says %v, utf8.Valid says %v for %q cut at %d", got, want, p, cut)
		}
	})
}

// TestReadNeverPanicsOnTruncation reads every prefix of a valid stream.
func TestReadNeverPanicsOnTruncation(t *testing.T) {
	t.Parallel()
	var wire []byte
	wire = append(wire, rawFrame(false, 0, OpText, true, []byte("Hel"))...)
	wire = append(wire, rawFrame(true, 0, OpPing, true, []byte("p"))...)
	wire = append(wire, rawFrame(true, 0, OpContinuation, true, bytes.Repeat([]byte("lo"), 100))...)
	wire = append(wire, rawFrame(true, 0, OpBinary, true, make([]byte, 70000))...)
	for n := 0; n < len(wire); n += 1 + n/50 {
		mc := &memConn{r: bytes.NewReader(wire[:n])}
		c := newConn(mc, nil, false, "", 0)
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				if CloseStatus(err) != StatusAbnormalClosure {
					t.Fatalf("prefix %d: %v, want 1006", n, err)
				}
				break
			}
		}
	}
}

// FuzzReadCompressedFrames is FuzzReadFrames on a Conn that negotiated
// permessage-deflate, with or without context takeover, so that RSV1
// frames reach the inflater: no panic, inflated messages within the limit,
// text is UTF-8.
func FuzzReadCompressedFrames(f *testing.F) {
	f.Add(true, false, unhex("c1 07 f2 48 cd c9 c9 07 00"))
	f.Add(true, true, unhex("c1 07 f2 48 cd c9 c9 07 00 c1 05 f2 00 11 00 00"))
	f.Add(true, false, unhex("41 03 f2 48 cd 89 00 80 04 c9 c9 07 00"))
	f.Add(false, false, rawFrame(true, 4, OpBinary, true, []byte{0xff, 0xff, 0xff, 0xff}))
	f.Add(false, true, rawFrame(true, 4, OpText, true, []byte{0x00, 0x01, 0x00, 0xfe, 0xff, 0xff}))
	f.Add(true, true, unhex("c1 0d f2 48 05 00 00 00 ff ff ca c9 c9 07 00"))
	f.Fuzz(func(t *testing.T, client, takeover bool, data []byte) {
		mc := &memConn{r: bytes.NewReader(data)}
		c := newConn(mc, bufio.NewReaderSize(mc, 64), client, "", 4096)
		c.enableCompression(compress.Params{ServerNoContextTakeover: !takeover, ClientNoContextTakeover: !takeover}, compress.Options{})
		readAllChecked(t, c, 8*len(data)+9)
	})
}
