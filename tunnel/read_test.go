package tunnel

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func closePayload(code StatusCode, reason string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(code))
	return append(b, reason...)
}

// TestViolations sends each protocol violation of RFC 6455 sections 5–7 to
// a Conn, as server and as client, and checks the close code it fails with,
// both on the wire and as the error Read returns.
func TestViolations(t *testing.T) {
	t.Parallel()
	type frame struct {
		fin bool
		rsv byte
		op  Opcode
		p   []byte
	}
	text := func(fin bool, p string) frame { return frame{fin, 0, OpText, []byte(p)} }
	cont := func(fin bool, p string) frame { return frame{fin, 0, OpContinuation, []byte(p)} }
	tests := []struct {
		name   string
		frames []frame
		raw    []byte // sent as is after the frames (the masking bit is set for a server)
		code   StatusCode
	}{
		{"rsv1 without extension", []frame{{true, 4, OpText, []byte("a")}}, nil, StatusProtocolError},
		{"rsv2", []frame{{true, 2, OpBinary, []byte("a")}}, nil, StatusProtocolError},
		{"rsv3", []frame{{true, 1, OpBinary, nil}}, nil, StatusProtocolError},
		{"reserved data opcode 3", []frame{{true, 0, 3, nil}}, nil, StatusProtocolError},
		{"reserved data opcode 7", []frame{{true, 0, 7, nil}}, nil, StatusProtocolError},
		{"reserved control opcode 0xB", []frame{{true, 0, 0xB, nil}}, nil, StatusProtocolError},
		{"reserved control opcode 0xF", []frame{{true, 0, 0xF, nil}}, nil, StatusProtocolError},
		{"ping of 126 bytes", []frame{{true, 0, OpPing, make([]byte, 126)}}, nil, StatusProtocolError},
		{"fragmented ping", []frame{{false, 0, OpPing, []byte("x")}}, nil, StatusProtocolError},
		{"fragmented close", []frame{{false, 0, OpClose, closePayload(1000, "")}}, nil, StatusProtocolError},
		{"continuation without start", []frame{cont(true, "x")}, nil, StatusProtocolError},
		{"text inside fragmented message", []frame{text(false, "a"), text(true, "b")}, nil, StatusProtocolError},
		{"binary inside fragmented message", []frame{text(false, "a"), {true, 0, OpBinary, nil}}, nil, StatusProtocolError},
		{"invalid UTF-8", []frame{text(true, "\xff")}, nil, StatusInvalidPayload},
		{"invalid UTF-8 in first fragment fails fast", []frame{text(false, "ok \xc3\x28")}, nil, StatusInvalidPayload},
		{"surrogate half", []frame{text(true, "\xed\xa0\x80")}, nil, StatusInvalidPayload},
		{"text ends inside a rune", []frame{text(false, "\xce"), cont(true, "")}, nil, StatusInvalidPayload},
		{"too big single frame", []frame{{true, 0, OpBinary, make([]byte, 1025)}}, nil, StatusMessageTooBig},
		{"too big over fragments", []frame{{false, 0, OpBinary, make([]byte, 600)}, cont(true, strings.Repeat("x", 600))}, nil, StatusMessageTooBig},
		{"close with one byte", []frame{{true, 0, OpClose, []byte{3}}}, nil, StatusProtocolError},
		{"close code 999", []frame{{true, 0, OpClose, closePayload(999, "")}}, nil, StatusProtocolError},
		{"close code 1004", []frame{{true, 0, OpClose, closePayload(1004, "")}}, nil, StatusProtocolError},
		{"close code 1005", []frame{{true, 0, OpClose, closePayload(1005, "")}}, nil, StatusProtocolError},
		{"close code 1006", []frame{{true, 0, OpClose, closePayload(1006, "")}}, nil, StatusProtocolError},
		{"close code 1015", []frame{{true, 0, OpClose, closePayload(1015, "")}}, nil, StatusProtocolError},
		{"close code 1016", []frame{{true, 0, OpClose, closePayload(1016, "")}}, nil, StatusProtocolError},
		{"close code 2999", []frame{{true, 0, OpClose, closePayload(2999, "")}}, nil, StatusProtocolError},
		{"close code 5000", []frame{{true, 0, OpClose, closePayload(5000, "")}}, nil, StatusProtocolError},
		{"close reason not UTF-8", []frame{{true, 0, OpClose, closePayload(1000, "\xff")}}, nil, StatusInvalidPayload},
		{"length with top bit set", nil, unhex("82 7f 80 00 00 00 00 00 00 01"), StatusProtocolError},
	}
	for _, side := range []string{"server", "client"} {
		client := side == "client"
		for _, tt := range tests {
			t.Run(side+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				c, peer := rawPeer(t, client, 1024)
				var wire []byte
				for _, f := range tt.frames {
					wire = append(wire, rawFrame(f.fin, f.rsv, f.op, !client, f.p)...)
				}
				raw := append([]byte(nil), tt.raw...)
				if len(raw) > 1 && !client {
					raw[1] |= 0x80
					raw = append(raw, 0, 0, 0, 0)
				}
				wire = append(wire, raw...)
				go peer.Write(wire)
				errc := make(chan error, 1)
				go func() {
					_, _, err := c.Read(context.Background())
					errc <- err
				}()
				op, p := readRawFrame(t, peer)
				if op != OpClose || len(p) < 2 || StatusCode(binary.BigEndian.Uint16(p)) != tt.code {
					t.Fatalf("peer got %v %x, want close %d", op, p, tt.code)
				}
				peer.Close() // as a peer does once it has the close frame
				err := <-errc
				var ce *CloseError
				if !errors.As(err, &ce) || ce.Code != tt.code || !ce.Local {
					t.Fatalf("Read error = %v, want a local close with %d", err, tt.code)
				}
				// Every later call returns the same error.
				if err := c.Write(context.Background(), MessageText, []byte("x")); CloseStatus(err) != tt.code {
					t.Fatalf("Write after failure = %v", err)
				}
			})
		}
	}
	t.Run("server/unmasked client frame", func(t *testing.T) {
		t.Parallel()
		c, peer := rawPeer(t, false, 0)
		go peer.Write(rawFrame(true, 0, OpText, false, []byte("hi")))
		if _, _, err := c.Read(context.Background()); CloseStatus(err) != StatusProtocolError {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("client/masked server frame", func(t *testing.T) {
		t.Parallel()
		c, peer := rawPeer(t, true, 0)
		go peer.Write(rawFrame(true, 0, OpText, true, []byte("hi")))
		if _, _, err := c.Read(context.Background()); CloseStatus(err) != StatusProtocolError {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestFragmentsAndControl reads a fragmented message with pings between its
// fragments: each ping is answered with the same payload, an unsolicited
// pong is ignored, and the message arrives whole.
func TestFragmentsAndControl(t *testing.T) {
	t.Parallel()
	c, peer := rawPeer(t, false, 0)
	var wire []byte
	wire = append(wire, rawFrame(false, 0, OpText, true, []byte("Hel"))...)
	wire = append(wire, rawFrame(true, 0, OpPing, true, []byte("p1"))...)
	wire = append(wire, rawFrame(true, 0, OpPong, true, []byte("unsolicited"))...)
	wire = append(wire, rawFrame(false, 0, OpContinuation, true, nil)...)
	wire = append(wire, rawFrame(true, 0, OpPing, true, nil)...)
	wire = append(wire, rawFrame(true, 0, OpContinuation, true, []byte("lo, κόσμε"))...)
	go peer.Write(wire)
	typ, msg, err := c.Read(context.Background())
	if err != nil || typ != MessageText || string(msg) != "Hello, κόσμε" {
		t.Fatalf("Read = %v %q %v", typ, msg, err)
	}
	for _, want := range []string{"p1", ""} {
		op, p := readRawFrame(t, peer)
		if op != OpPong || string(p) != want {
			t.Fatalf("got %v %q, want pong %q", op, p, want)
		}
	}
}

// TestBoundaryLengths round-trips messages at the length-form boundaries
// between two Conns over TCP, whole and streamed.
func TestBoundaryLengths(t *testing.T) {
	t.Parallel()
	a, b := tcpPair(t)
	client := newConn(a, nil, true, "", 4<<20)
	server := newConn(b, nil, false, "", 4<<20)
	defer client.CloseNow()
	defer server.CloseNow()
	ctx := context.Background()
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 3 << 20} {
		want := bytes.Repeat([]byte{byte(n)}, n)
		for i := range want {
			want[i] = byte(i * 31)
		}
		for _, pair := range [][2]*Conn{{client, server}, {server, client}} {
			w, r := pair[0], pair[1]
			done := make(chan error, 1)
			go func() { done <- w.Write(ctx, MessageBinary, want) }()
			typ, got, err := r.Read(ctx)
			if err != nil || typ != MessageBinary || !bytes.Equal(got, want) {
				t.Fatalf("len %d: Read = %v, %d bytes, %v", n, typ, len(got), err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			// Streamed in three fragments, read through Reader.
			go func() {
				mw, err := w.Writer(ctx, MessageBinary)
				if err != nil {
					done <- err
					return
				}
				mw.Write(want[:n/3])
				mw.Write(want[n/3 : 2*n/3])
				mw.Write(want[2*n/3:])
				done <- mw.Close()
			}()
			typ, rd, err := r.Reader(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, err := buf.ReadFrom(rd); err != nil || typ != MessageBinary || !bytes.Equal(buf.Bytes(), want) {
				t.Fatalf("len %d streamed: %v, %d bytes, %v", n, typ, buf.Len(), err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestReadBufferGrows: a Conn keeps its 4 KiB read buffer through small
// frames and reads through a bulkReadBuf one from the first data frame
// larger than it, with every byte in order across the switch (the small
// frames sent with the large one sit in the old buffer when it happens).
func TestReadBufferGrows(t *testing.T) {
	t.Parallel()
	c, peer := rawPeer(t, false, 0)
	large := make([]byte, 100<<10)
	rand.Read(large)
	msgs := [][]byte{[]byte("small"), []byte("another"), large, []byte("after"), large[:5000]}
	var wire []byte
	for _, m := range msgs {
		wire = append(wire, rawFrame(true, 0, OpBinary, true, m)...)
	}
	go func() { _, _ = peer.Write(wire) }()
	for i, want := range msgs {
		if i == 2 && c.br.Size() != 4096 {
			t.Fatalf("read buffer of %d bytes before the first large frame, want 4096", c.br.Size())
		}
		typ, got, err := c.Read(context.Background())
		if err != nil || typ != MessageBinary || !bytes.Equal(got, want) {
			t.Fatalf("message %d: %v %v, %d bytes, equal %v", i, typ, err, len(got), bytes.Equal(got, want))
		}
	}
	if c.br.Size() != bulkReadBuf {
		t.Fatalf("read buffer of %d bytes after a large frame, want %d", c.br.Size(), bulkReadBuf)
	}
}
