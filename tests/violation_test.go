package tests

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/tunnel"
)

// TestServerProtocolViolations sends malformed frames over a raw TCP
// connection to our echo server and checks that it fails the connection
// with the close code RFC 6455 names, sends that close frame, and ends TCP.
func TestServerProtocolViolations(t *testing.T) {
	t.Parallel()
	masked := func(b0 byte, payload ...byte) []byte {
		// A client frame: payload under 126 bytes, masked with a zero key
		// so the payload reads as is.
		return append([]byte{b0, 0x80 | byte(len(payload)), 0, 0, 0, 0}, payload...)
	}
	cases := []struct {
		name  string
		frame []byte
		want  tunnel.StatusCode
	}{
		{"unmasked client frame", []byte{0x81, 0x02, 'h', 'i'}, tunnel.StatusProtocolError},
		{"reserved bit without extension", masked(0xC1, 'h', 'i'), tunnel.StatusProtocolError},
		{"reserved opcode", masked(0x83, 'h', 'i'), tunnel.StatusProtocolError},
		{"fragmented ping", masked(0x09), tunnel.StatusProtocolError},
		{"continuation without a message", masked(0x80, 'h', 'i'), tunnel.StatusProtocolError},
		{"text frame inside a fragmented message", append(masked(0x01, 'h'), masked(0x81, 'i')...), tunnel.StatusProtocolError},
		{"close code 1005 on the wire", masked(0x88, 0x03, 0xED), tunnel.StatusProtocolError},
		{"64-bit length with the top bit set", []byte{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, tunnel.StatusProtocolError},
		{"text not UTF-8", masked(0x81, 'f', 0xFF), tunnel.StatusInvalidPayload},
		{"text cut inside a rune", append(masked(0x01, 0xCF), masked(0x80)...), tunnel.StatusInvalidPayload},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startEchoServer(t)
			nc, br := rawHandshake(t, strings.Trim(strings.TrimPrefix(s.url, "ws://"), "/"))
			if _, err := nc.Write(tc.frame); err != nil {
				t.Fatal(err)
			}
			code := readCloseFrame(t, br)
			if code != tc.want {
				t.Errorf("server sent close code %d, want %d", code, tc.want)
			}
			// Like a client that saw the close frame, end our side, so the
			// server need not wait out its drain timeout.
			if err := nc.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, br); err != nil || n != 0 {
				t.Errorf("after the close frame: %d more bytes, %v; want TCP to end", n, err)
			}
			if err := checkCloseError(s.wait(t), &tunnel.CloseError{Code: tc.want, Local: true}); err != nil {
				t.Errorf("our side: %v", err)
			}
		})
	}
}

// rawHandshake opens a TCP connection to addr (host:port) and runs the
// opening handshake by hand.
func rawHandshake(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	if err := nc.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake answered %s", resp.Status)
	}
	// The accept key for the sample nonce of RFC 6455 section 1.3.
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("Sec-WebSocket-Accept %q", got)
	}
	return nc, br
}

// readCloseFrame reads one unmasked server frame, which must be a close
// frame, and returns its code.
func readCloseFrame(t *testing.T, br *bufio.Reader) tunnel.StatusCode {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatalf("reading the close frame: %v", err)
	}
	if h[0] != 0x88 || h[1]&0x80 != 0 || h[1] < 2 || h[1] > 125 {
		t.Fatalf("got frame header % x, want an unmasked close frame with a code", h)
	}
	p := make([]byte, h[1])
	if _, err := io.ReadFull(br, p); err != nil {
		t.Fatalf("reading the close frame: %v", err)
	}
	return tunnel.StatusCode(binary.BigEndian.Uint16(p))
}
