package tunnel

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAcceptKey(t *testing.T) {
	t.Parallel()
	tests := []struct{ key, want string }{
		{"dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="}, // RFC 6455 section 1.3
		{"xqBt3ImNzJbYqRINxEFlkg==", "K7DJLdLooIwIG/MOpvWFB3y3FE8="},
	}
	for _, tt := range tests {
		if got := acceptKey(tt.key); got != tt.want {
			t.Errorf("acceptKey(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

// echoServer serves an echo endpoint built on Accept with opts.
func echoServer(t testing.TB, opts *AcceptOptions) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, opts)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := context.Background()
		for {
			typ, p, err := c.Read(ctx)
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, p); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestHandshakeRefusals sends raw handshake requests and checks the status
// and the reason in the body.
func TestHandshakeRefusals(t *testing.T) {
	t.Parallel()
	srv := echoServer(t, &AcceptOptions{
		Subprotocols: []string{"ferry.v1"},
		CheckOrigin: func(r *http.Request) error {
			if o := r.Header.Get("Origin"); o == "http://evil.example" {
				return fmt.Errorf("origin %s is not allowed", o)
			}
			return nil
		},
	})
	addr := srv.Listener.Addr().String()
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	good := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n"
	tests := []struct {
		name   string
		req    string
		status int
		reason string
		header string // a response header that must be present
	}{
		{"ok", good, 101, "", "Sec-Websocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="},
		{"ok with lists and case", "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: foo, WebSocket\r\nConnection: keep-alive, UPGRADE\r\nSec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n", 101, "", ""},
		{"subprotocol selected", good + "Sec-WebSocket-Protocol: chat, ferry.v1\r\n", 101, "", "Sec-Websocket-Protocol: ferry.v1"},
		{"POST", strings.Replace(good, "GET", "POST", 1) + "Content-Length: 0\r\n", 405, "must use GET", "Allow: GET"},
		{"HTTP/1.0", strings.Replace(good, "HTTP/1.1", "HTTP/1.0", 1), 400, "HTTP/1.1 or later", ""},
		{"no Connection upgrade", strings.Replace(good, "Connection: Upgrade", "Connection: keep-alive", 1), 426, "Connection header", ""},
		{"no Upgrade websocket", strings.Replace(good, "Upgrade: websocket", "Upgrade: h2c", 1), 426, "Upgrade header", ""},
		{"version 8", strings.Replace(good, "Version: 13", "Version: 8", 1), 426, "Sec-WebSocket-Version", "Sec-Websocket-Version: 13"},
		{"no key", strings.Replace(good, "Sec-WebSocket-Key: "+key+"\r\n", "", 1), 400, "exactly one Sec-WebSocket-Key", ""},
		{"short key", strings.Replace(good, key, "c2hvcnQ=", 1), 400, "16 bytes", ""},
		{"bad base64 key", strings.Replace(good, key, "!!!!!!!!!!!!!!!!!!!!!!==", 1), 400, "16 bytes", ""},
		{"two keys", good + "Sec-WebSocket-Key: " + key + "\r\n", 400, "exactly one", ""},
		{"forbidden origin", good + "Origin: http://evil.example\r\n", 403, "origin http://evil.example is not allowed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			io.WriteString(nc, tt.req+"\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status != 101 {
				body, _ := io.ReadAll(resp.Body)
				if !strings.Contains(string(body), tt.reason) {
					t.Fatalf("body %q does not give the reason %q", body, tt.reason)
				}
			}
			if tt.header != "" {
				name, value, _ := strings.Cut(tt.header, ": ")
				if got := resp.Header.Get(name); got != value {
					t.Fatalf("%s = %q, want %q", name, got, value)
				}
			}
		})
	}
}

// TestDialChecksResponse points Dial at servers that answer wrongly.
func TestDialChecksResponse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		respond func(key string) string
		want    string
	}{
		{"not 101", func(string) string {
			return "HTTP/1.1 403 Forbidden\r\nContent-Length: 12\r\n\r\nno entry\r\n\r\n"
		}, "403 Forbidden, not 101: no entry"},
		{"wrong accept", func(string) string {
			return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAA\r\n\r\n"
		}, "Sec-WebSocket-Accept"},
		{"no upgrade", func(k string) string {
			return "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + acceptKey(k) + "\r\n\r\n"
		}, "without Upgrade"},
		{"unoffered subprotocol", func(k string) string {
			return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + acceptKey(k) + "\r\nSec-WebSocket-Protocol: other\r\n\r\n"
		}, "not offered"},
		{"unoffered extension", func(k string) string {
			return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + acceptKey(k) + "\r\nSec-WebSocket-Extensions: x-foo\r\n\r\n"
		}, "not offered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				nc, err := ln.Accept()
				if err != nil {
					return
				}
				defer nc.Close()
				req, err := http.ReadRequest(bufio.NewReader(nc))
				if err != nil {
					return
				}
				io.WriteString(nc, tt.respond(req.Header.Get("Sec-WebSocket-Key")))
			}()
			_, _, err = Dial(context.Background(), "ws://"+ln.Addr().String()+"/", &DialOptions{Subprotocols: []string{"ferry.v1"}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Dial error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestDialBadURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"http://x/", "ws:///path", "::"} {
		if _, _, err := Dial(context.Background(), u, nil); err == nil {
			t.Errorf("Dial(%q) succeeded", u)
		}
	}
}

// TestCloseHandshake runs the closing handshake from each side between two
// Conns and checks the codes each side reports.
func TestCloseHandshake(t *testing.T) {
	t.Parallel()
	for _, closer := range []string{"client", "server"} {
		t.Run(closer, func(t *testing.T) {
			t.Parallel()
			srvErr := make(chan error, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := Accept(w, r, nil)
				if err != nil {
					srvErr <- err
					return
				}
				if closer == "server" {
					srvErr <- c.Close(4000, "server says bye")
					return
				}
				_, _, err = c.Read(context.Background())
				srvErr <- err
			}))
			defer srv.Close()
			c, _, err := Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if closer == "client" {
				if err := c.Close(StatusNormalClosure, "client says bye"); err != nil {
					t.Fatalf("client Close: %v", err)
				}
				err := <-srvErr
				var ce *CloseError
				if !errors.As(err, &ce) || ce.Code != StatusNormalClosure || ce.Reason != "client says bye" || ce.Local {
					t.Fatalf("server Read error = %v", err)
				}
				return
			}
			_, _, err = c.Read(context.Background())
			var ce *CloseError
			if !errors.As(err, &ce) || ce.Code != 4000 || ce.Reason != "server says bye" || ce.Local {
				t.Fatalf("client Read error = %v", err)
			}
			if err := <-srvErr; err != nil {
				t.Fatalf("server Close: %v", err)
			}
		})
	}
}

// TestValidCloseCodesEchoed checks that a Conn echoes every close code that
// may appear on the wire.
func TestValidCloseCodesEchoed(t *testing.T) {
	t.Parallel()
	for _, code := range []StatusCode{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			t.Parallel()
			c, peer := rawPeer(t, false, 0)
			go peer.Write(rawFrame(true, 0, OpClose, true, closePayload(code, "why")))
			_, _, err := c.Read(context.Background())
			var ce *CloseError
			if !errors.As(err, &ce) || ce.Code != code || ce.Reason != "why" || ce.Local {
				t.Fatalf("Read error = %v", err)
			}
			op, p := readRawFrame(t, peer)
			if op != OpClose || StatusCode(uint16(p[0])<<8|uint16(p[1])) != code {
				t.Fatalf("echo = %v %x", op, p)
			}
			// The server ends TCP first.
			if _, err := peer.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("after echo, peer read %v, want EOF", err)
			}
		})
	}
	t.Run("empty close", func(t *testing.T) {
		t.Parallel()
		c, peer := rawPeer(t, false, 0)
		go peer.Write(rawFrame(true, 0, OpClose, true, nil))
		if _, _, err := c.Read(context.Background()); CloseStatus(err) != StatusNoStatusRcvd {
			t.Fatalf("Read error = %v", err)
		}
		if op, p := readRawFrame(t, peer); op != OpClose || len(p) != 0 {
			t.Fatalf("echo = %v %x, want an empty close", op, p)
		}
	})
}

func TestCloseRejectsReservedCodes(t *testing.T) {
	t.Parallel()
	c, _ := rawPeer(t, false, 0)
	for _, code := range []StatusCode{999, 1004, 1005, 1006, 1015, 2999, 5000} {
		if err := c.Close(code, ""); err == nil {
			t.Errorf("Close(%d) succeeded", code)
		}
	}
}
