package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/tunnel"
)

// The sizes every round trip covers: the edges of the 7-bit, 16-bit and
// 64-bit length forms, then large messages.
var interopSizes = []int{0, 1, 125, 126, 127, 65535, 65536, 1 << 20, bigMessage}

// bigMessage is sent only in the combinations bigCase allows, to keep the
// run short; the peer scripts make the same choice.
const bigMessage = 16 << 20

func bigCase(typ tunnel.MessageType, fragmented bool) bool {
	return (typ == tunnel.MessageBinary && !fragmented) || (typ == tunnel.MessageText && fragmented)
}

// TestInteropDial runs our client (tunnel.Dial) against each peer's echo
// server.
func TestInteropDial(t *testing.T) {
	t.Parallel()
	for _, p := range peers {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			p.require(t)
			srv := startPeerServer(t, p)
			base, serverLog := srv.url, srv.stderr
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("%s server stderr:\n%s", p.name, serverLog)
				}
			})
			t.Run("echo", func(t *testing.T) {
				t.Parallel()
				testDialEcho(t, base+"/")
			})
			t.Run("server-closes-4000", func(t *testing.T) {
				t.Parallel()
				testDialServerClose(t, base+"/close?code=4000&reason=bye")
			})
			t.Run("invalid-utf8-from-us", func(t *testing.T) {
				t.Parallel()
				testDialInvalidUTF8(t, base+"/")
			})
		})
	}
}

// message is one data message read by a reader goroutine.
type message struct {
	typ  tunnel.MessageType
	data []byte
}

// startReader reads c until it fails, so that Ping and Close see the
// peer's answers. Messages go to the first channel; the error that ended
// reading to the second.
func startReader(ctx context.Context, c *tunnel.Conn) (<-chan message, <-chan error) {
	msgs := make(chan message, 1)
	done := make(chan error, 1)
	go func() {
		for {
			typ, data, err := c.Read(ctx)
			if err != nil {
				done <- err
				return
			}
			msgs <- message{typ, data}
		}
	}()
	return msgs, done
}

func dial(t *testing.T, ctx context.Context, url string) *tunnel.Conn {
	t.Helper()
	c, _, err := tunnel.Dial(ctx, url, &tunnel.DialOptions{ReadLimit: interopReadLimit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func testDialEcho(t *testing.T, url string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := dial(t, ctx, url)
	msgs, readDone := startReader(ctx, c)
	for _, size := range interopSizes {
		for _, typ := range []tunnel.MessageType{tunnel.MessageText, tunnel.MessageBinary} {
			for _, fragmented := range []bool{false, true} {
				if size == bigMessage && !bigCase(typ, fragmented) {
					continue
				}
				what := fmt.Sprintf("%v message of %d bytes (fragmented %v)", typ, size, fragmented)
				want := payload(typ, size)
				if err := send(ctx, c, typ, want, fragmented); err != nil {
					t.Fatalf("send %s: %v", what, err)
				}
				if err := c.Ping(ctx); err != nil {
					t.Fatalf("ping after %s: %v", what, err)
				}
				select {
				case m := <-msgs:
					if m.typ != typ || !bytes.Equal(m.data, want) {
						t.Fatalf("%s came back as %v message of %d bytes, different", what, m.typ, len(m.data))
					}
				case err := <-readDone:
					t.Fatalf("waiting for the echo of %s: %v", what, err)
				}
			}
		}
	}
	if err := c.Close(tunnel.StatusNormalClosure, "done"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	err := <-readDone
	if tunnel.CloseStatus(err) != tunnel.StatusNormalClosure {
		t.Fatalf("after Close, Read returned %v, want a CloseError with 1000", err)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Close returned before the connection ended")
	}
}

// send writes p as one message, whole or as fragments from our Writer.
// Fragments are cut at byte offsets, inside runes too, so the peer must
// validate UTF-8 across fragments.
func send(ctx context.Context, c *tunnel.Conn, typ tunnel.MessageType, p []byte, fragmented bool) error {
	if !fragmented {
		return c.Write(ctx, typ, p)
	}
	w, err := c.Writer(ctx, typ)
	if err != nil {
		return err
	}
	for rest := p; len(rest) > 0; {
		n := min(len(rest), 1+len(p)/3)
		if _, err := w.Write(rest[:n]); err != nil {
			w.Close()
			return err
		}
		rest = rest[n:]
	}
	return w.Close()
}

func testDialServerClose(t *testing.T, url string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := dial(t, ctx, url)
	if err := c.Write(ctx, tunnel.MessageText, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	typ, data, err := c.Read(ctx)
	if err != nil || typ != tunnel.MessageText || string(data) != "hello" {
		t.Fatalf("Read = %v %q %v, want the echo of hello", typ, data, err)
	}
	_, _, err = c.Read(ctx)
	if err := checkCloseError(err, &tunnel.CloseError{Code: 4000, Reason: "bye"}); err != nil {
		t.Fatalf("Read after the server closed: %v", err)
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("the connection did not end after the close handshake")
	}
}

// testDialInvalidUTF8 sends a text message that is not UTF-8 (Write does
// not check): the peer must fail the connection with 1007, and our Read
// must report the peer's close.
func testDialInvalidUTF8(t *testing.T, url string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := dial(t, ctx, url)
	if err := c.Write(ctx, tunnel.MessageText, []byte{'f', 0xff, 0xfe}); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.Read(ctx)
	if err := checkCloseError(err, &tunnel.CloseError{Code: tunnel.StatusInvalidPayload}); err != nil {
		t.Fatalf("Read after sending invalid UTF-8: %v", err)
	}
}

// TestInteropAccept runs each peer's client against our echo server
// (tunnel.Accept).
func TestInteropAccept(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		query string   // on the echo server's URL
		args  []string // after `client URL`
		// wantPeer is how the peer's last stdout line, `close CODE
		// REASON`, must start.
		wantPeer string
		// wantServer is how our side's connection must end; nil means
		// Close returned nil (the handshake completed).
		wantServer  *tunnel.CloseError
		invalidUTF8 bool // needs a peer that can send invalid UTF-8
	}{{
		name:       "echo",
		wantPeer:   "close 1000 ",
		wantServer: &tunnel.CloseError{Code: 1000},
	}, {
		name: "peer-closes-4002",
		// Small messages only: the echo case covers the sizes.
		args:       []string{"--max", "125", "--close", "4002", "--reason", "peer bye"},
		wantPeer:   "close 4002 ",
		wantServer: &tunnel.CloseError{Code: 4002, Reason: "peer bye"},
	}, {
		name:     "server-closes-4001",
		query:    "?close=4001&reason=server+bye",
		args:     []string{"--wait-close"},
		wantPeer: "close 4001 server bye",
	}, {
		name:       "message-too-big",
		query:      "?limit=1024",
		args:       []string{"--send-binary", "2048"},
		wantPeer:   "close 1009 ",
		wantServer: &tunnel.CloseError{Code: tunnel.StatusMessageTooBig, Local: true},
	}, {
		name:        "invalid-utf8-from-peer",
		args:        []string{"--send-invalid-utf8"},
		wantPeer:    "close 1007 ",
		wantServer:  &tunnel.CloseError{Code: tunnel.StatusInvalidPayload, Local: true},
		invalidUTF8: true,
	}}
	for _, p := range peers {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			p.require(t)
			for _, tc := range cases {
				if tc.invalidUTF8 && !p.sendsInvalidUTF8 {
					continue // this peer cannot send invalid UTF-8 through its API
				}
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					s := startEchoServer(t)
					res := runPeerClient(t, p, s.url+tc.query, tc.args...)
					if res.err != nil {
						t.Fatalf("%s client: %v\nstderr:\n%s", p.name, res.err, res.stderr)
					}
					if got := res.closeLine(); !strings.HasPrefix(got, tc.wantPeer) {
						t.Errorf("%s client ended with %q, want %q...\nstderr:\n%s", p.name, got, tc.wantPeer, res.stderr)
					}
					err := s.wait(t)
					if tc.wantServer == nil {
						if err != nil {
							t.Errorf("our Close: %v", err)
						}
					} else if err := checkCloseError(err, tc.wantServer); err != nil {
						t.Errorf("our side: %v", err)
					}
				})
			}
		})
	}
}

// payload returns size bytes to send: random for binary, UTF-8 that mixes
// 1- and 2-byte runes for text.
func payload(typ tunnel.MessageType, size int) []byte {
	if typ == tunnel.MessageBinary {
		b := make([]byte, size)
		rand.Read(b)
		return b
	}
	b := []byte(strings.Repeat("ferry-τ ", size/9+1))[:size]
	if size > 0 && b[size-1] >= 0xC0 {
		b[size-1] = ' ' // a rune cut at the end becomes a space
	}
	return b
}
