package tunnel

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"math"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/compress"
)

// deflatePeer pairs a Conn that negotiated permessage-deflate with params
// p with the raw TCP end of its peer.
func deflatePeer(t testing.TB, client bool, p compress.Params, limit int64) (*Conn, net.Conn) {
	t.Helper()
	c, peer := rawPeer(t, client, limit)
	c.enableCompression(p, compress.Options{})
	return c, peer
}

// TestCompressedVectors reads the frames of RFC 7692 section 7.2.3 through
// a client Conn.
func TestCompressedVectors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		wire     string
		messages int
		takeover bool
	}{
		{"hello", "c1 07 f2 48 cd c9 c9 07 00", 1, false},
		{"hello fragmented", "41 03 f2 48 cd 80 04 c9 c9 07 00", 1, false},
		{"shared window", "c1 07 f2 48 cd c9 c9 07 00 c1 05 f2 00 11 00 00", 2, true},
		{"no compression block", "c1 0b 00 05 00 fa ff 48 65 6c 6c 6f 00", 1, false},
		{"bfinal block", "c1 08 f3 48 cd c9 c9 07 00 00", 1, false},
		{"two blocks", "c1 0d f2 48 05 00 00 00 ff ff ca c9 c9 07 00", 1, false},
		{"ping inside compressed fragments", "41 03 f2 48 cd 89 01 70 80 04 c9 c9 07 00", 1, false},
		{"bfinal block without the header octet", "c1 07 f3 48 cd c9 c9 07 00", 1, false},
		// A final block ends the deflate stream, not the window: with
		// context takeover the next message may refer to it.
		{"shared window after a bfinal block", "c1 08 f3 48 cd c9 c9 07 00 00 c1 05 f2 00 11 00 00", 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, peer := deflatePeer(t, true, compress.Params{ServerNoContextTakeover: !tt.takeover}, 0)
			go peer.Write(unhex(tt.wire))
			for i := 0; i < tt.messages; i++ {
				typ, p, err := c.Read(context.Background())
				if err != nil || typ != MessageText || string(p) != "Hello" {
					t.Fatalf("message %d: %v %q %v", i, typ, p, err)
				}
			}
		})
	}
}

func TestCompressedViolations(t *testing.T) {
	t.Parallel()
	bomb := func() []byte {
		c := compress.NewCompressor(compress.Options{Threshold: -1}, 0, false)
		z, _ := c.Compress(make([]byte, 8<<20), nil)
		z = append([]byte(nil), z...)
		c.Done()
		return z
	}()
	tests := []struct {
		name string
		wire []byte
		code StatusCode
	}{
		{"rsv1 on ping", rawFrame(true, 4, OpPing, true, nil), StatusProtocolError},
		{"rsv1 on close", rawFrame(true, 4, OpClose, true, closePayload(1000, "")), StatusProtocolError},
		{"rsv1 on continuation", append(rawFrame(false, 4, OpText, true, []byte{0xf2}), rawFrame(true, 4, OpContinuation, true, []byte{0x48})...), StatusProtocolError},
		{"rsv2 with deflate", rawFrame(true, 6, OpText, true, nil), StatusProtocolError},
		{"corrupt deflate data", rawFrame(true, 4, OpBinary, true, []byte{0xff, 0xff, 0xff, 0xff}), StatusInvalidPayload},
		{"bomb", rawFrame(true, 4, OpBinary, true, bomb), StatusMessageTooBig},
		{"inflated text not UTF-8", rawFrame(true, 4, OpText, true, []byte{0x00, 0x01, 0x00, 0xfe, 0xff, 0xff}), StatusInvalidPayload},
		// RFC 7692 7.2.3.4's final block and header octet, then more.
		{"data after the final block", rawFrame(true, 4, OpText, true, unhex("f3 48 cd c9 c9 07 00 00 00")), StatusInvalidPayload},
		{"block after the final block", rawFrame(true, 4, OpBinary, true, unhex("f3 48 cd c9 c9 07 00 00 f2 48 cd c9 c9 07 00")), StatusInvalidPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, peer := deflatePeer(t, false, compress.Params{}, 1<<20)
			go peer.Write(tt.wire)
			errc := make(chan error, 1)
			go func() {
				_, _, err := c.Read(context.Background())
				errc <- err
			}()
			op, p := readRawFrame(t, peer)
			if op != OpClose || len(p) < 2 || StatusCode(uint16(p[0])<<8|uint16(p[1])) != tt.code {
				t.Fatalf("peer got %v %q, want close %d", op, p, tt.code)
			}
			peer.Close()
			if err := <-errc; CloseStatus(err) != tt.code {
				t.Fatalf("Read = %v, want %d", err, tt.code)
			}
		})
	}
	t.Run("rsv1 without negotiation", func(t *testing.T) {
		t.Parallel()
		c, peer := rawPeer(t, false, 0)
		go peer.Write(rawFrame(true, 4, OpText, true, []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}))
		if _, _, err := c.Read(context.Background()); CloseStatus(err) != StatusProtocolError {
			t.Fatalf("Read = %v", err)
		}
	})
}

// TestCompressedEcho negotiates each combination of the four parameters
// through a real handshake and echoes messages of many sizes and kinds,
// whole and streamed, checking the bytes.
func TestCompressedEcho(t *testing.T) {
	t.Parallel()
	text := func(n int) []byte {
		var b bytes.Buffer
		for i := 0; b.Len() < n; i++ {
			fmt.Fprintf(&b, `{"id":%d,"cmd":"GET","key":"user:%d","ok":true} `, i, i%97)
		}
		return b.Bytes()[:n]
	}
	random := make([]byte, 1<<20)
	rand.Read(random)
	offers := []string{
		"permessage-deflate",
		"permessage-deflate; client_max_window_bits",
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover",
		"permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
		"permessage-deflate; server_max_window_bits=10; client_no_context_takeover",
		"permessage-deflate; server_no_context_takeover; client_max_window_bits=9",
	}
	for _, offer := range offers {
		t.Run(offer, func(t *testing.T) {
			t.Parallel()
			srv := echoServer(t, &AcceptOptions{Compression: &compress.Options{}, ReadLimit: 4 << 20})
			c, resp, err := dialWithOffer(t, srv.URL, offer)
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			if resp.Header.Get("Sec-WebSocket-Extensions") == "" {
				t.Fatal("server declined")
			}
			ctx := context.Background()
			for _, size := range []int{0, 1, 255, 256, 4096, 65536, 1 << 20} {
				for _, kind := range []string{"text", "random"} {
					msg := text(size)
					typ := MessageText
					if kind == "random" {
						msg, typ = random[:size], MessageBinary
					}
					if err := c.Write(ctx, typ, msg); err != nil {
						t.Fatal(err)
					}
					gt, got, err := c.Read(ctx)
					if err != nil || gt != typ || !bytes.Equal(got, msg) {
						t.Fatalf("%s %d: %v, %d bytes, %v", kind, size, gt, len(got), err)
					}
					w, err := c.Writer(ctx, typ)
					if err != nil {
						t.Fatal(err)
					}
					for p := msg; len(p) > 0; {
						n := min(len(p), 1+len(p)/4)
						w.Write(p[:n])
						p = p[n:]
					}
					if err := w.Close(); err != nil {
						t.Fatal(err)
					}
					gt, got, err = c.Read(ctx)
					if err != nil || gt != typ || !bytes.Equal(got, msg) {
						t.Fatalf("streamed %s %d: %v, %d bytes, %v", kind, size, gt, len(got), err)
					}
				}
			}
		})
	}
}

// dialWithOffer dials with compression, but sends offer instead of the
// client's standard offer, and configures the client from the answer.
func dialWithOffer(t testing.TB, httpURL, offer string) (*Conn, *http.Response, error) {
	t.Helper()
	u := "ws" + strings.TrimPrefix(httpURL, "http")
	return Dial(context.Background(), u, &DialOptions{
		Compression: &compress.Options{},
		rawOffer:    offer,
	})
}

func TestCompressionDeclined(t *testing.T) {
	t.Parallel()
	srv := echoServer(t, nil) // no compression on the server
	c, _, err := Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), &DialOptions{Compression: &compress.Options{}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if _, ok := c.Compression(); ok {
		t.Fatal("compression in use though the server declined")
	}
	roundTrip(t, c, strings.Repeat("plain ", 100))
}

// TestIdleCompressorReleased checks that a sender with context takeover
// gives its flate state back once idle and resumes correctly.
func TestIdleCompressorReleased(t *testing.T) {
	t.Parallel()
	client, server := dialPair(t)
	client.enableCompression(compress.Params{}, compress.Options{})
	server.enableCompression(compress.Params{}, compress.Options{})
	ctx := context.Background()
	msg := bytes.Repeat([]byte("idle release test "), 100)
	send := func() {
		if err := client.Write(ctx, MessageBinary, msg); err != nil {
			t.Fatal(err)
		}
		if _, p, err := server.Read(ctx); err != nil || !bytes.Equal(p, msg) {
			t.Fatalf("Read: %d bytes, %v", len(p), err)
		}
	}
	send()
	client.msgMu.acquire(ctx, nil)
	held := client.comp.Held()
	client.msgMu.release()
	if !held {
		t.Fatal("no flate state held right after a message")
	}
	// Run the idle check twice, as the timer would.
	client.releaseIdle()
	client.releaseIdle()
	client.msgMu.acquire(ctx, nil)
	held = client.comp.Held()
	client.msgMu.release()
	if held {
		t.Fatal("flate state still held after two idle checks")
	}
	send() // resumes from the dictionary
	send()
}

// TestStalledHugeFrameCostsLittle: a frame header that announces a large
// payload and then stalls must not make the reader allocate that payload.
func TestStalledHugeFrameCostsLittle(t *testing.T) {
	for _, rsv := range []byte{0, 4} { // plain and compressed
		c, peer := deflatePeer(t, false, compress.Params{}, 64<<20)
		hdr := []byte{0x82 | rsv<<4, 0xFF, 0, 0, 0, 0, 0x03, 0xC0, 0, 0, 0, 0, 0, 0} // 60 MiB, masked, key 0
		peer.Write(append(hdr, make([]byte, 10)...))
		var before, during runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		done := make(chan error, 1)
		go func() {
			_, _, err := c.Read(context.Background())
			done <- err
		}()
		// The reader has the header and 10 bytes; give it time to allocate
		// whatever it would.
		time.Sleep(100 * time.Millisecond)
		runtime.ReadMemStats(&during)
		if grew := int64(during.HeapAlloc) - int64(before.HeapAlloc); grew > 8<<20 {
			t.Errorf("rsv %d: heap grew %d MiB for a stalled 60 MiB frame", rsv, grew>>20)
		}
		peer.Close()
		<-done
	}
}

// TestCompressedReadLimitMax reads a compressed message with the read
// limit at math.MaxInt64, where limit+1 overflows.
func TestCompressedReadLimitMax(t *testing.T) {
	t.Parallel()
	for _, limit := range []int64{math.MaxInt64, math.MaxInt64 - 1, 7} {
		c, peer := deflatePeer(t, true, compress.Params{}, 0)
		c.SetReadLimit(limit)
		go peer.Write(unhex("c1 07 f2 48 cd c9 c9 07 00 c1 05 f2 00 11 00 00"))
		for i := 0; i < 2; i++ {
			typ, p, err := c.Read(context.Background())
			if err != nil || typ != MessageText || string(p) != "Hello" {
				t.Fatalf("limit %d, message %d: %v %q %v", limit, i, typ, p, err)
			}
		}
		c.CloseNow()
	}
}
